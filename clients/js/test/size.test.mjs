// The aim: coatcheck.js under 6 KB once minified (terser, compress and mangle).
import assert from "node:assert/strict";
import { test } from "node:test";
import { sizes } from "../size.mjs";

test("coatcheck.js minifies to under 6 KB", async () => {
  const { minified, gzip } = await sizes();
  console.log(`coatcheck.js: ${minified} B minified, ${gzip} B minified+gzip`);
  assert.ok(minified < 6 * 1024, `${minified} B minified`);
});
