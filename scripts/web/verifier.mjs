// Tally receipt verifier: checks a receipt document in the browser (or Node >= 20),
// trusting no server. Built into service/web/static/tally-verify.js by
// scripts/web/build.mjs (`make assets`); the dashboard's "Verify a receipt" page loads it.
//
// ---------------------------------------------------------------------------------------
// API (ES module)
//
//   import { verifyReceipt } from "/static/tally-verify.js";
//
//   const report = await verifyReceipt(input, options);
//
//   input    the receipt: its JSON text (a string; preferred, integers are read exactly)
//            or an already-parsed object (integers beyond 2**53 are then refused).
//   options  {
//     rpcUrl:   "http://127.0.0.1:8545"   JSON-RPC URL of a node of the receipt's chain;
//                                         omitted / empty: offline (chain checks skipped)
//     trusted:  { ledger: "0x…",          optional pinned deployment (what `tally audit
//                 registry: "0x…",        receipt --deployment/--ledger` pins): the
//                 chainId: 31337,         deployment check runs against it; without it
//                 source: "…" }           that check is skipped, not passed
//     fetch:    a fetch function          (default globalThis.fetch)
//     timeoutMs: 15000                    per JSON-RPC request
//   }
//
//   report = {
//     ok:           true | false,         no check failed (skipped checks do not fail)
//     offline:      true | false,         no rpcUrl was given
//     subject:      "receipt 0x…",
//     verdict:      "PASS receipt 0x…: …" | "FAIL receipt 0x…: check 'units' failed: …",
//     firstFailure: { name, ok, detail } | null,
//     checks:       [{ name, ok, detail }, …],   ok: true (holds) | false (fails)
//                                                 | null (skipped; detail says why)
//     form:         "legacy" (v1) | "full" (v2 with salt) | "reduced" (v2, disclosures)
//                   | null (malformed),
//     fields:       reduced receipts only, else null: { proven: [field names disclosed],
//                   hidden: [the other field names], values: {name: value} } with values
//                   as strings (integers in decimal, bytes32 as 0x hex, addresses EIP-55)
//                   or lists of them
//   }
//
//   Never throws for a bad receipt (that is a failed check). A node that cannot be
//   reached fails chain_id ("the node cannot be reached: …") and skips the rest.
//   trusted.chainId / trusted.registry may be null or omitted (not compared then).
//
//   The check names and their order are those of `tally audit receipt`
//   (service/audit/receipt.py): legacy and full receipts: document, signatures, entry_id,
//   leaf, inclusion; reduced receipts: document, disclosures, signer_fields, signatures,
//   entry_id (always skipped: hidden), leaf, inclusion; then [witness_cosignatures,]
//   chain_id, deployment, checkpoint, contract_inclusion, anchor_tx, roles. The browser does not replay the registry's
//   events (roles) nor verify witness cosignatures: those are reported as skipped with a
//   reason, as is deployment when no `trusted` pin is given.
//
//   Also exported: verifyInclusion(leafHash, index, size, proof, root) and
//   verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) (RFC 9162; hashes as
//   Uint8Array(32), sizes as numbers or BigInt; async, resolve to booleans), leafHash(data),
//   hexToBytes / bytesToHex, OFFLINE_CHECKS, REDUCED_OFFLINE_CHECKS, CHAIN_CHECKS,
//   ENTRY_TYPES.
// ---------------------------------------------------------------------------------------

import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { abi as LEDGER_ABI } from "../../contracts/build/EvidenceLedger.json";

export const OFFLINE_CHECKS = ["document", "signatures", "entry_id", "leaf", "inclusion"];
export const REDUCED_OFFLINE_CHECKS = [
  "document",
  "disclosures",
  "signer_fields",
  "signatures",
  "entry_id",
  "leaf",
  "inclusion",
];
export const CHAIN_CHECKS = [
  "chain_id",
  "deployment",
  "checkpoint",
  "contract_inclusion",
  "anchor_tx",
  "roles",
];
export const WITNESS_CHECK = "witness_cosignatures";

const MAX_PROOF_LEN = 64;
const UINT64 = 1n << 64n;
const UINT256 = 1n << 256n;
const ZERO_TX = "0x" + "00".repeat(32);
const ZERO_ADDRESS = "0x" + "00".repeat(20);
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = SECP256K1_N / 2n;
const ENTRY_MAGIC = utf8("TALLY-ENTRY-V1");
const COMMIT_MAGIC = utf8("TALLY-COMMIT-V2");
const LEAF_COMMITMENT = 0x02;
const MAX_DISCLOSURE_CHARS = 8192;
const MAX_JSON_DEPTH = 64;

class Invalid extends Error {}

// --- bytes -------------------------------------------------------------------------------

function utf8(text) {
  return new TextEncoder().encode(text);
}

export function bytesToHex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

function hex0x(bytes) {
  return "0x" + bytesToHex(bytes);
}

const HEX_RE = /^[0-9a-fA-F]*$/;

export function hexToBytes(hex) {
  const digits = hex.startsWith("0x") ? hex.slice(2) : hex;
  if (digits.length % 2 || !HEX_RE.test(digits)) throw new Invalid(`not hex: ${hex}`);
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function uintBytes(value, size) {
  const out = new Uint8Array(size);
  let v = BigInt(value);
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function word(value) {
  return uintBytes(BigInt.asUintN(256, BigInt(value)), 32);
}

function bytesToBig(bytes) {
  return bytes.length ? BigInt("0x" + bytesToHex(bytes)) : 0n;
}

function keccak(data) {
  return keccak_256(data);
}

async function sha256(data) {
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data));
}

// --- JSON: integers stay exact (BigInt), floats are marked ------------------------------

class JsonFloat {
  constructor(text) {
    this.text = text;
  }
  toString() {
    return this.text;
  }
}

function parseJson(text) {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const fail = (why) => {
    throw new Invalid(`not valid JSON: ${why} at offset ${i}`);
  };
  const value = (depth) => {
    if (depth > 1000) fail("nested too deep");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj = Object.create(null);
      ws();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const key = string();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        obj[key] = value(depth + 1);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return obj;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const arr = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [lit, v] of [
      ["true", true],
      ["false", false],
      ["null", null],
      ["NaN", new JsonFloat("NaN")], // Python's json reads these three as floats
      ["Infinity", new JsonFloat("Infinity")],
      ["-Infinity", new JsonFloat("-Infinity")],
    ]) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 4096));
    if (!m || m[0] === "" || m[0] === "-") fail("unexpected character");
    i += m[0].length;
    return m[2] || m[3] ? new JsonFloat(m[0]) : BigInt(m[0]);
  };
  const string = () => {
    i++; // opening quote
    let out = "";
    for (;;) {
      if (i >= text.length) fail("unterminated string");
      const c = text[i];
      if (c === '"') {
        i++;
        return out;
      }
      if (c < " ") fail("control character in a string");
      if (c === "\\") {
        const e = text[i + 1];
        const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
        if (e in simple) {
          out += simple[e];
          i += 2;
        } else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else fail("bad escape");
      } else {
        out += c;
        i++;
      }
    }
  };
  const result = value(0);
  ws();
  if (i !== text.length) fail("extra data");
  return result;
}

/** A JS value (from JSON.parse or our parser) as our JSON model: ints BigInt. */
function fromPlain(value) {
  if (typeof value === "number") {
    if (!Number.isInteger(value)) return new JsonFloat(String(value));
    if (!Number.isSafeInteger(value))
      throw new Invalid(`the number ${value} is beyond 2**53: pass the receipt as JSON text`);
    return BigInt(value);
  }
  if (Array.isArray(value)) return value.map(fromPlain);
  if (value !== null && typeof value === "object" && !(value instanceof JsonFloat)) {
    const obj = Object.create(null);
    for (const [k, v] of Object.entries(value)) obj[k] = fromPlain(v);
    return obj;
  }
  return value;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof JsonFloat);
}

function has(obj, key) {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

function typeName(v) {
  if (v === null) return "NoneType";
  if (typeof v === "bigint") return "int";
  if (v instanceof JsonFloat) return "float";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "string") return "str";
  if (Array.isArray(v)) return "list";
  return "dict";
}

function repr(v) {
  if (typeof v === "string") return `'${v}'`;
  if (typeof v === "bigint" || v instanceof JsonFloat) return String(v);
  if (v === true) return "True";
  if (v === false) return "False";
  if (v === null) return "None";
  return JSON.stringify(v, (k, x) => (typeof x === "bigint" ? Number(x) : x));
}

// Python's json.dumps(..., separators=(",", ":"), ensure_ascii=False) of message values.
function dumpJson(v) {
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(dumpJson).join(",") + "]";
  if (v === true) return "true";
  if (v === false) return "false";
  if (v === null) return "null";
  throw new Error("dumpJson: unsupported value");
}

// --- addresses ---------------------------------------------------------------------------

