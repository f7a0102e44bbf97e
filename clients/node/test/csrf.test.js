// The CSRF check, as the Python edges make it: Origin and Sec-Fetch-Site first, then the
// masked token in X-CSRF-Token or the csrf_token field of a form; the app's body parsers
// still get the whole body. Tokens are the session's own secret: one the Python demo
// renders (served by the same `coatcheck serve` at /) verifies here.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import express from "express";

import { coatcheck } from "../src/index.js";
import { Browser, listen } from "../support/browser.js";
import { startService } from "../support/serve.js";

const COOKIE = "__Host-session";

function secretOf(masked) {
  // By hand: 86 base64url characters, a 32-byte pad then the secret XORed with it.
  const raw = Buffer.from(masked, "base64url");
  return Buffer.from(raw.subarray(0, 32).map((b, i) => b ^ raw[32 + i])).toString("hex");
}

describe("the CSRF check", () => {
  let service;
  let server;
  let base;
  before(async () => {
    service = await startService();
    const app = express();
    app.use(
      coatcheck({
        url: service.url,
        apiKey: service.apiKey,
        trustedOrigins: ["https://front.example"],
        exempt: ["/hooks"],
      }),
    );
    app.get("/form", async (req, res) => res.send(await req.session.csrfToken()));
    app.post("/json", express.json(), (req, res) => {
      req.session.set("posted", req.body.value);
      res.json({ posted: req.body.value });
    });
    app.post("/form", express.urlencoded({ extended: false }), (req, res) => res.json(req.body));
    app.post("/raw", express.raw({ type: "multipart/form-data", limit: "1mb" }), (req, res) => res.send(req.body));
    app.post("/hooks/stripe", (req, res) => res.send("hooked"));
    app.post("/login", async (req, res) => {
      await req.session.login("zoe");
      res.send(await req.session.csrfToken());
    });
    server = await listen(app);
    base = server.url;
  });
  after(async () => {
    await server?.close();
    await service?.stop();
  });

  async function visitor() {
    const browser = new Browser();
    const token = (await browser.request(`${base}/form`)).text_;
    return { browser, token };
  }

  const json = (browser, headers, value = 1) =>
    browser.request(`${base}/json`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ value }),
    });

  it("gives a token masked afresh every time, of one secret", async () => {
    const { browser, token } = await visitor();
    assert.match(token, /^[A-Za-z0-9_-]{86}$/);
    const again = (await browser.request(`${base}/form`)).text_;
    assert.notEqual(again, token);
    assert.equal(secretOf(again), secretOf(token));
  });

  it("lets a request with the header token through", async () => {
    const { browser, token } = await visitor();
    const res = await json(browser, { "x-csrf-token": token, origin: base, "sec-fetch-site": "same-origin" });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.text_), { posted: 1 });
  });

  const TOKEN = Symbol("the visitor's own token");
  const OTHER = Symbol("a token of another session");
  for (const [name, headers, reason] of [
    ["no token", {}, "missing token"],
    ["an empty token", { "x-csrf-token": "" }, "missing token"],
    ["a malformed token", { "x-csrf-token": "x".repeat(87) }, "invalid token"],
    ["another session's token", { "x-csrf-token": OTHER }, "invalid token"],
    ["a foreign Origin", { origin: "https://evil.example", "x-csrf-token": TOKEN }, "origin mismatch"],
    ["Origin null", { origin: "null", "x-csrf-token": TOKEN }, "origin mismatch"],
    ["two Origins", { origin: `${"https://a.example"}, ${"https://b.example"}`, "x-csrf-token": TOKEN }, "origin mismatch"],
    ["Sec-Fetch-Site cross-site", { "sec-fetch-site": "cross-site", "x-csrf-token": TOKEN }, "cross-site request"],
  ]) {
    it(`refuses ${name} with a 403 that names it, writing nothing`, async () => {
      const { browser, token } = await visitor();
      const other = (await visitor()).token;
      const sent = Object.fromEntries(
        Object.entries(headers).map(([k, v]) => [k, v === TOKEN ? token : v === OTHER ? other : v]),
      );
      const res = await json(browser, sent, 2);
      assert.equal(res.status, 403);
      assert.equal(res.text_, `CSRF check failed: ${reason}\n`);
      assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(res.headers.get("cache-control"), "no-store");
      const after = await json(browser, { "x-csrf-token": token }, 3);
      assert.deepEqual(JSON.parse(after.text_), { posted: 3 }); // the session is intact
    });
  }

  it("takes a trusted origin, even cross-site", async () => {
    const { browser, token } = await visitor();
    const res = await json(browser, { "x-csrf-token": token, origin: "https://front.example", "sec-fetch-site": "cross-site" });
    assert.equal(res.status, 200);
  });

  it("finds the token in a urlencoded form and leaves the body to the app's parser", async () => {
    const { browser, token } = await visitor();
    const res = await browser.request(`${base}/form`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `item=coat&csrf_token=${token}&size=m`,
    });
    assert.equal(res.status, 200, res.text_);
    assert.deepEqual(JSON.parse(res.text_), { item: "coat", csrf_token: token, size: "m" });
  });

  it("finds the token in a multipart form and the app still reads every byte", async () => {
    const { browser, token } = await visitor();
    const file = "x".repeat(200_000);
    const body =
      "--B0undary\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.txt\"\r\n\r\n" +
      `${file}\r\n--B0undary\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n${token}\r\n--B0undary--\r\n`;
    const res = await browser.request(`${base}/raw`, {
      method: "POST",
      headers: { "content-type": "multipart/form-data; boundary=B0undary" },
      body,
    });
    assert.equal(res.status, 200, res.text_);
    assert.equal(res.text_, body);
  });

  it("refuses a form without the field, and one too large to search", async () => {
    const { browser, token } = await visitor();
    const bare = await browser.request(`${base}/form`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "item=coat",
    });
    assert.equal(bare.text_, "CSRF check failed: missing token\n");
    const big = await browser.request(`${base}/form`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `pad=${"x".repeat(1024 * 1024)}&csrf_token=${token}`,
    });
    assert.equal(big.status, 403);
    assert.equal(
      big.text_,
      "CSRF check failed: form body too large to search for the token field; send the token in a header\n",
    );
  });

  it("skips exempt paths and safe methods", async () => {
    const browser = new Browser();
    assert.equal((await browser.request(`${base}/hooks/stripe`, { method: "POST" })).text_, "hooked");
    assert.equal((await browser.request(`${base}/form`)).status, 200);
  });

  it("changes the secret at login: a token from before it is dead", async () => {
    const { browser, token } = await visitor();
    const res = await browser.request(`${base}/login`, { method: "POST", headers: { "x-csrf-token": token } });
    assert.equal(res.status, 200);
    const fresh = res.text_;
    assert.notEqual(secretOf(fresh), secretOf(token));
    assert.equal((await json(browser, { "x-csrf-token": token })).status, 403);
    assert.equal((await json(browser, { "x-csrf-token": fresh })).status, 200);
  });

  it("accepts the Python demo's token for the same session, and the demo this one's", async () => {
    const { browser, token } = await visitor();
    const cookie = `${COOKIE}=${browser.cookies.get(COOKIE)}`;
    const page = await (await fetch(`${service.url}/`, { headers: { cookie } })).text();
    const demoToken = page.match(/name="csrf_token" value="([A-Za-z0-9_-]{86})"/)[1];
    assert.equal(secretOf(demoToken), secretOf(token));
    assert.equal((await json(browser, { "x-csrf-token": demoToken })).status, 200);
    const demo = await fetch(`${service.url}/cart/add`, {
      method: "POST",
      redirect: "manual",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      body: `item=coat&csrf_token=${token}`,
    });
    assert.equal(demo.status, 303);
  });
});
