// Build the dashboard's static assets from the lockfile's packages (`make assets`).
//
//   node scripts/web/build.mjs [--out DIR]        (DIR defaults to service/web/static)
//
// Writes, byte-identically on every run with the same node_modules (esbuild is pinned in
// package.json / package-lock.json; fixed options, no timestamps, no source maps, no
// absolute paths):
//   tally-verify.js   the receipt verifier (scripts/web/verifier.mjs with @noble/curves,
//                     @noble/hashes and the EvidenceLedger ABI), one minified ES module
//   htmx.min.js       copied from node_modules/htmx.org/dist
//   uPlot.min.js      node_modules/uplot/dist/uPlot.iife.min.js (global `uPlot`)
//   uPlot.min.css     node_modules/uplot/dist/uPlot.min.css
// tests/web/test_assets.py rebuilds into a temporary directory and compares the bytes
// with the committed files.
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const NODE_MODULES = path.join(ROOT, "node_modules");

function version(pkg) {
  return JSON.parse(readFileSync(path.join(NODE_MODULES, pkg, "package.json"), "utf8")).version;
}

export const COPIES = [
  ["htmx.org/dist/htmx.min.js", "htmx.min.js"],
  ["uplot/dist/uPlot.iife.min.js", "uPlot.min.js"],
  ["uplot/dist/uPlot.min.css", "uPlot.min.css"],
];

export async function buildAssets(out) {
  mkdirSync(out, { recursive: true });
  const banner =
    "/* Tally receipt verifier (scripts/web/verifier.mjs), built by scripts/web/build.mjs " +
    `with esbuild ${version("esbuild")}, @noble/curves ${version("@noble/curves")}, ` +
    `@noble/hashes ${version("@noble/hashes")}; do not edit: make assets */`;
  await build({
    absWorkingDir: ROOT,
    entryPoints: ["scripts/web/verifier.mjs"],
    outfile: path.join(out, "tally-verify.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2020"],
    minify: true,
    legalComments: "eof",
    charset: "utf8",
    sourcemap: false,
    metafile: false,
    logLevel: "warning",
    banner: { js: banner },
  });
  for (const [from, to] of COPIES) copyFileSync(path.join(NODE_MODULES, from), path.join(out, to));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf("--out");
  const out = at > 0 ? path.resolve(process.argv[at + 1]) : path.join(ROOT, "service", "web", "static");
  await buildAssets(out);
}