function toChecksum(lowerHex40) {
  const digest = bytesToHex(keccak(utf8(lowerHex40)));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const c = lowerHex40[i];
    out += c > "9" && digest[i] > "7" ? c.toUpperCase() : c;
  }
  return out;
}

function checksumOf(bytes20) {
  return toChecksum(bytesToHex(bytes20));
}

/** parse_address: 0x + 40 hex; mixed case must be the EIP-55 checksum. Returns it checksummed. */
function parseAddress(value) {
  if (typeof value !== "string")
    throw new Invalid(`an address must be a 0x-prefixed hex string, got ${typeName(value)}`);
  if (value.length !== 42 || !value.startsWith("0x") || !HEX_RE.test(value.slice(2)))
    throw new Invalid(`an address is 0x followed by 40 hex digits, got ${repr(value)}`);
  const digits = value.slice(2);
  const checksummed = toChecksum(digits.toLowerCase());
  if (digits !== digits.toLowerCase() && digits !== digits.toUpperCase() && value !== checksummed)
    throw new Invalid(`address ${repr(value)} has a wrong EIP-55 checksum`);
  return checksummed;
}

// --- entry types ---------------------------------------------------------------------------

const T = {
  b32: "bytes32",
  addr: "address",
  u8: "uint8",
  u16: "uint16",
  u64: "uint64",
  u256: "uint256",
  addrs: "address[]",
  u256s: "uint256[]",
  i256s: "int256[]",
  str: "string",
};

// Field kinds beyond the Solidity type: "party" (address, not zero), "contract" (zero
// allowed), string byte caps. Order = the EIP-712 type string (the Python models' order).
const AGREEMENT_FIELDS = [
  ["agreementId", T.b32],
  ["assetId", T.b32],
  ["consumer", T.addr],
  ["providers", T.addrs],
  ["unitPrice", T.u256],
  ["policyHash", T.b32],
  ["validFrom", T.u64],
  ["validUntil", T.u64],
];

export const ENTRY_TYPES = {
  Agreement: { tag: 1, fields: AGREEMENT_FIELDS },
  UsageReceipt: {
    tag: 2,
    fields: [
      ["agreementId", T.b32],
      ["consumer", T.addr],
      ["provider", T.addr],
      ["units", T.u64],
      ["periodStart", T.u64],
      ["periodEnd", T.u64],
      ["detailHash", T.b32],
      ["nonce", T.u64],
    ],
  },
  QualityAttestation: {
    tag: 3,
    fields: [
      ["agreementId", T.b32],
      ["provider", T.addr],
      ["periodStart", T.u64],
      ["periodEnd", T.u64],
      ["scoreBps", T.u16],
    ],
  },
  ContributionDeclaration: {
    tag: 4,
    fields: [
      ["agreementId", T.b32],
      ["provider", T.addr],
      ["kind", T.u8],
      ["value", T.u256],
      ["periodStart", T.u64],
      ["periodEnd", T.u64],
    ],
  },
  CoalitionValues: {
    tag: 5,
    fields: [
      ["agreementId", T.b32],
      ["periodStart", T.u64],
      ["periodEnd", T.u64],
      ["providers", T.addrs],
      ["values", T.u256s],
    ],
  },
  AgreementV2: {
    tag: 6,
    fields: [
      ...AGREEMENT_FIELDS,
      ["offerId", T.b32],
      ["offerVersion", T.u64],
      ["termsHash", T.b32],
      ["homeChainId", T.u256],
      ["homeRegistry", T.addr],
    ],
  },
  Offer: {
    tag: 7,
    fields: [
      ["offerId", T.b32],
      ["version", T.u64],
      ["providers", T.addrs],
      ["title", T.str],
      ["description", T.str],
      ["keywords", T.str],
      ["theme", T.str],
      ["license", T.str],
      ["formats", T.str],
      ["metadataHash", T.b32],
      ["metadataUrl", T.str],
      ["pricing", T.str],
      ["terms", T.str],
      ["validFrom", T.u64],
      ["validUntil", T.u64],
    ],
  },
  OfferWithdrawal: {
    tag: 8,
    fields: [
      ["offerId", T.b32],
      ["version", T.u64],
      ["providers", T.addrs],
    ],
  },
  RevenueDeclaration: {
    tag: 9,
    fields: [
      ["agreementId", T.b32],
      ["consumer", T.addr],
      ["periodStart", T.u64],
      ["periodEnd", T.u64],
      ["revenue", T.u256],
      ["reportHash", T.b32],
      ["nonce", T.u64],
    ],
  },
  ValuationResult: {
    tag: 10,
    fields: [
      ["agreementId", T.b32],
      ["periodStart", T.u64],
      ["periodEnd", T.u64],
      ["method", T.u8],
      ["paramsHash", T.b32],
      ["checkpointSize", T.u64],
      ["seed", T.b32],
      ["utilityHash", T.b32],
      ["providers", T.addrs],
      ["values", T.i256s],
      ["stderrs", T.u256s],
      ["utilityCalls", T.u64],
    ],
  },
};

const CONTRACT_FIELDS = new Set(["homeRegistry"]); // addresses where zero is allowed
const STRING_CAPS = {
  title: 256,
  description: 4096,
  keywords: 4096,
  theme: 256,
  license: 256,
  formats: 256,
  metadataUrl: 256,
  pricing: 16384,
  terms: 16384,
};

for (const [name, t] of Object.entries(ENTRY_TYPES)) {
  t.name = name;
  t.typeString = `${name}(${t.fields.map(([n, ty]) => `${ty} ${n}`).join(",")})`;
  t.typeHash = keccak(utf8(t.typeString));
}

// --- field parsing (the pydantic validators of service/evidence/entries.py) ----------------

function parseUint(value, bits) {
  if (typeof value === "boolean" || (typeof value !== "bigint" && typeof value !== "string"))
    throw new Invalid(`uint${bits} must be an integer or a decimal string, got ${typeName(value)}`);
  let v = value;
  if (typeof value === "string") {
    if (!/^[0-9]+$/.test(value))
      throw new Invalid(`uint${bits} string must be decimal digits, got ${repr(value)}`);
    v = BigInt(value);
  }
  if (v < 0n || v >= 1n << BigInt(bits))
    throw new Invalid(`uint${bits} must be in [0, 2**${bits} - 1], got ${v}`);
  return v;
}

function parseInt256(value) {
  if (typeof value === "boolean" || (typeof value !== "bigint" && typeof value !== "string"))
    throw new Invalid(`int256 must be an integer or a decimal string, got ${typeName(value)}`);
  let v = value;
  if (typeof value === "string") {
    if (!/^-?[0-9]+$/.test(value))
      throw new Invalid(`int256 string must be decimal digits with an optional -, got ${repr(value)}`);
    v = BigInt(value);
  }
  if (v < -(1n << 255n) || v >= 1n << 255n)
    throw new Invalid(`int256 must be in [-2**255, 2**255 - 1], got ${v}`);
  return v;
}

function parseBytes32(value) {
  if (typeof value !== "string")
    throw new Invalid(`bytes32 must be a 0x-prefixed hex string, got ${typeName(value)}`);
  if (!value.startsWith("0x")) throw new Invalid("bytes32 must be 0x followed by 64 hex digits");
  const digits = value.slice(2);
  if (digits.length !== 64)
    throw new Invalid(`bytes32 must be 0x followed by 64 hex digits, got ${digits.length} digits`);
  if (!HEX_RE.test(digits)) throw new Invalid("bytes32 must be 0x followed by 64 hex digits");
  return hexToBytes(digits);
}

