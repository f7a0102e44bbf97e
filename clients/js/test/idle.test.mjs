// The deadline from X-Session-Expires, the warning before it, "stay signed in", expiry.
import assert from "node:assert/strict";
import { after, afterEach, before, mock, test } from "node:test";
import { TOKEN, browser, csrfMeta, server, settle, signedIn, until } from "../harness.mjs";

let srv;
let b;
before(async () => {
  srv = await server();
});
afterEach(() => {
  mock.timers.reset();
  b?.close();
});
after(() => srv.close());

// From here on, node's mock clock drives Date and setTimeout; configure() makes the tab
// schedule its timers again, on that clock.
const virtualTime = (...tabs) => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: Date.now() });
  for (const tab of tabs) tab.cc.configure({});
};

const nowSeconds = () => Math.ceil(Date.now() / 1000);

test("the deadline comes from X-Session-Expires, corrected by the server's Date", async () => {
  srv.user = "alice";
  srv.skew = 3600; // the server's clock is an hour ahead of the browser's
  srv.expires = nowSeconds() + 3600 + 120; // two minutes left by the server's clock
  b = browser(srv);
  const tab = b.open({ attrs: signedIn() });
  await until(() => tab.cc.deadline);
  const left = (tab.cc.deadline - Date.now()) / 1000;
  // Date has whole seconds, so the estimate errs late by under two seconds, never early.
  assert.ok(left >= 119 && left <= 122, `left ${left}`);
  srv.skew = 0;
});

test("an anonymous page asks nothing and learns no deadline", async () => {
  srv.expires = nowSeconds() + 60;
  b = browser(srv);
  const before = srv.requests.length;
  const tab = b.open({ attrs: `data-coatcheck-user=""` });
  await tab.env.fetch("/page");
  await settle();
  assert.equal(tab.cc.deadline, null);
  assert.equal(srv.requests.length, before + 1); // only the app's own request
});

test("the warning shows warn seconds before the deadline, counting down", async () => {
  srv.user = "alice";
  srv.expires = nowSeconds() + 100;
  b = browser(srv);
  const tab = b.open({ attrs: signedIn() + ` data-coatcheck-warn="30"`, head: csrfMeta });
  await until(() => tab.cc.deadline);
  const warned = [];
  tab.cc.on("warn", (s) => warned.push(s));
  virtualTime(tab);
  const dialog = () => tab.document.querySelector("[role=alertdialog]");
  mock.timers.tick(60_000);
  assert.equal(dialog(), null); // 40 s or more left: no warning yet
  mock.timers.tick(12_000);
  assert.ok(dialog(), "warning shown with under 30 s left");
  assert.match(dialog().textContent, /signed out in 2\d s/);
  assert.equal(warned.length, 1);
  const before = dialog().textContent;
  mock.timers.tick(5_000);
  assert.notEqual(dialog().textContent, before); // the countdown moves
  assert.equal(tab.document.activeElement.textContent, "Stay signed in");
  assert.equal(warned.length, 1); // one warning, however long it counts
});

test("'Stay signed in' posts the keep-alive with the CSRF header and the warning goes", async () => {
  srv.user = "alice";
  srv.expires = nowSeconds() + 5;
  b = browser(srv);
  const tab = b.open({ attrs: signedIn() + ` data-coatcheck-warn="60"`, head: csrfMeta });
  await until(() => tab.document.querySelector("[role=alertdialog]"));
  const old = tab.cc.deadline;
  tab.document.querySelector("[role=alertdialog] button").click();
  await until(() => tab.cc.deadline > old);
  const post = srv.requests.filter((r) => r.method === "POST").at(-1);
  assert.equal(post.url, "/coatcheck/keep-alive");
  assert.equal(post.headers["x-csrf-token"], TOKEN);
  assert.equal(tab.document.querySelector("[role=alertdialog]"), null);
  assert.deepEqual(tab.went, []);
});

test("at the deadline the tab wipes its storage and leaves for the sign-in page", async () => {
  srv.user = "alice";
  srv.expires = nowSeconds() + 50;
  const seen = srv.requests.length;
  b = browser(srv);
  const tab = b.open({ attrs: signedIn() + ` data-coatcheck-sign-in="/login?next=/page"` });
  await until(() => tab.cc.deadline);
  tab.cc.storage.local.set("draft", { text: "hello" });
  tab.cc.storage.session.set("step", 2);
  const ended = [];
  tab.cc.on("expired", () => ended.push("expired"));
  virtualTime(tab);
  mock.timers.tick(45_000);
  assert.deepEqual(tab.went, []);
  mock.timers.tick(8_000);
  assert.deepEqual(ended, ["expired"]);
  assert.deepEqual(tab.went, ["/login?next=/page"]);
  assert.equal(tab.cc.storage.local.get("draft"), null);
  assert.equal(b.local.items.size, 0);
  assert.equal(tab.window.sessionStorage.length, 0);
  assert.equal(tab.cc.storage.local.set("late", 1), false); // nothing is written after the end
  // Nobody clicked: the tab never called the keep-alive to extend its own session.
  assert.deepEqual(srv.requests.slice(seen).filter((r) => r.method === "POST"), []);
});

test("a remember-me deadline a month away neither warns nor spins", async () => {
  srv.user = "alice";
  srv.expires = nowSeconds() + 30 * 86400; // past setTimeout's 24.8-day limit
  b = browser(srv);
  const tab = b.open({ attrs: signedIn() });
  await until(() => tab.cc.deadline);
  let armed = 0;
  const arm = tab.env.setTimeout;
  tab.env.setTimeout = (f, ms) => ((armed += 1), arm(f, ms));
  tab.cc.configure({});
  await settle(100);
  // A delay past the limit would fire at once, again and again: one timer is armed.
  assert.equal(armed, 1);
  assert.deepEqual(tab.went, []);
  assert.equal(tab.document.querySelector("[role=alertdialog]"), null);
});

test("a handler that returns false replaces the built-in warning", async () => {
  srv.user = "alice";
  srv.expires = nowSeconds() + 5;
  b = browser(srv);
  const seen = [];
  const tab = b.open({ attrs: signedIn(), options: { warn: 60 } });
  tab.cc.on("warn", (s) => (seen.push(s), false));
  await until(() => seen.length);
  assert.ok(seen[0] <= 6);
  assert.equal(tab.document.querySelector("[role=alertdialog]"), null);
});
