// Tabs for coatcheck.js without a browser: each tab is a jsdom document whose XHR and
// forms are jsdom's own, with node's fetch, node's BroadcastChannel and a localStorage
// shared by the tabs of one "browser" (firing storage events in the other tabs, as a
// browser does). Location is a stand-in that records where the script sends the tab,
// since jsdom does not navigate. The server is a node HTTP server playing a coatcheck
// edge: it answers the keep-alive and sends X-Session-Expires and Date as coatcheck does,
// with a clock the test may set apart from the tab's.
import http from "node:http";
import { JSDOM, VirtualConsole } from "jsdom";
import { create } from "../../src/coatcheck/static/coatcheck.js";

export const TOKEN = "t".repeat(86);

/** A node HTTP server standing in for a coatcheck edge. */
export async function server() {
  const state = {
    user: "alice",
    expires: 0, // epoch seconds; 0: no stored session
    skew: 0, // seconds the server's clock runs ahead of the tabs'
    requests: [],
  };
  const srv = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      state.requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      res.setHeader("Date", new Date(Date.now() + state.skew * 1000).toUTCString());
      if (state.expires) res.setHeader("X-Session-Expires", String(state.expires));
      const url = new URL(req.url, "http://x");
      if (url.pathname === "/coatcheck/keep-alive") {
        if (!state.user) return res.writeHead(401).end('{"error":"login_required"}');
        if (req.method === "POST") {
          if (req.headers["x-csrf-token"] !== TOKEN) return res.writeHead(403).end();
          state.expires = Math.ceil(Date.now() / 1000 + state.skew) + 600;
          res.setHeader("X-Session-Expires", String(state.expires));
        }
        return res.writeHead(204).end();
      }
      if (url.pathname === "/status") return res.writeHead(Number(url.searchParams.get("s"))).end();
      if (url.pathname === "/logout") res.setHeader("Clear-Site-Data", '"cache", "storage"');
      res.writeHead(200, { "Content-Type": "text/plain" }).end("ok");
    });
  });
  await new Promise((ok) => srv.listen(0, "127.0.0.1", ok));
  state.url = `http://127.0.0.1:${srv.address().port}`;
  state.close = () => new Promise((ok) => srv.close(ok));
  state.last = (path) => state.requests.filter((r) => r.url.startsWith(path)).at(-1);
  return state;
}

/** A Storage that tabs share, firing "storage" in every tab but the writer. */
export class SharedStorage {
  constructor() {
    this.items = new Map();
    this.tabs = new Set();
  }
  view(tab) {
    const shared = this;
    const fire = (key, oldValue, newValue) => {
      for (const other of shared.tabs) {
        if (other === tab) continue;
        const { StorageEvent } = other.window;
        other.window.dispatchEvent(new StorageEvent("storage", { key, oldValue, newValue }));
      }
    };
    return {
      get length() {
        return shared.items.size;
      },
      key: (i) => [...shared.items.keys()][i] ?? null,
      getItem: (k) => (shared.items.has(k) ? shared.items.get(k) : null),
      setItem(k, v) {
        const old = this.getItem(k);
        shared.items.set(k, String(v));
        fire(k, old, String(v));
      },
      removeItem(k) {
        const old = this.getItem(k);
        if (shared.items.delete(k)) fire(k, old, null);
      },
      clear() {
        shared.items.clear();
      },
    };
  }
}

// jsdom says "not implemented" when a form would navigate; everything else is shown.
const quiet = new VirtualConsole();
quiet.on("jsdomError", (e) => /Not implemented/.test(e.message) || console.error(e));

const channels = new Set();
class TrackedChannel extends BroadcastChannel {
  constructor(name) {
    super(name);
    channels.add(this);
  }
}
export function closeChannels() {
  for (const c of channels) c.close();
  channels.clear();
}

/** One browser: tabs sharing localStorage (and BroadcastChannel unless `bus: false`). */
export function browser(srv, { bus = true } = {}) {
  const local = new SharedStorage();
  const tabs = [];
  return {
    local,
    tabs,
    /** A tab showing `html` inside <html ATTRS>; `options` go to create(). */
    open({ attrs = "", head = "", body = "", options = {}, path = "/page" } = {}) {
      const dom = new JSDOM(
        `<!doctype html><html ${attrs}><head>${head}</head><body>${body}</body></html>`,
        { url: srv.url + path, virtualConsole: quiet },
      );
      const win = dom.window;
      const tab = { dom, window: win, document: win.document, went: [], reloaded: 0 };
      local.tabs.add(tab);
      const href = srv.url + path;
      tab.env = {
        document: win.document,
        location: {
          href,
          origin: srv.url,
          assign: (u) => tab.went.push(u),
          reload: () => (tab.reloaded += 1),
        },
        // node's fetch, resolving relative URLs against the page as a browser does
        fetch: (input, init) =>
          fetch(typeof input === "string" ? new URL(input, href) : input, init),
        XMLHttpRequest: win.XMLHttpRequest,
        HTMLFormElement: win.HTMLFormElement,
        localStorage: local.view(tab),
        sessionStorage: win.sessionStorage,
        BroadcastChannel: bus ? TrackedChannel : undefined,
        // the global ones at each call, so node's mock timers apply; unref'd so a
        // tab's pending deadline never keeps the test process alive
        setTimeout: (f, ms) => {
          const t = setTimeout(f, ms);
          t?.unref?.();
          return t;
        },
        clearTimeout: (t) => clearTimeout(t),
        addEventListener: win.addEventListener.bind(win),
      };
      tab.cc = create(tab.env, options);
      tabs.push(tab);
      return tab;
    },
    close() {
      for (const tab of tabs) tab.window.close();
      closeChannels();
    },
  };
}

/** Wait until `predicate()` holds (polling; the script's own work is asynchronous). */
export async function until(predicate, ms = 2000) {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${predicate}`);
    await new Promise((ok) => setTimeout(ok, 5));
  }
}

/** Let pending messages, fetches and timers run. */
export const settle = (ms = 30) => new Promise((ok) => setTimeout(ok, ms));

export const signedIn = (user = "alice", consent = "functional") =>
  `data-coatcheck-user="${user}" data-coatcheck-consent="${consent}"`;
export const csrfMeta = `<meta name="csrf-token" content="${TOKEN}">`;