function parseParty(value) {
  const a = parseAddress(value);
  if (a === ZERO_ADDRESS) throw new Invalid("the zero address cannot be a party");
  return a;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function parseString(value, cap) {
  if (typeof value !== "string") throw new Invalid(`must be a string, got ${typeName(value)}`);
  // Python counts a lone surrogate as 3 bytes (surrogatepass) before refusing it
  let size = 0;
  for (const ch of value) {
    const cp = ch.codePointAt(0);
    size += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  if (size > cap) throw new Invalid(`must be at most ${cap} UTF-8 bytes, got ${size}`);
  if (LONE_SURROGATE.test(value)) throw new Invalid("must be valid Unicode (no lone surrogates)");
  return value;
}

function parseField(name, type, raw) {
  switch (type) {
    case T.b32:
      return parseBytes32(raw);
    case T.addr:
      return CONTRACT_FIELDS.has(name) ? parseAddress(raw) : parseParty(raw);
    case T.u8:
      return parseUint(raw, 8);
    case T.u16:
      return parseUint(raw, 16);
    case T.u64:
      return parseUint(raw, 64);
    case T.u256:
      return parseUint(raw, 256);
    case T.str:
      return parseString(raw, STRING_CAPS[name]);
    case T.addrs:
    case T.u256s:
    case T.i256s: {
      if (!Array.isArray(raw)) throw new Invalid("Input should be a valid tuple");
      const item =
        type === T.addrs ? parseParty : type === T.u256s ? (v) => parseUint(v, 256) : parseInt256;
      return raw.map((v, i) => {
        try {
          return item(v);
        } catch (err) {
          if (err instanceof Invalid) throw new Invalid(`${i}: ${err.message}`);
          throw err;
        }
      });
    }
    default:
      throw new Error(`unknown type ${type}`);
  }
}

function addrBytes(a) {
  return hexToBytes(a.slice(2));
}

function checkAscending(addresses, name) {
  for (let i = 1; i < addresses.length; i++) {
    if (compareBytes(addrBytes(addresses[i - 1]), addrBytes(addresses[i])) >= 0)
      throw new Invalid(
        `${name} must be distinct and sorted by ascending address: ` +
          `${addresses[i - 1]} comes before ${addresses[i]}`,
      );
  }
}

function checkPeriod(start, end, s, e) {
  if (start >= end) throw new Invalid(`${s} (${start}) must be before ${e} (${end})`);
}

function checkProviders(m, max = 256) {
  if (!(m.providers.length >= 1 && m.providers.length <= max))
    throw new Invalid(`providers must have 1 to ${max} addresses`);
  checkAscending(m.providers, "providers");
}

function checkListText(value, name) {
  if (value === "") return;
  const items = value.split(",");
  for (const item of items)
    if (!item || item !== item.trim())
      throw new Invalid(`${name} is a comma-separated list of non-empty, trimmed items`);
  if (new Set(items).size !== items.length) throw new Invalid(`${name} lists an item twice`);
}

// RFC 8785 canonical text of a parsed JSON value (service/catalog/canonical.py)
function canonical(v) {
  if (typeof v === "bigint") {
    if (v > 2n ** 53n - 1n || v < -(2n ** 53n - 1n)) throw new Invalid("integer beyond 2**53");
    return v.toString();
  }
  if (typeof v === "string") {
    if (LONE_SURROGATE.test(v)) throw new Invalid("lone surrogate");
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  if (v === true || v === false || v === null) return String(v);
  if (v instanceof JsonFloat) throw new Invalid("float");
  const keys = Object.keys(v).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)); // UTF-16 order
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}";
}

function depthOf(v) {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf));
  if (isObject(v)) return 1 + Math.max(0, ...Object.values(v).map(depthOf));
  return 0;
}

function hasFloat(v) {
  if (v instanceof JsonFloat) return true;
  if (Array.isArray(v)) return v.some(hasFloat);
  if (isObject(v)) return Object.values(v).some(hasFloat);
  return false;
}

function parseCanonical(text, what) {
  let value;
  try {
    value = parseJson(text);
  } catch {
    throw new Invalid(`${what} is not JSON`);
  }
  if (depthOf(value) > MAX_JSON_DEPTH) throw new Invalid(`${what} nests too deep`);
  if (!isObject(value)) throw new Invalid(`${what} must be a JSON object, got ${typeName(value)}`);
  if (hasFloat(value))
    throw new Invalid(`${what} must not hold non-integer numbers (amounts are integers)`);
  let canon;
  try {
    canon = canonical(value);
  } catch {
    throw new Invalid(`${what} is not canonicalisable JSON`);
  }
  if (canon !== text)
    throw new Invalid(`${what} is not in RFC 8785 canonical form (sorted keys, no spaces)`);
}

const RULES = {
  Agreement(m) {
    checkProviders(m);
    if (m.providers.includes(m.consumer))
      throw new Invalid("the consumer cannot also be a provider of the agreement");
    checkPeriod(m.validFrom, m.validUntil, "validFrom", "validUntil");
  },
  AgreementV2(m) {
    RULES.Agreement(m);
    if (m.offerId.every((b) => b === 0) && m.offerVersion !== 0n)
      throw new Invalid("offerVersion must be 0 when offerId is zero (no offer)");
    if ((m.homeChainId === 0n) !== (m.homeRegistry === ZERO_ADDRESS))
      throw new Invalid(
        "homeChainId and homeRegistry are given together (another space's chain id " +
          "and registry) or both zero (this space)",
      );
  },
  UsageReceipt(m) {
    if (m.consumer === m.provider)
      throw new Invalid("consumer and provider must be different parties");
    checkPeriod(m.periodStart, m.periodEnd, "periodStart", "periodEnd");
  },
  QualityAttestation(m) {
    if (m.scoreBps > 10000n) throw new Invalid(`scoreBps must be at most 10000, got ${m.scoreBps}`);
    checkPeriod(m.periodStart, m.periodEnd, "periodStart", "periodEnd");
  },
  ContributionDeclaration(m) {
    if (m.kind !== 1n && m.kind !== 2n)
      throw new Invalid(`kind must be one of 1 (input_cost), 2 (risk_tier), got ${m.kind}`);
    checkPeriod(m.periodStart, m.periodEnd, "periodStart", "periodEnd");
  },
  CoalitionValues(m) {
    checkProviders(m, 16);
    const n = m.providers.length;
    if (m.values.length !== 1 << n)
      throw new Invalid(
        `values must have 2**${n} = ${1 << n} items (one per coalition of ${n} providers), ` +
          `got ${m.values.length}`,
      );
    checkPeriod(m.periodStart, m.periodEnd, "periodStart", "periodEnd");
  },
  Offer(m) {
    checkProviders(m);
    if (m.offerId.every((b) => b === 0))
      throw new Invalid("offerId must not be zero (zero means no offer in an AgreementV2)");
    if (m.version === 0n) throw new Invalid("version starts at 1 (0 means no offer in an AgreementV2)");
    if (!m.title.trim()) throw new Invalid("title must not be empty");
    checkListText(m.keywords, "keywords");
    checkListText(m.formats, "formats");
    parseCanonical(m.pricing, "pricing");
    parseCanonical(m.terms, "terms");
    checkPeriod(m.validFrom, m.validUntil, "validFrom", "validUntil");
  },
  OfferWithdrawal(m) {
    checkProviders(m);
    if (m.version === 0n) throw new Invalid("version starts at 1");
  },
  RevenueDeclaration(m) {
    checkPeriod(m.periodStart, m.periodEnd, "periodStart", "periodEnd");
  },
  ValuationResult(m) {
    checkProviders(m);
    const n = m.providers.length;
    if (m.values.length !== n || m.stderrs.length !== n)
      throw new Invalid(
        `values and stderrs must have one item per provider (${n}), ` +
          `got ${m.values.length} and ${m.stderrs.length}`,
      );
    if (m.method === 0n) throw new Invalid("method 0 is not a valuation method");
    checkPeriod(m.periodStart, m.periodEnd, "periodStart", "periodEnd");
  },
};

/** parse_entry: the typed message, or Invalid naming the bad fields. */
function parseEntry(typeName_, data) {
  const type = has(ENTRY_TYPES, typeName_) ? ENTRY_TYPES[typeName_] : null;
  if (type === null)
    throw new Invalid(
      `unknown entry_type ${repr(typeName_)}; expected one of ${Object.keys(ENTRY_TYPES).join(", ")}`,
    );
  if (!isObject(data))
    throw new Invalid(`${type.name} must be a JSON object, got ${typeName(data)}`);
  const problems = [];
  const message = {};
  for (const [name, ftype] of type.fields) {
    if (!has(data, name)) {
      problems.push(`${name}: Field required`);
      continue;
    }
    try {
      message[name] = parseField(name, ftype, data[name]);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      problems.push(`${name}: ${err.message}`);
    }
  }
  const known = new Set(type.fields.map(([n]) => n));
  for (const key of Object.keys(data))
    if (!known.has(key)) problems.push(`${key}: Extra inputs are not permitted`);
  if (!problems.length) {
    try {
      RULES[type.name](message);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      problems.push(`(entry): ${err.message}`);
    }
  }
  if (problems.length) throw new Invalid(`invalid ${type.name}: ${problems.join("; ")}`);
  return { type, message };
}

/** The message in its receipt JSON form (Entry.message(): pydantic's JSON mode). */
function messageJson(type, message) {
  const out = {};
  for (const [name, ftype] of type.fields) {
    const v = message[name];
    if (ftype === T.b32) out[name] = hex0x(v);
    else if (ftype === T.u256) out[name] = v.toString();
    else if (ftype === T.u256s || ftype === T.i256s) out[name] = v.map((x) => x.toString());
    else out[name] = v; // addresses (checksummed), narrow uints (BigInt -> JSON numbers), strings
  }
  return out;
}

/** A parsed field value for the page: hex, decimal strings for every integer, strings. */
function jsonValue(ftype, v) {
  if (ftype === T.b32) return hex0x(v);
  if (Array.isArray(v)) return v.map((x) => (typeof x === "bigint" ? x.toString() : x));
  return typeof v === "bigint" ? v.toString() : v;
}

// --- EIP-712 and ABI ---------------------------------------------------------------------

