// coatcheck.storage.local / .session: per signed-in user, per consent category.
import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";
import { browser, server, signedIn } from "../harness.mjs";

let srv;
let b;
before(async () => {
  srv = await server();
  srv.user = "";
});
afterEach(() => b?.close());
after(() => srv.close());

test("keys are namespaced per signed-in user; values come back as JSON", () => {
  b = browser(srv);
  const tab = b.open({ attrs: signedIn("alice@example.com") });
  const { local, session } = tab.cc.storage;
  assert.equal(local.set("prefs", { theme: "dark", size: 2 }), true);
  assert.deepEqual(local.get("prefs"), { theme: "dark", size: 2 });
  assert.equal(session.set("step", 3), true);
  assert.deepEqual([...b.local.items.keys()], ["coatcheck:alice%40example.com:prefs"]);
  assert.equal(tab.window.sessionStorage.key(0), "coatcheck:alice%40example.com:step");
  assert.deepEqual(local.keys(), ["prefs"]);
  local.remove("prefs");
  assert.equal(local.get("prefs"), null);
  session.clear();
  assert.equal(tab.window.sessionStorage.length, 0);
});

test("a write in a category without consent is refused; functional is the default", () => {
  b = browser(srv);
  const tab = b.open({ attrs: signedIn("alice", "") }); // no consent at all
  const { local } = tab.cc.storage;
  assert.equal(local.set("theme", "dark"), false);
  assert.equal(local.set("seen", 1, "analytics"), false);
  assert.equal(local.set("cart", ["hat"], "necessary"), true); // needs no consent
  assert.deepEqual(local.keys(), ["cart"]);
  tab.cc.consent.set(["functional"]);
  assert.equal(local.set("theme", "dark"), true);
  assert.equal(local.set("seen", 1, "analytics"), false);
});

test("at start, what another user (or an anonymous visit) left is wiped", () => {
  b = browser(srv);
  const first = b.open({ attrs: signedIn("alice") });
  first.cc.storage.local.set("prefs", 1);
  first.window.sessionStorage.setItem("not-ours", "kept"); // the app's own keys stay
  b.local.view(first).setItem("app-key", "kept");
  const next = b.open({ attrs: signedIn("bob") });
  assert.equal(next.cc.storage.local.get("prefs"), null);
  assert.deepEqual([...b.local.items.keys()], ["app-key"]);
});

test("a value JSON cannot hold is refused, not half-written", () => {
  b = browser(srv);
  const tab = b.open({ attrs: signedIn() });
  const loop = {};
  loop.self = loop;
  assert.equal(tab.cc.storage.local.set("loop", loop), false);
  assert.equal(b.local.items.size, 0);
});

test("without usable storage, reads find nothing and writes are refused", () => {
  b = browser(srv);
  const tab = b.open({ attrs: signedIn() });
  Object.defineProperty(tab.env, "localStorage", {
    get() {
      throw new Error("SecurityError: storage is disabled");
    },
  });
  assert.equal(tab.cc.storage.local.set("x", 1), false);
  assert.equal(tab.cc.storage.local.get("x"), null);
  assert.deepEqual(tab.cc.storage.local.keys(), []);
});
