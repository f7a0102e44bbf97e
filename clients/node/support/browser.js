// A browser for the tests: one cookie jar (name -> value, as Set-Cookie said), requests
// through fetch without following redirects, so every Set-Cookie is seen.

import { once } from "node:events";

export class Browser {
  constructor() {
    this.cookies = new Map();
    this.setCookies = [];
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  async request(url, { method = "GET", headers = {}, body } = {}) {
    const cookie = this.cookieHeader();
    const response = await fetch(url, {
      method,
      body,
      redirect: "manual",
      headers: { ...(cookie ? { cookie } : {}), ...headers },
    });
    this.setCookies = response.headers.getSetCookie();
    for (const line of this.setCookies) {
      const [pair, ...attrs] = line.split(";").map((s) => s.trim());
      const at = pair.indexOf("=");
      const name = pair.slice(0, at);
      const value = pair.slice(at + 1);
      const gone = attrs.some((a) => /^max-age=0$/i.test(a));
      if (gone) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    response.text_ = await response.text();
    return response;
  }
}

/** Listen on a free loopback port: the base URL, and a close(). */
export async function listen(app) {
  const server = app.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () => new Promise((r) => {
      server.closeAllConnections?.();
      server.close(() => r());
    }),
  };
}