function encodeWord(ftype, v) {
  switch (ftype) {
    case T.b32:
      return v;
    case T.addr:
      return concat(new Uint8Array(12), addrBytes(v));
    case T.str:
      return keccak(utf8(v));
    case T.addrs:
      return keccak(concat(...v.map((a) => concat(new Uint8Array(12), addrBytes(a)))));
    case T.u256s:
    case T.i256s:
      return keccak(concat(...v.map(word)));
    default:
      return word(v); // uintN; int256 two's complement
  }
}

function hashStruct(type, message) {
  return keccak(concat(type.typeHash, ...type.fields.map(([n, t]) => encodeWord(t, message[n]))));
}

function abiEncode(type, message) {
  const head = [];
  const tail = [];
  let tailSize = 0;
  const headSize = 32 * type.fields.length;
  for (const [name, ftype] of type.fields) {
    const v = message[name];
    let chunk = null;
    if (ftype.endsWith("[]")) {
      const item = ftype === T.addrs ? (a) => concat(new Uint8Array(12), addrBytes(a)) : word;
      chunk = concat(word(v.length), ...v.map(item));
    } else if (ftype === T.str) {
      const raw = utf8(v);
      chunk = concat(word(raw.length), raw, new Uint8Array((32 - (raw.length % 32)) % 32));
    }
    if (chunk === null) head.push(encodeWord(ftype, v));
    else {
      head.push(word(headSize + tailSize));
      tail.push(chunk);
      tailSize += chunk.length;
    }
  }
  return concat(...head, ...tail);
}

const DOMAIN_TYPE_HASH = keccak(
  utf8("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
);

function domainSeparator(chainId, contract) {
  return keccak(
    concat(
      DOMAIN_TYPE_HASH,
      keccak(utf8("Tally")),
      keccak(utf8("1")),
      word(chainId),
      concat(new Uint8Array(12), addrBytes(contract)),
    ),
  );
}

// --- signatures --------------------------------------------------------------------------

function parseSignature(value) {
  if (typeof value !== "string")
    throw new Invalid(`a signature must be a 0x hex string, got ${typeName(value)}`);
  if (!value.startsWith("0x") || !HEX_RE.test(value.slice(2)))
    throw new Invalid("a signature is 0x followed by 130 hex digits");
  if (value.length !== 132)
    throw new Invalid(
      `a signature is 65 bytes (130 hex digits), got ${value.length - 2} hex digits`,
    );
  const sig = hexToBytes(value.slice(2));
  let v = sig[64];
  if (v === 0 || v === 1) v += 27;
  else if (v !== 27 && v !== 28) throw new Invalid(`signature v must be 27 or 28 (or 0/1), got ${v}`);
  const r = bytesToBig(sig.subarray(0, 32));
  const s = bytesToBig(sig.subarray(32, 64));
  if (!(r > 0n && r < SECP256K1_N)) throw new Invalid("signature r is out of range");
  if (!(s > 0n && s < SECP256K1_N)) throw new Invalid("signature s is out of range");
  if (s > HALF_N) throw new Invalid("signature s is in the upper half of the curve order (EIP-2)");
  const out = sig.slice();
  out[64] = v;
  return out;
}

/** SignedEntry construction: signer -> normalised signature, sorted by signer address. */
function parseSignatures(raw) {
  const map = new Map();
  for (const [key, sig] of Object.entries(raw)) {
    let signer;
    try {
      signer = parseAddress(key);
    } catch (err) {
      if (err instanceof Invalid) throw new Invalid(`signer ${repr(key)}: ${err.message}`);
      throw err;
    }
    if (map.has(signer)) throw new Invalid(`two signatures are given for ${signer}`);
    map.set(signer, parseSignature(sig));
  }
  return new Map([...map].sort((a, b) => compareBytes(addrBytes(a[0]), addrBytes(b[0]))));
}

function recoverAddress(digest, sig) {
  try {
    const r = bytesToBig(sig.subarray(0, 32));
    const s = bytesToBig(sig.subarray(32, 64));
    const point = new secp256k1.Signature(r, s, sig[64] - 27).recoverPublicKey(digest);
    return checksumOf(keccak(point.toBytes(false).subarray(1)).subarray(12));
  } catch {
    return null;
  }
}

function sortedAddresses(set) {
  return [...set].sort((a, b) => compareBytes(addrBytes(a), addrBytes(b)));
}

/** required_for (service/evidence/log.py): the signers an entry must carry. */
function requiredSigners(type, m, signers) {
  const single = () => {
    if (signers.length !== 1)
      throw new Invalid(`a ${type.name} carries exactly one signature, got ${signers.length}`);
    return new Set(signers);
  };
  switch (type.name) {
    case "Agreement":
    case "AgreementV2":
      return new Set([m.consumer, ...m.providers]);
    case "Offer":
    case "OfferWithdrawal":
      return new Set(m.providers);
    case "UsageReceipt":
      return new Set([m.consumer, m.provider]);
    case "RevenueDeclaration":
      return new Set([m.consumer]);
    case "QualityAttestation":
    case "CoalitionValues":
    case "ValuationResult":
      return single();
    case "ContributionDeclaration": {
      if (signers.length === 2) {
        const others = signers.filter((s) => s !== m.provider);
        return new Set([m.provider, ...(others.length ? [others[0]] : [])]);
      }
      return new Set([m.provider]);
    }
    default:
      throw new Error(`no signer rule for ${type.name}`);
  }
}

function roleOf(type, m, signer) {
  const name = type.name;
  if (["Agreement", "AgreementV2", "UsageReceipt"].includes(name) && signer === m.consumer)
    return "consumer";
  if ((name === "Agreement" || name === "AgreementV2") && m.providers.includes(signer))
    return "provider";
  if ((name === "UsageReceipt" || name === "ContributionDeclaration") && signer === m.provider)
    return "provider";
  if (name === "ContributionDeclaration") return "operator";
  if (name === "QualityAttestation") return "attester";
  return "evaluator";
}

/** The signatures check over (type, digest, signatures). Returns the signer map or null. */
function checkSignatures(report, { type, message, digest, rawSignatures, where }) {
  let sigs;
  try {
    sigs = parseSignatures(rawSignatures);
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    report.add("signatures", false, err.message);
    return { built: null, verified: false };
  }
  const signers = [...sigs.keys()];
  let required;
  try {
    required = requiredSigners(type, message, signers);
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    report.add("signatures", false, err.message);
    return { built: sigs, verified: false };
  }
  const present = new Set(signers);
  const missing = sortedAddresses([...required].filter((s) => !present.has(s)));
  const unexpected = sortedAddresses(signers.filter((s) => !required.has(s)));
  if (missing.length || unexpected.length) {
    const problems = [];
    if (missing.length) problems.push(`missing signature of ${missing.sort().join(", ")}`);
    if (unexpected.length) problems.push(`unexpected signature of ${unexpected.sort().join(", ")}`);
    report.add("signatures", false, `${type.name}: ${problems.join("; ")}`);
    return { built: sigs, verified: false };
  }
  for (const [signer, sig] of sigs) {
    const got = recoverAddress(digest, sig);
    if (got === null) {
      report.add(
        "signatures",
        false,
        `signature of ${signer}: the signature does not recover to any public key`,
      );
      return { built: sigs, verified: false };
    }
    if (got !== signer) {
      report.add(
        "signatures",
        false,
        `the signature given for ${signer} was made by ${got}: a different key, or a ` +
          "message or domain other than the one signed",
      );
      return { built: sigs, verified: false };
    }
  }
  const who = signers.map((s) => (message ? `${roleOf(type, message, s)} ${s}` : s)).join(", ");
  report.add(
    "signatures",
    true,
    `${type.name} digest ${hex0x(digest)} (${where}); ${signers.length} signature(s) recover to ${who}`,
  );
  return { built: sigs, verified: true };
}

function signatureRecords(sigs) {
  const parts = [uintBytes(sigs.size, 2)];
  for (const [signer, sig] of sigs) parts.push(addrBytes(signer), sig);
  return concat(...parts);
}

// --- Merkle (RFC 9162) -------------------------------------------------------------------

export async function leafHash(data) {
  return sha256(concat(Uint8Array.of(0), data));
}

async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

function isHash(h) {
  return h instanceof Uint8Array && h.length === 32;
}

/** RFC 9162 2.1.3.2: whether proof links leafHash at index to root in a tree of size. */
export async function verifyInclusion(leaf, index, size, proof, root) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (!(isHash(leaf) && isHash(root) && proof.every(isHash))) return false;
  if (!(fn >= 0n && fn <= sn)) return false;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) return false;
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else r = await nodeHash(r, p);
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equal(r, root);
}

