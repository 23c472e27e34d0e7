// Compile every contracts/**/*.sol with npm solc (standard JSON) and write one artifact per
// contract, for each build profile. Deterministic: same sources + same compiler -> same bytes.
//
//   node scripts/compile.mjs [--out DIR] [--profile default|legacy]
//
// Profiles (both by default; DIR defaults to contracts/build):
//   default  solc 0.8.30, OpenZeppelin 5.4, evmVersion paris        -> DIR/
//   legacy   solc 0.8.11, OpenZeppelin 4.9, evmVersion istanbul     -> DIR/legacy/
// The legacy profile is for FISCO BCOS-class EVMs (solc <= 0.8.11, no PUSH0, BASEFEE or
// PREVRANDAO). Its `@openzeppelin/contracts/<path>` imports are remapped: to the shim
// contracts/legacy/openzeppelin/<path> when there is one, else to OpenZeppelin 4.9 (npm alias
// @openzeppelin/contracts-4.9); see contracts/legacy/README.md. contracts/legacy/ is never a
// compilation root: its files are reached only through those remappings.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CONTRACTS = path.join(ROOT, "contracts");
const NODE_MODULES = path.join(ROOT, "node_modules");
const SHIMS = path.join(CONTRACTS, "legacy", "openzeppelin");
const SKIPPED_DIRS = new Set(["build", "legacy"]);

// Pinned compiler settings: change them only together with the committed artifacts.
export const SETTINGS = {
  evmVersion: "paris", // no PUSH0: runs on consortium EVMs (Besu, ChainMaker); legacy below for FISCO BCOS
  optimizer: { enabled: true, runs: 1000 },
  metadata: { bytecodeHash: "none" }, // bytecode does not depend on source comments' IPFS hash
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function listSources(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) {
      if (!SKIPPED_DIRS.has(name)) out.push(...listSources(full));
    } else if (name.endsWith(".sol")) {
      out.push(full);
    }
  }
  return out;
}

function listAll(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...listAll(full));
    else if (name.endsWith(".sol")) out.push(full);
  }
  return out;
}

const posix = (p) => p.split(path.sep).join("/");

/** One remapping per shim file (longest prefix wins in solc), then the rest to OZ 4.9. */
function legacyRemappings() {
  const shims = listAll(SHIMS).map((file) => {
    const rel = posix(path.relative(SHIMS, file));
    return `@openzeppelin/contracts/${rel}=${posix(path.relative(ROOT, file))}`;
  });
  return [...shims, "@openzeppelin/contracts/=@openzeppelin/contracts-4.9/"];
}

export const PROFILES = {
  default: { compiler: "solc", subdir: "", settings: () => SETTINGS },
  legacy: {
    compiler: "solc-0.8.11",
    subdir: "legacy",
    settings: () => ({
      ...SETTINGS,
      evmVersion: "istanbul", // no PUSH0 (shanghai), BASEFEE (london), PREVRANDAO (paris)
      remappings: legacyRemappings(),
    }),
  },
};

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

function stable(value) {
  if (Array.isArray(value)) return value.map(stable);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, stable(value[k])]));
  }
  return value;
}

function findImports(p) {
  for (const base of [NODE_MODULES, ROOT]) {
    try {
      return { contents: readFileSync(path.join(base, p), "utf8") };
    } catch {
      /* try the next base */
    }
  }
  return { error: `not found: ${p}` };
}

function compileProfile(name, outDir) {
  const profile = PROFILES[name];
  const solc = require(profile.compiler);
  const settings = profile.settings();

  const sources = {};
  for (const file of listSources(CONTRACTS)) {
    sources[posix(path.relative(ROOT, file))] = { content: readFileSync(file, "utf8") };
  }
  const input = { language: "Solidity", sources, settings };

  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) {
    if (e.severity !== "error" && !/SPDX|unreachable/i.test(e.message)) {
      process.stderr.write(`[${name}] ${e.formattedMessage}\n`);
    }
  }
  if (errors.length) {
    for (const e of errors) process.stderr.write(`[${name}] ${e.formattedMessage}\n`);
    process.exit(1);
  }

  // SHA-256 of every source the compiler read (ours, the shims and OpenZeppelin's).
  const sourceHashes = {};
  for (const unit of Object.keys(output.sources).sort()) {
    const text = sources[unit] ? sources[unit].content : findImports(unit).contents;
    sourceHashes[unit] = sha256(text);
  }

  // Replace this profile's artifacts only (the default's folder holds the legacy folder).
  mkdirSync(outDir, { recursive: true });
  for (const old of readdirSync(outDir)) {
    if (old.endsWith(".json")) rmSync(path.join(outDir, old));
  }
  const seen = new Set();
  for (const file of Object.keys(output.contracts).sort()) {
    if (!sources[file]) continue; // only our own contracts get artifacts
    for (const [contract, c] of Object.entries(output.contracts[file])) {
      if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
      if (seen.has(contract)) throw new Error(`duplicate contract name ${contract}`);
      seen.add(contract);
      const artifact = {
        contractName: contract,
        sourceName: file,
        compiler: { name: "solc", version: solc.version() },
        settings,
        sources: sourceHashes,
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      };
      writeFileSync(path.join(outDir, `${contract}.json`), JSON.stringify(stable(artifact), null, 2) + "\n");
    }
  }
  const where = path.relative(ROOT, outDir) || outDir;
  process.stdout.write(`[${name}] compiled ${seen.size} contracts with solc ${solc.version()} -> ${where}\n`);
}

function main() {
  const arg = (flag) => {
    const i = process.argv.indexOf(flag);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const outRoot = arg("--out") ? path.resolve(arg("--out")) : path.join(CONTRACTS, "build");
  const only = arg("--profile");
  if (only !== undefined && !(only in PROFILES)) {
    process.stderr.write(`unknown profile ${only} (known: ${Object.keys(PROFILES).join(", ")})\n`);
    process.exit(2);
  }
  for (const name of only ? [only] : Object.keys(PROFILES)) {
    compileProfile(name, path.join(outRoot, PROFILES[name].subdir));
  }
}

main();
