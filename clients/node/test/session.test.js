// req.session against a real `coatcheck serve`: data, one delta per response, login and
// logout, the cookie the browser gets, and what the service then holds.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import express from "express";

import { coatcheck } from "../src/index.js";
import { Browser, listen } from "../support/browser.js";
import { api, startService } from "../support/serve.js";

const COOKIE = "__Host-session";
const ATTRS = "Path=/; Secure; HttpOnly; SameSite=Lax";
const REMEMBER = 30 * 24 * 3600; // the engine's remember-me lifetime, in seconds

let late = null;

function app(service, options = {}) {
  const app = express();
  app.use(coatcheck({ url: service.url, apiKey: service.apiKey, ...options }));
  app.get("/read", (req, res) => res.json({ user: req.session.userId, n: req.session.get("n") ?? null }));
  app.get("/nothing", (req, res) => res.send("ok"));
  app.post("/set", express.json(), (req, res) => {
    for (const [k, v] of Object.entries(req.body.set ?? {})) req.session.set(k, v);
    for (const k of req.body.unset ?? []) req.session.delete(k);
    res.json({ ok: true });
  });
  app.get("/push", (req, res) => {
    req.session.get("list").push(req.query.item); // changed in place
    res.send("pushed");
  });
  app.get("/add", (req, res) => {
    const n = req.session.incr("n", 2);
    req.session.append("cart", { sku: req.query.item });
    req.session.addToSet("tags", req.query.tag ?? "x");
    res.json({ n, cart: req.session.get("cart"), tags: req.session.get("tags") });
  });
  app.get("/add-after-read", (req, res) => {
    const before = req.session.get("cart").length; // read, not changed: stays atomic
    req.session.append("cart", { sku: req.query.item });
    res.json({ before, after: req.session.get("cart").length });
  });
  app.get("/push-then-append", (req, res) => {
    req.session.get("cart").push({ sku: "in-place" }); // changed in place first
    req.session.append("cart", { sku: req.query.item });
    res.json({ cart: req.session.get("cart") });
  });
  app.get("/set-then-incr", (req, res) => {
    req.session.set("n", 10);
    res.json({ n: req.session.incr("n", 5) });
  });
  app.get("/bad-incr", (req, res) => {
    try {
      req.session.incr("cart");
      res.send("allowed");
    } catch (error) {
      res.status(400).send(error.message);
    }
  });
  app.get("/count", (req, res) => {
    req.session.set("n", (req.session.get("n") ?? 0) + 1);
    res.json({ n: req.session.get("n") });
  });
  app.post("/login", express.json(), async (req, res) => {
    await req.session.login(req.body.user, { remember: req.body.remember ?? false, level: req.body.level });
    res.json({ user: req.session.userId, level: req.session.level });
  });
  app.post("/logout", async (req, res) => {
    await req.session.logout();
    if (req.query.flash) req.session.set("flash", "bye");
    res.send("bye");
  });
  app.get("/stream", (req, res) => {
    req.session.set("streamed", true);
    res.write("one,");
    setTimeout(() => res.end("two"), 20);
  });
  app.get("/late", (req, res) => {
    res.send("sent");
    try {
      req.session.set("late", 1);
      late = "allowed";
    } catch (error) {
      late = error.message;
    }
  });
  app.get("/late-result", (req, res) => res.send(late));
  app.get("/head", (req, res) => {
    req.session.set("h", 1);
    res.writeHead(200, { "content-type": "text/plain", "cache-control": "public, max-age=60" });
    res.end("explicit");
  });
  app.get("/head-array", (req, res) => {
    req.session.set("h", 2);
    res.writeHead(200, ["content-type", "text/plain", "cache-control", "public, max-age=60"]);
    res.end("flat");
  });
  return app;
}

// The CSRF check is the subject of csrf.test.js: here every unsafe request carries a token.
async function token(browser, base) {
  const res = await browser.request(`${base}/csrf`);
  return res.text_;
}