/** RFC 9162 2.1.4.2: whether proof shows the tree newRoot extends the tree oldRoot. */
export async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
  const m = BigInt(oldSize);
  const n = BigInt(newSize);
  let path = [...proof];
  if (!(isHash(oldRoot) && isHash(newRoot) && path.every(isHash))) return false;
  if (!(m >= 0n && m <= n)) return false;
  if (m === n) return path.length === 0 && equal(oldRoot, newRoot);
  if (m === 0n) return path.length === 0 && equal(oldRoot, await sha256(new Uint8Array(0)));
  if (!path.length) return false;
  if ((m & (m - 1n)) === 0n) path = [oldRoot, ...path];
  let fn = m - 1n;
  let sn = n - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else sr = await nodeHash(sr, c);
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equal(fr, oldRoot) && equal(sr, newRoot);
}

// --- the report --------------------------------------------------------------------------

class Report {
  constructor(subject, offline) {
    this.subject = subject;
    this.offline = offline;
    this.checks = [];
    this.summary = "";
  }
  add(name, ok, detail) {
    this.checks.push({ name, ok, detail });
    return ok === true;
  }
  get ok() {
    return this.checks.every((c) => c.ok !== false);
  }
  get firstFailure() {
    return this.checks.find((c) => c.ok === false) ?? null;
  }
  toJSON(extra) {
    const failed = this.firstFailure;
    const verdict = failed
      ? `FAIL ${this.subject}: check '${failed.name}' failed: ${failed.detail}`
      : `PASS ${this.subject}: ${this.summary}`;
    return {
      ok: this.ok,
      offline: this.offline,
      subject: this.subject,
      verdict,
      firstFailure: failed,
      checks: this.checks,
      ...extra,
    };
  }
}

// --- the document ------------------------------------------------------------------------

function field(doc, key, where = "") {
  if (!has(doc, key)) throw new Invalid(`${where}${key} is missing`);
  return doc[key];
}

function uintField(doc, key, where = "", below = UINT64) {
  const v = field(doc, key, where);
  if (typeof v !== "bigint" || v < 0n || v >= below)
    throw new Invalid(`${where}${key} must be an integer in [0, ${below}), got ${repr(v)}`);
  return v;
}

function hash32(value, what) {
  if (
    typeof value !== "string" ||
    value.length !== 66 ||
    !value.startsWith("0x") ||
    !HEX_RE.test(value.slice(2))
  )
    throw new Invalid(`${what} must be 0x followed by 64 hex digits, got ${repr(value)}`);
  return hexToBytes(value.slice(2));
}

/** The proof keys every form shares (what _parse checks after the entry). */
function parseProofKeys(doc) {
  const proof = field(doc, "inclusion_proof");
  if (!Array.isArray(proof) || proof.length > MAX_PROOF_LEN)
    throw new Invalid(`inclusion_proof must be a list of at most ${MAX_PROOF_LEN} hashes`);
  const anchor = field(doc, "anchor");
  if (!isObject(anchor)) throw new Invalid("anchor must be an object");
  const chainId = uintField(anchor, "chain_id", "anchor.", UINT256);
  let contract;
  try {
    contract = parseAddress(field(anchor, "contract", "anchor."));
    if (chainId <= 0n) throw new Invalid(`chain id must be a positive uint256, got ${chainId}`);
  } catch (err) {
    if (err instanceof Invalid && !err.message.startsWith("anchor."))
      throw new Invalid(`anchor: ${err.message}`);
    throw err;
  }
  const treeSize = uintField(doc, "tree_size");
  if (treeSize === 0n) throw new Invalid("tree_size must be at least 1");
  return {
    proof,
    anchor,
    chainId,
    contract,
    treeSize,
  };
}

function finishProofKeys(doc, p) {
  return {
    leafIndex: uintField(doc, "leaf_index"),
    treeSize: p.treeSize,
    root: hash32(field(doc, "root"), "root"),
    proof: p.proof.map((h, i) => hash32(h, `inclusion_proof[${i}]`)),
    chainId: p.chainId,
    contract: p.contract,
    seq: uintField(p.anchor, "checkpoint_seq", "anchor."),
    txHash: hex0x(hash32(field(p.anchor, "tx_hash", "anchor."), "anchor.tx_hash")),
    blockNumber: uintField(p.anchor, "block_number", "anchor."),
  };
}

/** A legacy (v1) or full (v2) document: _parse of service/audit/receipt.py. */
function parseDocument(doc) {
  if (!isObject(doc)) throw new Invalid(`a receipt is a JSON object, got ${typeName(doc)}`);
  if (doc.form === "reduced") return parseReduced(doc);
  const version = field(doc, "version");
  let form;
  if (version === 1n && (doc.form ?? null) === null) form = "legacy"; // null: the API's form
  else if (version === 2n) {
    form = field(doc, "form");
    if (form !== "full")
      throw new Invalid(`a version-2 receipt's form is 'full' or 'reduced', got ${repr(form)}`);
  } else throw new Invalid(`receipt version ${repr(version)} is not supported (only 1 and 2)`);
  const entryType = field(doc, "entry_type");
  if (typeof entryType !== "string")
    throw new Invalid(`entry_type must be a string, got ${repr(entryType)}`);
  const rawEntry = field(doc, "entry");
  let entry;
  try {
    entry = parseEntry(entryType, rawEntry);
  } catch (err) {
    if (err instanceof Invalid) throw new Invalid(`entry: ${err.message}`);
    throw err;
  }
  const signatures = field(doc, "signatures");
  if (!isObject(signatures) || Object.keys(signatures).length === 0)
    throw new Invalid("signatures must be a non-empty object: signer -> 0x signature");
  const salt = form === "full" ? hash32(field(doc, "salt"), "salt") : null;
  if (form === "legacy" && (doc.salt ?? null) !== null)
    throw new Invalid("a version-1 receipt carries no salt (a legacy leaf)");
  const p = parseProofKeys(doc);
  const entryId = hash32(field(doc, "entry_id"), "entry_id");
  return { form, entry, signatures, entryId, salt, ...finishProofKeys(doc, p) };
}

const MAX_LIST = 64; // more disclosures or field digests than any entry type has fields

/** A reduced (v2) document: disclosures of chosen fields instead of the entry
 * (_parse_reduced of service/audit/receipt.py; the disclosures are parsed by their check). */
function parseReduced(doc) {
  if (doc.version !== 2n)
    throw new Invalid(`a reduced receipt is version 2, got ${repr(doc.version ?? null)}`);
  for (const key of ["entry", "entry_id", "salt", "signatures"])
    if (has(doc, key)) throw new Invalid(`a reduced receipt carries no '${key}'`);
  const entryType = field(doc, "entry_type");
  if (typeof entryType !== "string" || !has(ENTRY_TYPES, entryType))
    throw new Invalid(
      `unknown entry_type ${repr(entryType)}; expected one of ${Object.keys(ENTRY_TYPES).join(", ")}`,
    );
  const type = ENTRY_TYPES[entryType];
  const disclosures = field(doc, "disclosures");
  if (!Array.isArray(disclosures) || disclosures.length > MAX_LIST)
    throw new Invalid(`disclosures must be a list of at most ${MAX_LIST} strings`);
  const digests = field(doc, "field_digests");
  if (!Array.isArray(digests) || digests.length > MAX_LIST)
    throw new Invalid(`field_digests must be a list of at most ${MAX_LIST} hashes`);
  const fieldDigests = digests.map((h, i) => hash32(h, `field_digests[${i}]`));
  const commitmentSalt = hash32(field(doc, "commitment_salt"), "commitment_salt");
  if (has(doc, "signed") === has(doc, "signers_digest"))
    throw new Invalid("a reduced receipt carries either 'signed' or 'signers_digest'");
  let signed = null;
  let signersDigest = null;
  if (has(doc, "signed")) {
    const body = doc.signed;
    const keys = isObject(body) ? Object.keys(body).sort() : [];
    if (keys.length !== 2 || keys[0] !== "signatures" || keys[1] !== "struct_hash")
      throw new Invalid("signed must be an object {struct_hash, signatures}");
    const structHash = hash32(body.struct_hash, "signed.struct_hash");
    const signatures = body.signatures;
    const count = isObject(signatures) ? Object.keys(signatures).length : 0;
    if (count === 0 || count > 512)
      throw new Invalid("signed.signatures must be a non-empty object: signer -> 0x signature");
    signed = { structHash, signatures };
  } else signersDigest = hash32(doc.signers_digest, "signers_digest");
  const p = parseProofKeys(doc);
  return {
    form: "reduced",
    type,
    disclosures,
    fieldDigests,
    commitmentSalt,
    signed,
    signersDigest,
    ...finishProofKeys(doc, p),
  };
}

// --- checks ------------------------------------------------------------------------------

function canonicalBytes(d, sigs) {
  const { type, message } = d.entry;
  const encoded = abiEncode(type, message);
  return concat(
    ENTRY_MAGIC,
    Uint8Array.of(type.tag),
    word(d.chainId),
    addrBytes(d.contract),
    domainSeparator(d.chainId, d.contract),
    hashStruct(type, message),
    uintBytes(encoded.length, 4),
    encoded,
    signatureRecords(sigs),
  );
}

