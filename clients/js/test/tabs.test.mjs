// Tabs in step: what one tab sees reaches the others at once, over BroadcastChannel and,
// where a browser has none, over storage events.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, mock, test } from "node:test";
import { browser, csrfMeta, server, settle, signedIn, until } from "../harness.mjs";

let srv;
let b;
before(async () => {
  srv = await server();
});
afterEach(() => b?.close());
after(() => srv.close());

const fill = (tab) => {
  assert.equal(tab.cc.storage.local.set("cart-draft", ["scarf"]), true);
  assert.equal(tab.cc.storage.session.set("step", 2), true);
};

for (const bus of [true, false]) {
  describe(bus ? "over BroadcastChannel" : "over storage events", () => {
    test("sign-out: a tab that starts signed out ends the others and wipes their storage", async () => {
      srv.user = "alice";
      srv.expires = Math.ceil(Date.now() / 1000) + 600;
      b = browser(srv, { bus });
      const shop = b.open({ attrs: signedIn() });
      const account = b.open({ attrs: signedIn() });
      fill(shop);
      fill(account);
      const heard = [];
      shop.cc.on("signout", () => heard.push("signout"));
      // The account tab signs out: its next page (the server's answer) is anonymous.
      srv.user = "";
      srv.expires = 0;
      const after = b.open({ attrs: `data-coatcheck-user=""` });
      await until(() => shop.went.length);
      assert.deepEqual(heard, ["signout"]);
      assert.deepEqual(shop.went, ["/"]);
      assert.equal(shop.window.sessionStorage.length, 0); // the tab's own sessionStorage too
      assert.equal(b.local.items.size, 0);
      assert.deepEqual(after.went, []); // the anonymous tab stays where it is
    });

    test("sign-in: an anonymous tab reloads when another tab starts signed in", async () => {
      srv.user = "";
      b = browser(srv, { bus });
      const visitor = b.open({ attrs: `data-coatcheck-user=""` });
      srv.user = "alice";
      srv.expires = Math.ceil(Date.now() / 1000) + 600;
      b.open({ attrs: signedIn() });
      await until(() => visitor.reloaded);
      assert.equal(visitor.reloaded, 1);
      assert.deepEqual(visitor.went, []);
    });

    test("a page that does not say who is signed in changes no other tab", async () => {
      srv.user = "alice";
      srv.expires = Math.ceil(Date.now() / 1000) + 600;
      b = browser(srv, { bus });
      const shop = b.open({ attrs: signedIn() });
      b.open({ attrs: "" }); // an error page with the script but no data-coatcheck-user
      await settle(60);
      assert.deepEqual(shop.went, []);
      assert.equal(shop.reloaded, 0);
    });

    test("expiry and revocation seen in one tab end the others", async () => {
      for (const reason of ["expired", "revoked"]) {
        srv.user = "alice";
        srv.expires = Math.ceil(Date.now() / 1000) + 600;
        b = browser(srv, { bus });
        const one = b.open({ attrs: signedIn() });
        const two = b.open({ attrs: signedIn() });
        await until(() => one.cc.deadline && two.cc.deadline);
        fill(two);
        const heard = [];
        two.cc.on(reason, () => heard.push(reason));
        if (reason === "expired") {
          // Tab one's clock reaches the deadline (tab two's timer stays on real time).
          mock.timers.enable({ apis: ["setTimeout", "Date"], now: Date.now() });
          one.cc.configure({});
          mock.timers.tick(601_000);
          mock.timers.reset();
        } else {
          srv.user = ""; // revoked from another device: the next request finds no session
          await one.env.fetch("/status?s=401");
        }
        await until(() => two.went.length);
        assert.deepEqual(heard, [reason]);
        assert.deepEqual(one.went, ["/"]);
        assert.deepEqual(two.went, ["/"]);
        assert.equal(two.window.sessionStorage.length, 0);
        assert.equal(b.local.items.size, 0);
        b.close();
      }
      b = undefined;
    });

    test("a 401 that is not the end of the session (a step-up) ends nothing", async () => {
      srv.user = "alice";
      srv.expires = Math.ceil(Date.now() / 1000) + 600;
      b = browser(srv, { bus });
      const one = b.open({ attrs: signedIn() });
      await until(() => one.cc.deadline);
      await one.env.fetch("/status?s=401"); // e.g. reauthentication_required
      await settle(60);
      assert.deepEqual(one.went, []);
    });

    test("a logout answered to fetch (Clear-Site-Data) signs every tab out", async () => {
      srv.user = "alice";
      srv.expires = Math.ceil(Date.now() / 1000) + 600;
      b = browser(srv, { bus });
      const one = b.open({ attrs: signedIn(), head: csrfMeta });
      const two = b.open({ attrs: signedIn() });
      fill(two);
      await one.env.fetch("/logout", { method: "POST" });
      await until(() => two.went.length);
      assert.deepEqual(one.went, ["/"]);
      assert.equal(two.window.sessionStorage.length, 0);
    });

    test("'stay signed in' in one tab moves the deadline of the others", async () => {
      srv.user = "alice";
      srv.expires = Math.ceil(Date.now() / 1000) + 30;
      b = browser(srv, { bus });
      const one = b.open({ attrs: signedIn(), head: csrfMeta });
      const two = b.open({ attrs: signedIn() });
      await until(() => one.cc.deadline && two.cc.deadline);
      const old = two.cc.deadline;
      assert.equal(await one.cc.keepAlive(), true);
      await until(() => two.cc.deadline > old);
      assert.ok(two.cc.deadline - Date.now() > 500_000); // the server's new ten minutes
    });

    test("a consent change reaches the other tabs and wipes what it no longer allows", async () => {
      srv.user = "alice";
      b = browser(srv, { bus });
      const one = b.open({ attrs: signedIn("alice", "functional analytics") });
      const two = b.open({ attrs: signedIn("alice", "functional analytics") });
      assert.equal(two.cc.storage.session.set("seen", [1, 2], "analytics"), true);
      assert.equal(two.cc.storage.session.set("theme", "dark"), true);
      const heard = [];
      two.cc.on("consent", (c) => heard.push(c));
      one.cc.consent.set(["functional"]);
      await until(() => heard.length);
      assert.deepEqual(heard, [["functional"]]);
      assert.deepEqual(two.cc.consent.get(), ["functional"]);
      assert.equal(two.cc.storage.session.get("seen"), null);
      assert.equal(two.cc.storage.session.get("theme"), "dark");
      assert.equal(two.cc.storage.local.set("more", 1, "analytics"), false);
      assert.deepEqual(two.went, []);
    });

    test("a page that starts with another consent brings the open tabs to it", async () => {
      srv.user = "alice";
      b = browser(srv, { bus });
      const shop = b.open({ attrs: signedIn("alice", "functional analytics") });
      assert.equal(shop.cc.storage.local.set("seen", 1, "analytics"), true);
      assert.equal(shop.cc.storage.local.set("theme", "dark"), true);
      const heard = [];
      shop.cc.on("consent", (c) => heard.push(c));
      b.open({ attrs: `data-coatcheck-user="alice"` }); // names no consent: changes none
      b.open({ attrs: signedIn("alice", "functional analytics") }); // the same: no change
      b.open({ attrs: signedIn("alice", "functional") }); // the page after a banner's answer
      await until(() => heard.length);
      await settle();
      assert.deepEqual(heard, [["functional"]]);
      assert.deepEqual(shop.cc.consent.get(), ["functional"]);
      assert.equal(shop.cc.storage.local.get("seen"), null);
      assert.equal(shop.cc.storage.local.get("theme"), "dark");
      assert.deepEqual(shop.went, []);
    });
  });
}
