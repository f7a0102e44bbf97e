// A store outage is a 503 for the Express request, never a crash: the service answers
// store-unavailable (503) while its Redis is down, or does not answer at all; either way
// the visitor gets the Python edges' 503, the app process lives on, and nothing is
// written that could later overwrite the real session.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import express from "express";

import { coatcheck } from "../src/index.js";
import { Browser, listen } from "../support/browser.js";
import { startRedis, startService } from "../support/serve.js";

const UNAVAILABLE = "Session store unavailable; please retry shortly.\n";

describe("a store outage", () => {
  let redis;
  let service;
  let server;
  let errors = [];
  before(async () => {
    redis = await startRedis();
    service = await startService({ store: redis.url });
    const app = express();
    app.use(coatcheck({ url: service.url, apiKey: service.apiKey, log: (error) => errors.push(error) }));
    app.get("/count", (req, res) => {
      req.session.set("n", (req.session.get("n") ?? 0) + 1);
      res.json({ n: req.session.get("n") });
    });
    app.get("/login", async (req, res) => {
      await req.session.login("ola"); // Express 5 hands a rejection to its error handler
      res.send("in");
    });
    app.get("/alive", (req, res) => res.send("alive"));
    server = await listen(app);
  });
  after(async () => {
    await server?.close();
    await service?.stop();
    await redis?.kill();
  });

  it("answers 503 with Retry-After while the service's store is down", async () => {
    const browser = new Browser();
    assert.deepEqual(JSON.parse((await browser.request(`${server.url}/count`)).text_), { n: 1 });
    const token = browser.cookies.get("__Host-session");
    await redis.kill();
    for (let i = 0; i < 2; i++) {
      const res = await browser.request(`${server.url}/count`);
      assert.equal(res.status, 503);
      assert.equal(res.text_, UNAVAILABLE);
      assert.equal(res.headers.get("retry-after"), "5"); // the service's own
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.deepEqual(res.headers.getSetCookie(), []); // the browser keeps its cookie
      assert.equal(browser.cookies.get("__Host-session"), token);
    }
    // A new visitor has no session to read: the first write, at commit, is refused.
    const fresh = await new Browser().request(`${server.url}/count`);
    assert.equal(fresh.status, 503);
    assert.equal(fresh.text_, UNAVAILABLE);
    assert.deepEqual(fresh.headers.getSetCookie(), []);
    // An awaited call refused in a handler: Express's error handler answers its status.
    const login = await new Browser().request(`${server.url}/login`);
    assert.equal(login.status, 503);
    assert.equal(login.headers.get("retry-after"), "5");
    assert.deepEqual(login.headers.getSetCookie(), []);
    assert.equal((await browser.request(`${server.url}/alive`)).status, 503);
    assert.ok(errors.length >= 3);
  });

  it("answers 503 when the service itself does not answer", async () => {
    await service.stop();
    const browser = new Browser();
    browser.cookies.set("__Host-session", "A".repeat(43));
    const res = await browser.request(`${server.url}/count`);
    assert.equal(res.status, 503);
    assert.equal(res.text_, UNAVAILABLE);
    assert.equal(res.headers.get("retry-after"), "1");
    const anonymous = await new Browser().request(`${server.url}/alive`);
    assert.equal(anonymous.text_, "alive"); // no cookie, no call: the page still works
  });
});