async function checkInclusion(report, d, leaf) {
  if (await verifyInclusion(leaf, d.leafIndex, d.treeSize, d.proof, d.root)) {
    report.add(
      "inclusion",
      true,
      `leaf ${d.leafIndex} of ${d.treeSize} links to root ${hex0x(d.root)} with ` +
        `${d.proof.length} proof hash(es)`,
    );
  } else {
    report.add(
      "inclusion",
      false,
      `the proof does not link leaf ${hex0x(leaf)} at index ${d.leafIndex} to root ` +
        `${hex0x(d.root)} in a tree of ${d.treeSize} leaves`,
    );
  }
}

async function offlineChecks(report, d) {
  const { type, message } = d.entry;
  const digest = keccak(
    concat(Uint8Array.of(0x19, 0x01), domainSeparator(d.chainId, d.contract), hashStruct(type, message)),
  );
  const where = `chain ${d.chainId}, ledger ${d.contract}`;
  const { built, verified } = checkSignatures(report, {
    type,
    message,
    digest,
    rawSignatures: d.signatures,
    where,
  });
  if (built === null) {
    for (const name of ["entry_id", "leaf", "inclusion"])
      report.add(name, null, "skipped: no canonical bytes without valid signatures");
    return { verified: false, leaf: null };
  }
  const data = canonicalBytes(d, built);
  const eid = await sha256(data);
  if (equal(eid, d.entryId))
    report.add("entry_id", true, `sha256 of the ${data.length} canonical bytes is ${hex0x(eid)}`);
  else
    report.add(
      "entry_id",
      false,
      `sha256 of the canonical bytes is ${hex0x(eid)}, the receipt says ${hex0x(d.entryId)}`,
    );
  // The canonical bytes are built here from parsed fields, so they decode back to the same
  // entry by construction (the Python auditor's round trip).
  let leaf;
  if (d.salt === null) {
    leaf = await leafHash(data);
    report.add("leaf", true, `leaf hash ${hex0x(leaf)}`);
  } else {
    const leafData = await commitFull(d, built);
    leaf = await leafHash(leafData);
    report.add("leaf", true, `commitment leaf ${hex0x(leafData)}, leaf hash ${hex0x(leaf)}`);
  }
  await checkInclusion(report, d, leaf);
  return { verified, leaf };
}

// --- T15: commitment leaves and disclosures (service/evidence/commitment.py) ---------------

const B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function b64url(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let j = 0; j < chars; j++) out += B64_ALPHABET[(n >> (18 - 6 * j)) & 63];
  }
  return out;
}

