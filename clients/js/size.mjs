// The size of coatcheck.js as a browser would fetch it minified: terser (compress and
// mangle, as a site's own bundler would), then gzip. `node size.mjs` prints both figures;
// test/size.test.mjs holds the file to the 6 KB aim.
import { readFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { minify } from "terser";

export const SCRIPT = new URL("../../src/coatcheck/static/coatcheck.js", import.meta.url);

export async function sizes() {
  const source = await readFile(SCRIPT, "utf8");
  const { code } = await minify(source, { module: true, compress: true, mangle: true });
  const minified = Buffer.byteLength(code);
  return { source: Buffer.byteLength(source), minified, gzip: gzipSync(code).length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const s = await sizes();
  console.log(`coatcheck.js: ${s.source} B source, ${s.minified} B minified, ${s.gzip} B minified+gzip`);
}