describe("req.session", () => {
  let service;
  let server;
  let base;
  before(async () => {
    service = await startService();
    const application = app(service);
    application.get("/csrf", async (req, res) => res.send(await req.session.csrfToken()));
    server = await listen(application);
    base = server.url;
  });
  after(async () => {
    await server?.close();
    await service?.stop();
  });

  const post = async (browser, path, body) =>
    browser.request(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": await token(browser, base) },
      body: JSON.stringify(body ?? {}),
    });

  it("sends no cookie and stores nothing for a request that does not touch the session", async () => {
    const browser = new Browser();
    const res = await browser.request(`${base}/nothing`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.headers.getSetCookie(), []);
    const read = await browser.request(`${base}/read`);
    assert.deepEqual(JSON.parse(read.text_), { user: null, n: null });
    assert.deepEqual(read.headers.getSetCookie(), []);
  });

  it("stores a first write as a new session, with the Python edges' cookie", async () => {
    const browser = new Browser();
    const res = await browser.request(`${base}/count`);
    assert.deepEqual(JSON.parse(res.text_), { n: 1 });
    const [cookie] = res.headers.getSetCookie();
    const value = browser.cookies.get(COOKIE);
    assert.match(value, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(cookie, `${COOKIE}=${value}; ${ATTRS}`);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const seen = await api(service, "sessions/introspect", { token: value, touch: false });
    assert.deepEqual(seen.body.session.data, { n: 1 });
    const again = await browser.request(`${base}/count`);
    assert.deepEqual(JSON.parse(again.text_), { n: 2 });
    assert.deepEqual(again.headers.getSetCookie(), []); // the token stands: no cookie
  });

  it("commits set and delete as one delta, so concurrent requests keep each other's keys", async () => {
    const browser = new Browser();
    await post(browser, "/set", { set: { keep: 1, drop: 2 } });
    const tokenValue = browser.cookies.get(COOKIE);
    const csrf = await token(browser, base);
    const headers = { "content-type": "application/json", "x-csrf-token": csrf, cookie: browser.cookieHeader() };
    await Promise.all(
      Array.from({ length: 10 }, (_, n) =>
        fetch(`${base}/set`, { method: "POST", headers, body: JSON.stringify({ set: { [`k${n}`]: n } }) }),
      ),
    );
    await post(browser, "/set", { unset: ["drop"] });
    const seen = await api(service, "sessions/introspect", { token: tokenValue, touch: false });
    const expected = { keep: 1 };
    for (let n = 0; n < 10; n++) expected[`k${n}`] = n;
    assert.deepEqual(seen.body.session.data, expected);
  });

  it("sends incr, append and addToSet as operations: concurrent requests' additions all count", async () => {
    const browser = new Browser();
    await post(browser, "/set", { set: { n: 1, cart: [], tags: ["x"] } });
    const tokenValue = browser.cookies.get(COOKIE);
    const first = await browser.request(`${base}/add?item=hat&tag=y`);
    // Read your writes: the handler sees each operation's result at once.
    assert.deepEqual(JSON.parse(first.text_), { n: 3, cart: [{ sku: "hat" }], tags: ["x", "y"] });
    const headers = { cookie: browser.cookieHeader() };
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, n) => fetch(`${base}/add?item=i${n}&tag=t${n % 2}`, { headers })),
    );
    assert.deepEqual(answers.map((a) => a.status), Array(12).fill(200));
    await browser.request(`${base}/add-after-read?item=last`);
    const seen = await api(service, "sessions/introspect", { token: tokenValue, touch: false });
    const data = seen.body.session.data;
    assert.equal(data.n, 3 + 12 * 2);
    const skus = data.cart.map((item) => item.sku);
    assert.equal(skus.length, 1 + 12 + 1);
    assert.deepEqual(skus.slice(1, 13).sort(), Array.from({ length: 12 }, (_, n) => `i${n}`).sort());
    assert.deepEqual([skus[0], skus[13]], ["hat", "last"]);
    assert.deepEqual(data.tags.slice(0, 2), ["x", "y"]);
    assert.deepEqual(data.tags.slice(2).sort(), ["t0", "t1"]);
  });

  it("writes an operation's result as a value on a session not stored yet, or on a key the request wrote or changed in place", async () => {
    const browser = new Browser();
    const first = await browser.request(`${base}/add?item=hat&tag=y`); // no session yet
    assert.deepEqual(JSON.parse(first.text_), { n: 2, cart: [{ sku: "hat" }], tags: ["y"] });
    const tokenValue = browser.cookies.get(COOKIE);
    let seen = await api(service, "sessions/introspect", { token: tokenValue, touch: false });
    assert.deepEqual(seen.body.session.data, { n: 2, cart: [{ sku: "hat" }], tags: ["y"] });
    await browser.request(`${base}/push-then-append?item=mug`); // changed in place: a value
    seen = await api(service, "sessions/introspect", { token: tokenValue, touch: false });
    assert.deepEqual(seen.body.session.data.cart, [{ sku: "hat" }, { sku: "in-place" }, { sku: "mug" }]);
    const second = await browser.request(`${base}/set-then-incr`);
    assert.deepEqual(JSON.parse(second.text_), { n: 15 });
    seen = await api(service, "sessions/introspect", { token: tokenValue, touch: false });
    assert.equal(seen.body.session.data.n, 15);
  });

  it("refuses an operation on a value of another type, naming the key", async () => {
    const browser = new Browser();
    await post(browser, "/set", { set: { cart: ["hat"] } });
    const res = await browser.request(`${base}/bad-incr`);
    assert.equal(res.status, 400);
    assert.match(res.text_, /incr on session key "cart": the value is a list, not an integer/);
  });

  it("finds a value changed in place", async () => {
    const browser = new Browser();
    await post(browser, "/set", { set: { list: ["a"] } });
    await browser.request(`${base}/push?item=b`);
    const seen = await api(service, "sessions/introspect", { token: browser.cookies.get(COOKIE), touch: false });
    assert.deepEqual(seen.body.session.data.list, ["a", "b"]);
  });

  it("logs in with a new token, the old one dead and the data kept", async () => {
    const browser = new Browser();
    await post(browser, "/set", { set: { cart: ["coat"] } });
    const anonymous = browser.cookies.get(COOKIE);
    const res = await post(browser, "/login", { user: "ada", level: 2 });
    assert.deepEqual(JSON.parse(res.text_), { user: "ada", level: 2 });
    const signedIn = browser.cookies.get(COOKIE);
    assert.notEqual(signedIn, anonymous);
    assert.deepEqual(res.headers.getSetCookie(), [`${COOKIE}=${signedIn}; ${ATTRS}`]);
    assert.deepEqual((await api(service, "sessions/introspect", { token: anonymous })).body, { active: false });
    const seen = await api(service, "sessions/introspect", { token: signedIn, touch: false });
    assert.equal(seen.body.session.user_id, "ada");
    assert.equal(seen.body.session.level, 2);
    assert.deepEqual(seen.body.session.data, { cart: ["coat"] });
    const read = await browser.request(`${base}/read`);
    assert.equal(JSON.parse(read.text_).user, "ada");
  });

  it("logs a visitor without a session in, and remember-me makes the cookie persistent", async () => {
    const browser = new Browser();
    const res = await browser.request(`${base}/login`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": "" },
      body: JSON.stringify({ user: "bea", remember: true }),
    });
    assert.equal(res.status, 403); // no session, so no token: the CSRF check refuses
    const ok = await post(browser, "/login", { user: "bea", remember: true });
    const [cookie] = ok.headers.getSetCookie();
    const maxAge = Number(cookie.match(/; Max-Age=(\d+)$/)[1]);
    assert.ok(maxAge <= REMEMBER && maxAge >= REMEMBER - 60, cookie);
    assert.equal(cookie, `${COOKIE}=${browser.cookies.get(COOKIE)}; ${ATTRS}; Max-Age=${maxAge}`);
  });

  it("logs out: the token dies, the cookie is cleared with Clear-Site-Data", async () => {
    const browser = new Browser();
    await post(browser, "/login", { user: "cy" });
    const signedIn = browser.cookies.get(COOKIE);
    const res = await post(browser, "/logout");
    assert.deepEqual(res.headers.getSetCookie(), [
      `${COOKIE}=""; ${ATTRS}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT`,
    ]);
    assert.equal(res.headers.get("clear-site-data"), '"cache", "cookies", "storage"');
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.deepEqual((await api(service, "sessions/introspect", { token: signedIn })).body, { active: false });
    assert.equal(browser.cookies.has(COOKIE), false);
  });

  it("after a logout, new data starts a new anonymous session and keeps its cookie", async () => {
    const browser = new Browser();
    await post(browser, "/login", { user: "dee" });
    const signedIn = browser.cookies.get(COOKIE);
    const res = await post(browser, "/logout?flash=1");
    const fresh = browser.cookies.get(COOKIE);
    assert.ok(fresh && fresh !== signedIn);
    assert.equal(res.headers.get("clear-site-data"), '"cache", "storage"');
    const seen = await api(service, "sessions/introspect", { token: fresh, touch: false });
    assert.equal(seen.body.session.user_id, null);
    assert.deepEqual(seen.body.session.data, { flash: "bye" });
  });

  it("holds a streamed body until the commit, then sends all of it", async () => {
    const browser = new Browser();
    const res = await browser.request(`${base}/stream`);
    assert.equal(res.text_, "one,two");
    const seen = await api(service, "sessions/introspect", { token: browser.cookies.get(COOKIE), touch: false });
    assert.deepEqual(seen.body.session.data, { streamed: true });
  });

  it("refuses changes once the response started, so none is silently lost", async () => {
    const browser = new Browser();
    const res = await browser.request(`${base}/late`);
    assert.equal(res.text_, "sent");
    assert.deepEqual(res.headers.getSetCookie(), []);
    const said = await browser.request(`${base}/late-result`);
    assert.equal(said.text_, "the session was committed when the response started; change it before sending");
  });

  it("puts the cookie and no-store on a response whose headers were given to writeHead", async () => {
    const browser = new Browser();
    const res = await browser.request(`${base}/head`);
    assert.equal(res.text_, "explicit");
    assert.equal(res.headers.get("content-type"), "text/plain");
    assert.equal(res.headers.get("cache-control"), "no-store"); // a credential: never public
    assert.equal(res.headers.getSetCookie().length, 1);
  });

  it("does the same for headers given to writeHead as a flat array", async () => {
    const browser = new Browser();
    const res = await browser.request(`${base}/head-array`);
    assert.equal(res.text_, "flat");
    assert.equal(res.headers.get("content-type"), "text/plain");
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.equal(res.headers.getSetCookie().length, 1);
  });

  it("treats a dead or forged cookie as no session", async () => {
    const browser = new Browser();
    browser.cookies.set(COOKIE, "A".repeat(43));
    const read = await browser.request(`${base}/read`);
    assert.deepEqual(JSON.parse(read.text_), { user: null, n: null });
    const res = await browser.request(`${base}/count`);
    assert.deepEqual(JSON.parse(res.text_), { n: 1 });
    assert.notEqual(browser.cookies.get(COOKIE), "A".repeat(43));
  });
});

