// The Express example of docs/service.md, as the page shows it, run against a real
// `coatcheck serve`; and the calls one request costs, counted by the service's /metrics.

import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import express from "express";

import { coatcheck } from "../src/index.js";
import { Browser, listen } from "../support/browser.js";
import { startService } from "../support/serve.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const DOC = join(HERE, "..", "..", "..", "docs", "service.md");

async function documentedApp() {
  const text = await readFile(DOC, "utf8");
  const blocks = [...text.matchAll(/^```js\n([\s\S]*?)^```\n/gm)].map((m) => m[1]);
  const [block] = blocks.filter((b) => b.includes('from "coatcheck-express"'));
  assert.ok(block, "docs/service.md has no Express example");
  // Inside the package, so "coatcheck-express" resolves to this very package.
  const file = join(HERE, "..", "support", `.docs-example-${process.pid}.mjs`);
  await writeFile(file, block);
  try {
    return (await import(file)).default;
  } finally {
    await rm(file, { force: true });
  }
}

async function counts(service) {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  const found = {};
  for (const [, operation, value] of text.matchAll(/^coatcheck_request_duration_seconds_count\{operation="([^"]+)"\} (\S+)$/gm)) {
    found[operation] = Number(value);
  }
  return found;
}

function added(before, after) {
  const out = {};
  for (const [op, n] of Object.entries(after)) {
    if (op !== "metrics" && n !== (before[op] ?? 0)) out[op] = n - (before[op] ?? 0); // reading counts itself
  }
  return out;
}

describe("docs/service.md's Express example", () => {
  let service;
  let server;
  before(async () => {
    service = await startService();
    process.env.COATCHECK_URL = service.url;
    process.env.COATCHECK_API_KEY = service.apiKey;
    server = await listen(await documentedApp());
  });
  after(async () => {
    await server?.close();
    await service?.stop();
  });

  it("counts visits, logs in and out as the page says", async () => {
    const browser = new Browser();
    const first = await browser.request(`${server.url}/`);
    const [, who, visit, csrf] = first.text_.match(/^(\S+), visit (\d+), csrf (\S+)$/);
    assert.deepEqual([who, visit, csrf.length], ["anonymous", "1", 86]);
    const login = await browser.request(`${server.url}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: server.url },
      body: `username=alice&csrf_token=${csrf}`,
    });
    assert.equal(login.status, 303);
    const signedIn = await browser.request(`${server.url}/`);
    assert.match(signedIn.text_, /^alice, visit 2, csrf [A-Za-z0-9_-]{86}$/);
    const fresh = signedIn.text_.split(" ").at(-1);
    const logout = await browser.request(`${server.url}/logout`, { method: "POST", headers: { "x-csrf-token": fresh } });
    assert.equal(logout.status, 303);
    assert.equal(browser.cookies.size, 0);
    assert.match((await browser.request(`${server.url}/`)).text_, /^anonymous, visit 1, /);
  });
});

describe("the calls a request costs", () => {
  let service;
  let server;
  before(async () => {
    service = await startService();
    const app = express();
    app.use(coatcheck({ url: service.url, apiKey: service.apiKey }));
    app.get("/read", (req, res) => res.send(String(req.session.get("n") ?? 0)));
    app.get("/write", (req, res) => {
      req.session.set("n", (req.session.get("n") ?? 0) + 1);
      req.session.set("m", 1);
      req.session.delete("gone");
      res.send("ok");
    });
    app.get("/login", async (req, res) => {
      await req.session.login("ivy");
      res.send("ok");
    });
    server = await listen(app);
  });
  after(async () => {
    await server?.close();
    await service?.stop();
  });

  it("none without a cookie, one introspect to read, one update more to write", async () => {
    const browser = new Browser();
    let before = await counts(service);
    await browser.request(`${server.url}/read`);
    assert.deepEqual(added(before, await counts(service)), {}); // no cookie, no session: no call

    before = await counts(service);
    await browser.request(`${server.url}/write`);
    assert.deepEqual(added(before, await counts(service)), { "sessions.create": 1 });

    before = await counts(service);
    assert.equal((await browser.request(`${server.url}/read`)).text_, "1");
    assert.deepEqual(added(before, await counts(service)), { "sessions.introspect": 1 });

    before = await counts(service);
    await browser.request(`${server.url}/write`); // two sets and a delete: one delta
    assert.deepEqual(added(before, await counts(service)), { "sessions.introspect": 1, "sessions.update": 1 });

    before = await counts(service);
    await browser.request(`${server.url}/login`);
    assert.deepEqual(added(before, await counts(service)), { "sessions.introspect": 1, "sessions.login": 1 });
  });
});
