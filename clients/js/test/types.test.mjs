// coatcheck.d.ts describes coatcheck.js: a page's uses compile under tsc --strict, and
// the module exports exactly the names the declarations do.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { test } from "node:test";
import * as module from "../../../src/coatcheck/static/coatcheck.js";

const here = new URL("..", import.meta.url).pathname;

test("types/usage.ts compiles against coatcheck.d.ts, misuses do not", () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const args = ["--noEmit", "--strict", "--target", "es2022", "--module", "esnext"];
  args.push("--moduleResolution", "bundler", "--lib", "es2022,dom", "types/usage.ts");
  try {
    execFileSync(process.execPath, [tsc, ...args], { cwd: here, stdio: "pipe" });
  } catch (e) {
    assert.fail(`tsc found errors:\n${e.stdout}${e.stderr}`);
  }
});

test("the module exports what the declarations declare", () => {
  const dts = readFileSync(new URL("../../src/coatcheck/static/coatcheck.d.ts", new URL("..", import.meta.url)), "utf8");
  const declared = [...dts.matchAll(/^export (?:function|const) (\w+)/gm)].map((m) => m[1]);
  if (/^export default /m.test(dts)) declared.push("default");
  assert.deepEqual(Object.keys(module).sort(), declared.sort());
});