function b64urlDecode(text) {
  if (!text || !/^[A-Za-z0-9_-]+$/.test(text) || text.length % 4 === 1)
    throw new Invalid("a disclosure must be unpadded base64url");
  const out = [];
  let bits = 0;
  let acc = 0;
  for (const c of text) {
    acc = (acc << 6) | B64_ALPHABET.indexOf(c);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

async function commitmentSaltOf(salt) {
  return sha256(concat(utf8("tally/commitment-salt\0"), salt));
}

async function fieldSalt(salt, name) {
  return b64url((await sha256(concat(utf8("tally/field-salt\0"), salt, utf8(name)))).subarray(0, 16));
}

function makeDisclosure(fsalt, name, value) {
  return b64url(utf8(dumpJson([fsalt, name, value])));
}

async function disclosureDigest(text) {
  return sha256(utf8(text)); // ASCII: base64url
}

function parseDisclosure(text) {
  if (typeof text !== "string" || text.length > MAX_DISCLOSURE_CHARS)
    throw new Invalid(
      `a disclosure is a base64url string of at most ${MAX_DISCLOSURE_CHARS} characters`,
    );
  const raw = b64urlDecode(text);
  let item;
  try {
    item = parseJson(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch {
    throw new Invalid("a disclosure must decode to UTF-8 JSON");
  }
  if (
    !Array.isArray(item) ||
    item.length !== 3 ||
    typeof item[0] !== "string" ||
    typeof item[1] !== "string"
  )
    throw new Invalid("a disclosure must be a JSON array [salt, field name, value]");
  return { text, salt: item[0], name: item[1], value: item[2] };
}

async function signersDigestOf(separator, structHash, records) {
  return sha256(concat(separator, structHash, records));
}

function commitmentBody(tag, chainId, contract, fieldDigests, signers) {
  return concat(
    COMMIT_MAGIC,
    Uint8Array.of(tag),
    word(chainId),
    addrBytes(contract),
    uintBytes(fieldDigests.length, 2),
    ...fieldDigests,
    signers,
  );
}

async function commitmentLeaf(tag, commitSalt, body) {
  return concat(Uint8Array.of(LEAF_COMMITMENT, tag), await sha256(concat(commitSalt, body)));
}

/** commit(): the leaf data of a full entry under its salt. */
async function commitFull(d, sigs) {
  const { type, message } = d.entry;
  const json = messageJson(type, message);
  const digests = [];
  for (const [name] of type.fields)
    digests.push(await disclosureDigest(makeDisclosure(await fieldSalt(d.salt, name), name, json[name])));
  const separator = domainSeparator(d.chainId, d.contract);
  const signers = await signersDigestOf(separator, hashStruct(type, message), signatureRecords(sigs));
  const body = commitmentBody(type.tag, d.chainId, d.contract, digests, signers);
  return commitmentLeaf(type.tag, await commitmentSaltOf(d.salt), body);
}

/** The fields whose values name a required signer (commitment.SIGNER_FIELDS): a signed
 * reduced receipt must disclose them. Other types name no signer in their message. */
const SIGNER_FIELDS = {
  Agreement: ["consumer", "providers"],
  AgreementV2: ["consumer", "providers"],
  UsageReceipt: ["consumer", "provider"],
  ContributionDeclaration: ["provider"],
  Offer: ["providers"],
  OfferWithdrawal: ["providers"],
  RevenueDeclaration: ["consumer"],
};

/** The disclosures check; the disclosed values (parsed) when it holds, else null. */
async function checkDisclosures(report, d) {
  const { type } = d;
  const names = type.fields.map(([n]) => n);
  if (d.fieldDigests.length !== names.length) {
    report.add(
      "disclosures",
      false,
      `field_digests has ${d.fieldDigests.length} digest(s); a ${type.name} has ` +
        `${names.length} fields`,
    );
    return null;
  }
  const values = {};
  for (const [i, text] of d.disclosures.entries()) {
    let item;
    try {
      item = parseDisclosure(text);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      report.add("disclosures", false, `disclosure ${i}: ${err.message}`);
      return null;
    }
    const at = names.indexOf(item.name);
    if (at < 0) {
      report.add(
        "disclosures",
        false,
        `disclosure ${i} names ${repr(item.name)}, not a field of a ${type.name}`,
      );
      return null;
    }
    if (has(values, item.name)) {
      report.add("disclosures", false, `field ${item.name} is disclosed twice`);
      return null;
    }
    if (!equal(await disclosureDigest(text), d.fieldDigests[at])) {
      report.add(
        "disclosures",
        false,
        `the disclosure of ${item.name} does not open the digest committed for it ` +
          `(field_digests[${at}]): a changed value, or a disclosure from another entry`,
      );
      return null;
    }
    try {
      values[item.name] = parseField(item.name, type.fields[at][1], item.value);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      report.add("disclosures", false, `the disclosed ${item.name} is not a valid value`);
      return null;
    }
  }
  const shown = names.filter((n) => has(values, n));
  report.add(
    "disclosures",
    true,
    `${shown.length} of ${names.length} fields disclosed, each opening its committed digest: ` +
      `${shown.join(", ") || "none"}`,
  );
  return values;
}

function checkSignerFields(report, d, values) {
  if (d.signed === null) {
    report.add("signer_fields", null, "skipped: an unsigned reduced receipt names no signer");
    return false;
  }
  if (values === null) {
    report.add("signer_fields", null, "skipped: the disclosures do not hold");
    return false;
  }
  const needed = SIGNER_FIELDS[d.type.name] ?? [];
  const hidden = needed.filter((f) => !has(values, f));
  if (hidden.length) {
    report.add(
      "signer_fields",
      false,
      `${hidden.join(", ")} hidden: a signed reduced ${d.type.name} must disclose the fields ` +
        "naming its required signers, or the signatures prove nothing about who they are",
    );
    return false;
  }
  report.add(
    "signer_fields",
    true,
    needed.length
      ? `the fields naming the required signers are disclosed: ${needed.join(", ")}`
      : `a ${d.type.name} names no signer in its message: its signer is the signature's key`,
  );
  return true;
}

/** The signatures check of a reduced receipt: the signers the disclosed fields require,
 * each recovering over the committed struct hash. Returns the parsed signatures (null when
 * they do not parse) and whether they hold. */
function checkReducedSignatures(report, d, values, fieldsOk) {
  if (d.signed === null) {
    report.add(
      "signatures",
      null,
      "skipped: an unsigned reduced receipt (signers digest only) proves the disclosed " +
        "values are committed in the anchored leaf, not who signed them",
    );
    return { sigs: null, verified: false };
  }
  let sigs;
  try {
    sigs = parseSignatures(d.signed.signatures);
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    report.add("signatures", false, err.message);
    return { sigs: null, verified: false };
  }
  if (!fieldsOk || values === null) {
    report.add("signatures", null, "skipped: the fields naming the signers do not hold");
    return { sigs, verified: false };
  }
  const present = [...sigs.keys()];
  let required;
  try {
    required = requiredSigners(d.type, values, present);
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    report.add("signatures", false, err.message);
    return { sigs, verified: false };
  }
  const missing = [...required].filter((s) => !sigs.has(s)).sort();
  const unexpected = present.filter((s) => !required.has(s)).sort();
  if (missing.length || unexpected.length) {
    const parts = [];
    if (missing.length) parts.push(`missing signature of ${missing.join(", ")}`);
    if (unexpected.length) parts.push(`unexpected signature of ${unexpected.join(", ")}`);
    report.add("signatures", false, `${d.type.name}: ${parts.join("; ")}`);
    return { sigs, verified: false };
  }
  const digest = keccak(
    concat(Uint8Array.of(0x19, 0x01), domainSeparator(d.chainId, d.contract), d.signed.structHash),
  );
  for (const [signer, sig] of sigs) {
    const got = recoverAddress(digest, sig);
    if (got !== signer) {
      const why =
        got === null
          ? "the signature does not recover to any public key"
          : `made by ${got}: a different key, or a message or domain other than the one signed`;
      report.add("signatures", false, `the signature given for ${signer}: ${why}`);
      return { sigs, verified: false };
    }
  }
  report.add(
    "signatures",
    true,
    `${d.type.name} digest ${hex0x(digest)} of struct hash ${hex0x(d.signed.structHash)} ` +
      `(chain ${d.chainId}, ledger ${d.contract}); ${sigs.size} signature(s) recover to ` +
      present.join(", "),
  );
  return { sigs, verified: true };
}

async function reducedChecks(report, d) {
  const values = await checkDisclosures(report, d);
  const fieldsOk = checkSignerFields(report, d, values);
  const { sigs, verified } = checkReducedSignatures(report, d, values, fieldsOk);
  report.add("entry_id", null, "skipped: hidden in a reduced receipt");
  const names = d.type.fields.map(([n]) => n);
  const shown = values ?? {};
  const out = {
    verified: verified && values !== null,
    leaf: null,
    proven: names.filter((n) => has(shown, n)),
    hidden: names.filter((n) => !has(shown, n)),
    values: shown,
  };
  let signers;
  if (d.signersDigest !== null) signers = d.signersDigest;
  else if (sigs !== null)
    signers = await signersDigestOf(
      domainSeparator(d.chainId, d.contract),
      d.signed.structHash,
      signatureRecords(sigs),
    );
  else {
    report.add("leaf", null, "skipped: no signers digest without parseable signatures");
    report.add("inclusion", null, "skipped: no leaf");
    return out;
  }
  const body = commitmentBody(d.type.tag, d.chainId, d.contract, d.fieldDigests, signers);
  const leafData = await commitmentLeaf(d.type.tag, d.commitmentSalt, body);
  out.leaf = await leafHash(leafData);
  report.add("leaf", true, `commitment leaf ${hex0x(leafData)}, leaf hash ${hex0x(out.leaf)}`);
  await checkInclusion(report, d, out.leaf);
  return out;
}

// --- JSON-RPC ------------------------------------------------------------------------------

class RpcError extends Error {}

class Rpc {
  constructor(url, fetchFn, timeoutMs) {
    this.url = url;
    this.fetch = fetchFn;
    this.timeoutMs = timeoutMs;
    this.id = 0;
  }
  async request(method, params) {
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    const timer = controller ? setTimeout(() => controller.abort(), this.timeoutMs) : null;
    let body;
    try {
      const res = await this.fetch(this.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: ++this.id, method, params }),
        signal: controller?.signal,
      });
      if (!res.ok) throw new RpcError(`HTTP ${res.status} from ${this.url}`);
      body = await res.json();
    } catch (err) {
      if (err instanceof RpcError) throw err;
      throw new RpcError(`no answer from ${this.url}: ${err?.message ?? err}`);
    } finally {
      if (timer) clearTimeout(timer);
    }
    if (body.error) {
      const e = new Error(body.error.message ?? "JSON-RPC error");
      e.rpc = body.error;
      throw e;
    }
    return body.result;
  }
}

const FUNCTIONS = Object.fromEntries(
  LEDGER_ABI.filter((x) => x.type === "function").map((x) => [x.name, x]),
);
const EVENTS = Object.fromEntries(
  LEDGER_ABI.filter((x) => x.type === "event").map((x) => [x.name, x]),
);

function signatureOf(item) {
  return `${item.name}(${item.inputs.map((i) => i.type).join(",")})`;
}

function selector(name) {
  return keccak(utf8(signatureOf(FUNCTIONS[name]))).subarray(0, 4);
}

const CHECKPOINT_ANCHORED_TOPIC = hex0x(keccak(utf8(signatureOf(EVENTS.CheckpointAnchored))));

function abiArgs(types, values) {
  const head = [];
  const tail = [];
  let tailSize = 0;
  for (let i = 0; i < types.length; i++) {
    if (types[i] === "bytes32[]") {
      head.push(word(32 * types.length + tailSize));
      const chunk = concat(word(values[i].length), ...values[i]);
      tail.push(chunk);
      tailSize += chunk.length;
    } else if (types[i] === "bytes32") head.push(values[i]);
    else head.push(word(values[i]));
  }
  return concat(...head, ...tail);
}

class Reverted extends Error {}
class NoCode extends Error {}

/** eth_call of a ledger function; outputs as 32-byte words. */
async function ledgerCall(rpc, contract, name, args = []) {
  const fn = FUNCTIONS[name];
  const data = concat(
    selector(name),
    abiArgs(
      fn.inputs.map((i) => i.type),
      args,
    ),
  );
  let result;
  try {
    result = await rpc.request("eth_call", [{ to: contract, data: hex0x(data) }, "latest"]);
  } catch (err) {
    if (err instanceof RpcError) throw err;
    throw new Reverted(`${name} reverted: ${err.message}`);
  }
  const out = hexToBytes(result);
  if (out.length < 32 * fn.outputs.length) throw new NoCode(name);
  const words = [];
  for (let i = 0; i < fn.outputs.length; i++) words.push(out.subarray(32 * i, 32 * i + 32));
  return words;
}

function wordAddress(w) {
  return checksumOf(w.subarray(12));
}

async function readCheckpoint(rpc, d) {
  try {
    const count = bytesToBig((await ledgerCall(rpc, d.contract, "count"))[0]);
    if (d.seq >= count)
      return `checkpoint ${d.seq} is not on chain (${count} anchored at ${d.contract})`;
    const [size, root, block] = await ledgerCall(rpc, d.contract, "checkpoint", [d.seq]);
    return { size: bytesToBig(size), root, block: bytesToBig(block) };
  } catch (err) {
    if (err instanceof NoCode)
      return `no EvidenceLedger answers at ${d.contract} on chain ${d.chainId}`;
    if (err instanceof Reverted) return `reading checkpoint ${d.seq} failed: ${err.message}`;
    throw err;
  }
}

async function checkDeployment(report, rpc, d, trusted, nodeChain) {
  if (!trusted) {
    report.add(
      "deployment",
      null,
      `skipped: no deployment pinned in the browser; the receipt names ledger ${d.contract}, ` +
        "and anyone can deploy a ledger of their own: compare it with the deployment you " +
        "trust, or pin it (tally audit receipt --deployment FILE)",
    );
    return true;
  }
  const source = trusted.source ?? `ledger ${trusted.ledger}`;
  let ledger;
  try {
    ledger = parseAddress(trusted.ledger);
  } catch (err) {
    report.add("deployment", false, `the pinned ledger: ${err.message}`);
    return false;
  }
  if (trusted.chainId != null && BigInt(trusted.chainId) !== nodeChain) {
    report.add(
      "deployment",
      false,
      `the pinned deployment (${source}) is on chain ${trusted.chainId}, the node is chain ${nodeChain}`,
    );
    return false;
  }
  if (d.contract.toLowerCase() !== ledger.toLowerCase()) {
    report.add(
      "deployment",
      false,
      `the receipt is anchored on ledger ${d.contract}, not on the pinned deployment's ` +
        `ledger ${ledger} (${source}): a ledger the auditor does not trust`,
    );
    return false;
  }
  let registry;
  try {
    registry = wordAddress((await ledgerCall(rpc, ledger, "registry"))[0]);
  } catch (err) {
    if (!(err instanceof NoCode || err instanceof Reverted)) throw err;
    report.add(
      "deployment",
      false,
      `no EvidenceLedger answers at the pinned address ${ledger} on chain ${nodeChain}`,
    );
    return false;
  }
  if (trusted.registry && registry.toLowerCase() !== String(trusted.registry).toLowerCase()) {
    report.add(
      "deployment",
      false,
      `the pinned ledger ${ledger} reads roles from registry ${registry}, the pinned ` +
        `deployment (${source}) names registry ${trusted.registry}`,
    );
    return false;
  }
  report.add(
    "deployment",
    true,
    `ledger ${ledger} and its registry ${registry} are the pinned deployment (${source})`,
  );
  return true;
}

async function checkAnchorTx(report, rpc, d) {
  if (d.txHash === ZERO_TX) {
    report.add("anchor_tx", true, "no anchoring tx hash recorded by the operator; not checked");
    return;
  }
  let receipt;
  try {
    receipt = await rpc.request("eth_getTransactionReceipt", [d.txHash]);
  } catch (err) {
    if (err instanceof RpcError) throw err;
    receipt = null;
  }
  if (!receipt) {
    report.add("anchor_tx", false, `transaction ${d.txHash} is not on chain`);
    return;
  }
  const status = BigInt(receipt.status);
  const block = BigInt(receipt.blockNumber);
  if (status !== 1n || block !== d.blockNumber) {
    report.add(
      "anchor_tx",
      false,
      `transaction ${d.txHash} (status ${status}) is in block ${block}, the receipt says ` +
        `block ${d.blockNumber}`,
    );
    return;
  }
  const anchored = (receipt.logs ?? []).some(
    (log) =>
      String(log.address).toLowerCase() === d.contract.toLowerCase() &&
      log.topics?.length === 2 &&
      String(log.topics[0]).toLowerCase() === CHECKPOINT_ANCHORED_TOPIC &&
      BigInt(log.topics[1]) === d.seq &&
      hexToBytes(log.data).length === 64,
  );
  if (!anchored) {
    report.add(
      "anchor_tx",
      false,
      `transaction ${d.txHash} did not anchor checkpoint ${d.seq} at ${d.contract}`,
    );
    return;
  }
  report.add(
    "anchor_tx",
    true,
    `checkpoint ${d.seq} anchored by ${d.txHash} in block ${d.blockNumber}`,
  );
}

const ROLES_SKIPPED =
  "skipped: replaying the registry's events (who held which role at the checkpoint's " +
  "block) is not done in the browser; run tally audit receipt for it";

async function chainChecks(report, rpc, d, verified, leaf, trusted) {
  const nodeChain = BigInt(await rpc.request("eth_chainId", []));
  if (nodeChain !== d.chainId) {
    report.add(
      "chain_id",
      false,
      `the node is chain ${nodeChain}, the receipt is anchored on chain ${d.chainId}`,
    );
    for (const name of CHAIN_CHECKS.slice(1)) report.add(name, null, "skipped: not the receipt's chain");
    return;
  }
  report.add("chain_id", true, `the node is chain ${nodeChain}`);
  if (!(await checkDeployment(report, rpc, d, trusted, nodeChain))) {
    for (const name of CHAIN_CHECKS.slice(2)) report.add(name, null, "skipped: not a pinned deployment");
    return;
  }
  const found = await readCheckpoint(rpc, d);
  if (typeof found === "string") {
    report.add("checkpoint", false, found);
    for (const name of CHAIN_CHECKS.slice(3)) report.add(name, null, "skipped: no such checkpoint");
    return;
  }
  const mismatches = [
    ["size", found.size, d.treeSize],
    ["root", hex0x(found.root), hex0x(d.root)],
    ["block", found.block, d.blockNumber],
  ]
    .filter(([, theirs, ours]) => theirs !== ours)
    .map(([what, theirs, ours]) => `${what} ${theirs} on chain, ${ours} in the receipt`);
  if (mismatches.length)
    report.add("checkpoint", false, `checkpoint ${d.seq}: ${mismatches.join("; ")}`);
  else
    report.add(
      "checkpoint",
      true,
      `checkpoint ${d.seq} at ${d.contract}: size ${found.size}, root ${hex0x(found.root)}, ` +
        `block ${found.block}`,
    );

  if (leaf === null) report.add("contract_inclusion", null, "skipped: no leaf to check");
  else {
    let agrees;
    let why = `the contract rejects the proof against checkpoint ${d.seq}`;
    try {
      const [w] = await ledgerCall(rpc, d.contract, "verifyInclusion", [
        d.seq,
        d.leafIndex,
        leaf,
        d.proof,
      ]);
      agrees = bytesToBig(w) === 1n;
    } catch (err) {
      if (!(err instanceof Reverted || err instanceof NoCode)) throw err;
      agrees = false;
      why = err.message;
    }
    if (agrees)
      report.add(
        "contract_inclusion",
        true,
        `EvidenceLedger.verifyInclusion(${d.seq}, ${d.leafIndex}, …) is true`,
      );
    else report.add("contract_inclusion", false, why);
  }
  await checkAnchorTx(report, rpc, d);
  report.add("roles", null, verified ? ROLES_SKIPPED : "skipped: the signatures do not hold");
}

// --- the entry point ---------------------------------------------------------------------

/** Verify a receipt document; see the API at the top of this file. Never throws for a bad
 * receipt (that is a failed check); an unreachable node fails the chain_id check. */
export async function verifyReceipt(input, options = {}) {
  const rpcUrl = options.rpcUrl || null;
  let doc;
  let docError = null;
  try {
    doc = typeof input === "string" ? parseJson(input) : fromPlain(input);
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    docError = err.message;
  }
  const reduced = docError === null && isObject(doc) && doc.form === "reduced";
  const eid = docError === null && isObject(doc) ? doc.entry_id : undefined;
  let subject = typeof eid === "string" && eid.length < 80 ? `receipt ${eid}` : "receipt";
  if (reduced) {
    const index = doc.leaf_index;
    subject = "reduced receipt" + (typeof index === "bigint" ? ` (leaf ${index})` : "");
  }
  const report = new Report(subject, rpcUrl === null);
  let d = null;
  if (docError === null) {
    try {
      d = parseDocument(doc);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      docError = err.message;
    }
  }
  if (d === null) {
    report.add("document", false, docError);
    const offline = reduced ? REDUCED_OFFLINE_CHECKS : OFFLINE_CHECKS;
    for (const name of [...offline.slice(1), ...(rpcUrl === null ? [] : CHAIN_CHECKS)])
      report.add(name, null, "skipped: the document is malformed");
    return report.toJSON({ form: reduced ? "reduced" : null, fields: null });
  }
  const version =
    d.form === "legacy"
      ? "v1"
      : d.form === "full"
        ? "v2 (full)"
        : `v2 (reduced, ${d.signed === null ? "unsigned" : "signed"})`;
  const typeName_ = d.form === "reduced" ? d.type.name : d.entry.type.name;
  report.add(
    "document",
    true,
    `receipt ${version}: ${typeName_} at leaf ${d.leafIndex} of ${d.treeSize}, checkpoint ${d.seq}`,
  );
  let fields = null;
  let verified;
  let leaf;
  if (d.form === "reduced") {
    const r = await reducedChecks(report, d);
    ({ verified, leaf } = r);
    const values = {};
    for (const [name, ftype] of d.type.fields)
      if (has(r.values, name)) values[name] = jsonValue(ftype, r.values[name]);
    fields = { proven: r.proven, hidden: r.hidden, values };
  } else ({ verified, leaf } = await offlineChecks(report, d));
  if (has(doc, "cosignatures"))
    report.add(
      WITNESS_CHECK,
      null,
      "skipped: the receipt carries a cosigned checkpoint note; witness cosignatures are " +
        "not verified in the browser (tally audit receipt --witness VKEY)",
    );
  const where = `checkpoint ${d.seq} at ${d.contract} on chain ${d.chainId}`;
  if (rpcUrl === null) {
    for (const name of CHAIN_CHECKS) report.add(name, null, "skipped: offline");
    report.summary =
      `the offline checks hold; OFFLINE: ${where} was not checked on chain ` +
      `(${CHAIN_CHECKS.join(", ")} skipped)`;
  } else {
    const rpc = new Rpc(rpcUrl, options.fetch ?? globalThis.fetch.bind(globalThis), options.timeoutMs ?? 15000);
    const before = report.checks.length;
    try {
      await chainChecks(report, rpc, d, verified, leaf, options.trusted ?? null);
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      report.checks.length = before;
      report.add("chain_id", false, `the node cannot be reached: ${err.message}`);
      for (const name of CHAIN_CHECKS.slice(1)) report.add(name, null, "skipped: no node");
    }
    const skipped = report.checks.filter((c) => c.ok === null).map((c) => c.name);
    report.summary =
      `the entry is in ${where}` + (skipped.length ? ` (${skipped.join(", ")} skipped)` : "");
  }
  return report.toJSON({ form: d.form, fields });
}
