// Compile every contracts/**/*.sol with npm solc (standard JSON) and write one
// artifact per contract. Deterministic: same sources + same compiler -> same bytes.
//
//   node scripts/compile.mjs [--out DIR]      (default: contracts/build)
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CONTRACTS = path.join(ROOT, "contracts");
const NODE_MODULES = path.join(ROOT, "node_modules");

// Pinned compiler settings: change them only together with the committed artifacts.
export const SETTINGS = {
  evmVersion: "paris", // no PUSH0: runs on consortium EVMs (Besu, FISCO BCOS, ChainMaker)
  optimizer: { enabled: true, runs: 1000 },
  metadata: { bytecodeHash: "none" }, // bytecode does not depend on source comments' IPFS hash
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function listSources(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) {
      if (name !== "build") out.push(...listSources(full));
    } else if (name.endsWith(".sol")) {
      out.push(full);
    }
  }
  return out;
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

function stable(value) {
  if (Array.isArray(value)) return value.map(stable);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, stable(value[k])]));
  }
  return value;
}

function main() {
  const outIdx = process.argv.indexOf("--out");
  const outDir = outIdx > 0 ? path.resolve(process.argv[outIdx + 1]) : path.join(CONTRACTS, "build");

  const sources = {};
  for (const file of listSources(CONTRACTS)) {
    const key = path.relative(ROOT, file).split(path.sep).join("/");
    sources[key] = { content: readFileSync(file, "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };

  const findImports = (p) => {
    for (const base of [NODE_MODULES, ROOT]) {
      try {
        return { contents: readFileSync(path.join(base, p), "utf8") };
      } catch {
        /* try the next base */
      }
    }
    return { error: `not found: ${p}` };
  };

  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) {
    if (e.severity !== "error" && !/SPDX|unreachable/i.test(e.message)) {
      process.stderr.write(e.formattedMessage + "\n");
    }
  }
  if (errors.length) {
    for (const e of errors) process.stderr.write(e.formattedMessage + "\n");
    process.exit(1);
  }

  // SHA-256 of every source the compiler read (ours and OpenZeppelin's).
  const sourceHashes = {};
  for (const name of Object.keys(output.sources).sort()) {
    const text = sources[name] ? sources[name].content : findImports(name).contents;
    sourceHashes[name] = sha256(text);
  }

  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const seen = new Set();
  for (const file of Object.keys(output.contracts).sort()) {
    if (!sources[file]) continue; // only our own contracts get artifacts
    for (const [name, c] of Object.entries(output.contracts[file])) {
      if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
      if (seen.has(name)) throw new Error(`duplicate contract name ${name}`);
      seen.add(name);
      const artifact = {
        contractName: name,
        sourceName: file,
        compiler: { name: "solc", version: solc.version() },
        settings: SETTINGS,
        sources: sourceHashes,
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      };
      writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(stable(artifact), null, 2) + "\n");
    }
  }
  process.stdout.write(`compiled ${seen.size} contracts with solc ${solc.version()} -> ${path.relative(ROOT, outDir) || outDir}\n`);
}

main();
