// Run the built browser verifier (service/web/static/tally-verify.js) on receipt files in Node:
// the same code the "Verify a receipt" page runs. tests/web/test_verifier_js.py compares its
// verdicts with `tally audit receipt`'s.
//
//   node scripts/web/verify_cli.mjs [--rpc URL] [--ledger ADDRESS [--registry ADDRESS]
//        [--chain-id N]] [--bundle FILE] FILE...
//
// Prints one JSON array: each file's report (see the API at the top of verifier.mjs) with
// its "file". Exit status 0 when every receipt passes, 1 when one fails, 2 on bad usage.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

function usage(message) {
  process.stderr.write(`verify_cli: ${message}\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
const opts = { bundle: path.join(ROOT, "service", "web", "static", "tally-verify.js") };
const files = [];
for (let i = 0; i < args.length; i++) {
  const flag = args[i];
  const value = () => {
    if (i + 1 >= args.length) usage(`${flag} needs a value`);
    return args[++i];
  };
  if (flag === "--rpc") opts.rpcUrl = value();
  else if (flag === "--ledger") opts.ledger = value();
  else if (flag === "--registry") opts.registry = value();
  else if (flag === "--chain-id") opts.chainId = value();
  else if (flag === "--bundle") opts.bundle = path.resolve(value());
  else if (flag.startsWith("--")) usage(`unknown option ${flag}`);
  else files.push(flag);
}
if (!files.length) usage("give at least one receipt file");

// imported from a data: URL so that Node reads the .js bundle as the ES module it is
const source = readFileSync(opts.bundle).toString("base64");
const { verifyReceipt } = await import(`data:text/javascript;base64,${source}`);
const trusted = opts.ledger
  ? {
      ledger: opts.ledger,
      registry: opts.registry,
      chainId: opts.chainId === undefined ? undefined : BigInt(opts.chainId),
      source: `--ledger ${opts.ledger}`,
    }
  : undefined;
const reports = [];
for (const file of files) {
  const report = await verifyReceipt(readFileSync(file, "utf8"), { rpcUrl: opts.rpcUrl, trusted });
  reports.push({ file, ...report });
}
process.stdout.write(JSON.stringify(reports, null, 1) + "\n");
process.exitCode = reports.every((r) => r.ok) ? 0 : 1; // not exit(): stdout to a pipe must drain