describe("the cookie's settings", () => {
  let service;
  before(async () => {
    service = await startService();
  });
  after(async () => service?.stop());

  it("names and attributes as chosen, as the Python edges write them", async () => {
    const server = await listen(app(service, { cookieName: "sid", secure: false, sameSite: "strict", path: "/" }));
    try {
      const browser = new Browser();
      const res = await browser.request(`${server.url}/count`);
      assert.deepEqual(res.headers.getSetCookie(), [`sid=${browser.cookies.get("sid")}; Path=/; HttpOnly; SameSite=Strict`]);
      const again = await browser.request(`${server.url}/count`);
      assert.deepEqual(JSON.parse(again.text_), { n: 2 });
    } finally {
      await server.close();
    }
  });

  it("a refreshed token, introspect's or update's, reaches the browser", async () => {
    const rotating = await startService({ env: { COATCHECK_ROTATION_INTERVAL: "0.000001" } });
    const server = await listen(app(rotating));
    try {
      const browser = new Browser();
      await browser.request(`${server.url}/count`);
      const first = browser.cookies.get(COOKIE);
      const read = await browser.request(`${server.url}/read`); // read only: introspect rotated
      assert.deepEqual(JSON.parse(read.text_), { user: null, n: 1 });
      const second = browser.cookies.get(COOKIE);
      assert.notEqual(second, first);
      assert.deepEqual(read.headers.getSetCookie(), [`${COOKIE}=${second}; ${ATTRS}`]);
      const write = await browser.request(`${server.url}/count`); // introspect and update rotate
      assert.deepEqual(JSON.parse(write.text_), { n: 2 });
      const cookies = write.headers.getSetCookie();
      assert.equal(cookies.length, 1);
      const third = browser.cookies.get(COOKIE);
      assert.notEqual(third, second);
      const seen = await api(rotating, "sessions/introspect", { token: third, touch: false });
      assert.deepEqual(seen.body.session.data, { n: 2 }); // the token delivered is the live one
      const next = await browser.request(`${server.url}/count`);
      assert.deepEqual(JSON.parse(next.text_), { n: 3 });
    } finally {
      await server.close();
      await rotating.stop();
    }
  });

  it("a passive route is checked, never slid nor rotated, and read only", async () => {
    const rotating = await startService({ env: { COATCHECK_ROTATION_INTERVAL: "0.000001" } });
    const application = app(rotating, { passive: ["/poll"] });
    application.get("/poll/inbox", (req, res) => {
      let wrote = "allowed";
      try {
        req.session.set("x", 1);
      } catch (error) {
        wrote = error.message;
      }
      res.json({ user: req.session.userId, n: req.session.get("n"), wrote });
    });
    const server = await listen(application);
    try {
      const browser = new Browser();
      await browser.request(`${server.url}/count`);
      const tokenValue = browser.cookies.get(COOKIE);
      const before = (await api(rotating, "sessions/introspect", { token: tokenValue, touch: false })).body.session;
      const res = await browser.request(`${server.url}/poll/inbox`);
      assert.deepEqual(JSON.parse(res.text_), { user: null, n: 1, wrote: "a passive route's session is read only" });
      assert.deepEqual(res.headers.getSetCookie(), []);
      const later = (await api(rotating, "sessions/introspect", { token: tokenValue, touch: false })).body.session;
      assert.equal(later.last_seen_at, before.last_seen_at);
    } finally {
      await server.close();
      await rotating.stop();
    }
  });
});
