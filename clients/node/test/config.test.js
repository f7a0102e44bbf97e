// Settings a browser would silently ignore are refused when the middleware is built, as
// SessionConfig refuses them in Python; the cookie is read as the Python edges read it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { coatcheck, ConfigError } from "../src/index.js";
import { readCookie } from "../src/cookies.js";

const base = { url: "http://127.0.0.1:9", apiKey: "cc_test" };

describe("settings", () => {
  for (const [name, options, message] of [
    ["a __Host- cookie without Secure", { secure: false }, /__Host- cookie needs secure/],
    ["a __Host- cookie with a Domain", { domain: "example.com" }, /__Host- cookie needs/],
    ["a __Host- cookie on a path", { path: "/app" }, /__Host- cookie needs/],
    ["a __Secure- cookie without Secure", { cookieName: "__Secure-s", secure: false }, /__Secure- cookie needs secure/],
    ["SameSite=None without Secure", { cookieName: "s", secure: false, sameSite: "none" }, /requires secure/],
    ["an unknown SameSite", { sameSite: "sometimes" }, /lax, strict or none/],
    ["a cookie name with a space", { cookieName: "my session" }, /invalid cookieName/],
    ["a trusted origin that is not one", { trustedOrigins: ["example.com"] }, /not an origin/],
  ]) {
    it(`refuses ${name}`, () => {
      assert.throws(() => coatcheck({ ...base, ...options }), (error) => error instanceof ConfigError && message.test(error.message));
    });
  }

  it("needs the service's URL and an API key", () => {
    assert.throws(() => coatcheck({ apiKey: "k" }), /url must be/);
    assert.throws(() => coatcheck({ url: "http://127.0.0.1:9" }), /apiKey is required/);
  });

  it("allows what the Python edges allow", () => {
    assert.equal(typeof coatcheck(base), "function");
    assert.equal(typeof coatcheck({ ...base, cookieName: "sid", secure: false, path: "/app", domain: "example.com" }), "function");
    assert.equal(typeof coatcheck({ ...base, sameSite: "none" }), "function");
  });
});

describe("reading the cookie", () => {
  it("takes the first of several, unquoted, and nothing of a longer name", () => {
    assert.equal(readCookie("a=1; __Host-session=tok; __Host-session=other", "__Host-session"), "tok");
    assert.equal(readCookie('__Host-session="quoted"', "__Host-session"), "quoted");
    assert.equal(readCookie("x__Host-session=no; __Host-sessionx=no", "__Host-session"), null);
    assert.equal(readCookie(undefined, "__Host-session"), null);
  });
});
