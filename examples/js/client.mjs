// A Tally client in JavaScript (ethers 6 + siwe): sign in, sign an Agreement and a
// UsageReceipt with the consumer's and the provider's keys, submit them, wait for the
// anchor, and verify the receipt without trusting the server: canonical bytes and entry
// id and the commitment leaf rebuilt here, the RFC 9162 inclusion proof folded here, the checkpoint read from
// the EvidenceLedger on chain. Field rules: docs/evidence.md.
//
//   TALLY_API_URL=http://127.0.0.1:8000 TALLY_RPC_URL=http://127.0.0.1:8545 \
//   TALLY_CONSUMER_KEY=0x... TALLY_PROVIDER_KEY=0x... node examples/js/client.mjs
//
// Optional: TALLY_POLICY_HASH (0x + 64 hex), the policy the Agreement names (`tally settle
// policy examples/policy.toml`; a round settles only agreements naming its policy), and
// TALLY_EVALUATOR_KEY, which also signs the provider's input-cost ContributionDeclaration and
// the evaluator's CoalitionValues (the inputs of the cost and shapley methods that
// examples/policy.toml mixes with output). Usage period: the ten minutes before the run.
//
// Prints one JSON line ({"verified": true, ...}); exits 1 with {"verified": false,
// "error"} on any failure. The accounts must be registered (consumer, provider; the
// evaluator as any active participant, e.g. service).
import { AbiCoder, Contract, JsonRpcProvider, TypedDataEncoder, Wallet, concat, getBytes,
  hexlify, id, randomBytes, sha256, toBeHex, toUtf8Bytes, verifyTypedData, zeroPadValue } from "ethers";
import { SiweMessage } from "siwe";

const env = (name) => process.env[name] || fail(`set ${name}`);
const API = (process.env.TALLY_API_URL ?? "").replace(/\/$/, "");
const LEDGER_ABI = [
  "function checkpoint(uint256 seq) view returns (uint64 treeSize, bytes32 rootHash, uint64 blockNumber, uint64 timestamp)",
  "function verifyInclusion(uint256 seq, uint64 leafIndex, bytes32 leafHash, bytes32[] proof) view returns (bool)",
];

function fail(message) { throw new Error(message); }

function policyHash() {
  const hash = process.env.TALLY_POLICY_HASH;
  if (!hash) return id("example policy");
  if (!/^0x[0-9a-fA-F]{64}$/.test(hash)) fail("TALLY_POLICY_HASH must be 0x + 64 hex digits");
  return hash.toLowerCase();
}

async function call(method, path, { body, token, ok = [200] } = {}) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(API + path, { method, headers, body: body && JSON.stringify(body) });
  const json = await res.json();
  if (!ok.includes(res.status)) fail(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return { status: res.status, json };
}

// Sign-In with Ethereum: check the server's EIP-4361 message before signing it.
async function signIn(wallet, chainId) {
  const { json } = await call("POST", "/v1/auth/challenge", { body: { address: wallet.address } });
  const msg = new SiweMessage(json.message);
  if (msg.address !== wallet.address || msg.chainId !== chainId) fail("unexpected sign-in message");
  if (msg.prepareMessage() !== json.message) fail("sign-in message is not canonical EIP-4361");
  const signature = await wallet.signMessage(json.message);
  const token = await call("POST", "/v1/auth/token", { body: { message: json.message, signature } });
  return token.json.access_token;
}

// TALLY-ENTRY-V1: magic, tag, chainId, ledger, domain separator, struct hash,
// len || abi.encode(fields), count || (signer || r || s || v) sorted by signer.
function canonicalBytes(tag, domain, type, fields, message, signatures) {
  const abi = AbiCoder.defaultAbiCoder().encode(fields.map((f) => f.type), fields.map((f) => message[f.name]));
  const signers = Object.keys(signatures).sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  return getBytes(concat([
    toUtf8Bytes("TALLY-ENTRY-V1"), toBeHex(tag, 1), toBeHex(domain.chainId, 32), domain.verifyingContract,
    TypedDataEncoder.hashDomain(domain), TypedDataEncoder.hashStruct(type, { [type]: fields }, message),
    toBeHex(getBytes(abi).length, 4), abi, toBeHex(signers.length, 2),
    ...signers.flatMap((s) => [s, signatures[s]]),
  ]));
}

// T15 commitment leaf (service/evidence/commitment.py): 0x02 || tag || SHA-256(commitment salt
// || body); the body commits to one SD-JWT-style salted digest per field and to the struct
// hash and signatures. `entry` is the message in the receipt's JSON form.
const b64url = (bytes) => Buffer.from(getBytes(bytes)).toString("base64url");
function commitmentLeaf(tag, domain, fields, entry, salt, canonical) {
  const label = (text) => concat([toUtf8Bytes(text), "0x00"]);
  const digests = fields.map(({ name }) => {
    const fieldSalt = b64url(getBytes(sha256(concat([label("tally/field-salt"), salt, toUtf8Bytes(name)]))).slice(0, 16));
    const disclosure = b64url(toUtf8Bytes(JSON.stringify([fieldSalt, name, entry[name]])));
    return sha256(toUtf8Bytes(disclosure));
  });
  const messageLength = Number(BigInt(hexlify(canonical.slice(131, 135))));
  const signers = sha256(concat([canonical.slice(67, 131), canonical.slice(135 + messageLength)]));
  const body = concat([toUtf8Bytes("TALLY-COMMIT-V2"), toBeHex(tag, 1), toBeHex(domain.chainId, 32),
    domain.verifyingContract, toBeHex(fields.length, 2), ...digests, signers]);
  const commitSalt = sha256(concat([label("tally/commitment-salt"), salt]));
  return concat(["0x02", toBeHex(tag, 1), sha256(concat([commitSalt, body]))]);
}

// RFC 9162 section 2.1.3.2: the root an inclusion proof leads to (null if malformed).
function rootFromProof(index, size, leaf, proof) {
  const node = (l, r) => sha256(concat(["0x01", l, r]));
  let fn = BigInt(index), sn = BigInt(size) - 1n, r = leaf;
  if (fn > sn) return null;
  for (const p of proof) {
    if (sn === 0n) return null;
    if (fn % 2n === 1n || fn === sn) {
      r = node(p, r);
      while (fn % 2n === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else r = node(r, p);
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

async function main() {
  env("TALLY_API_URL");
  const consumer = new Wallet(env("TALLY_CONSUMER_KEY"));
  const provider = new Wallet(env("TALLY_PROVIDER_KEY"));
  const { json: served } = await call("GET", "/v1/domain");
  const { domain, types, entry_types: meta } = served;
  const token = await signIn(consumer, domain.chainId);
  const now = Math.floor(Date.now() / 1000);
  const agreementId = hexlify(randomBytes(32));
  const period = { periodStart: now - 600, periodEnd: now };
  const both = [consumer, provider];
  const signed = [ // [type, message, who signs]
    ["Agreement", { agreementId, assetId: id("asset: example dataset"), consumer: consumer.address,
      providers: [provider.address], unitPrice: "2500000000000000", policyHash: policyHash(),
      validFrom: now - 3600, validUntil: now + 365 * 86400 }, both],
    ["UsageReceipt", { agreementId, consumer: consumer.address, provider: provider.address, units: 42,
      ...period, detailHash: sha256(toUtf8Bytes("request log")), nonce: 1 }, both],
  ];
  if (process.env.TALLY_EVALUATOR_KEY) { // the inputs of a policy's cost and shapley methods
    const evaluator = new Wallet(process.env.TALLY_EVALUATOR_KEY);
    signed.push(["ContributionDeclaration", { agreementId, provider: provider.address, kind: 1, // input cost
      value: "1000000000000000", ...period }, [provider]]);
    signed.push(["CoalitionValues", { agreementId, ...period, providers: [provider.address],
      values: [0, 8100] }, [evaluator]]); // value of {} and {provider}: held-out R^2 in bps
  }
  const items = [];
  for (const [type, message, signers] of signed) {
    const one = { [type]: types[type] }; // ethers derives the primary type: pass only this one
    const signatures = {};
    for (const w of signers) signatures[w.address] = await w.signTypedData(domain, one, message);
    items.push({ entry_type: type, entry: message, signatures });
  }
  const { json: batch } = await call("POST", "/v1/evidence", { body: { entries: items }, token });
  for (const r of batch.results) if (r.status !== "accepted") fail(`entry ${r.index}: ${r.code} ${r.message}`);
  const receiptId = batch.results[1].entry_id;

  // wait for the anchoring loop to cover the receipt: 404 not_anchored until then
  let doc;
  for (const deadline = Date.now() + 90_000; ; await new Promise((r) => setTimeout(r, 500))) {
    // receipts go to their parties (and the auditor, the operator) only: send our token
    const res = await call("GET", `/v1/receipts/${receiptId}`, { ok: [200, 404], token });
    if (res.status === 200) { doc = res.json; break; }
    if (res.json.error?.status !== "pending" || Date.now() > deadline) fail(`not anchored: ${JSON.stringify(res.json)}`);
  }

  // 1. the signatures in the receipt are the parties' over the message we built
  const type = doc.entry_type, fields = types[type];
  for (const [signer, sig] of Object.entries(doc.signatures))
    if (verifyTypedData(domain, { [type]: fields }, doc.entry, sig) !== signer) fail(`bad signature of ${signer}`);
  // 2. our bytes, our id, our leaf, our root
  const bytes = canonicalBytes(meta[type].tag, domain, type, fields, items[1].entry, items[1].signatures);
  if (sha256(bytes) !== doc.entry_id) fail("entry id is not the SHA-256 of our canonical bytes");
  // 3. our leaf: the commitment under the salt the server returned when it accepted the entry
  if (doc.salt !== batch.results[1].salt) fail("the receipt's salt is not the one ingest returned");
  const leafData = doc.salt ? commitmentLeaf(meta[type].tag, domain, fields, doc.entry, doc.salt, bytes) : bytes;
  const leaf = sha256(concat(["0x00", leafData]));
  const root = rootFromProof(doc.leaf_index, doc.tree_size, leaf, doc.inclusion_proof);
  if (root !== doc.root) fail(`inclusion proof leads to ${root}, not ${doc.root}`);
  // 4. the checkpoint on chain, read from the ledger that is the EIP-712 verifying contract
  const rpc = new JsonRpcProvider(env("TALLY_RPC_URL"));
  if ((await rpc.getNetwork()).chainId !== BigInt(domain.chainId)) fail("RPC node is on another chain");
  if (doc.anchor.contract !== domain.verifyingContract) fail("anchored on another ledger");
  const ledger = new Contract(doc.anchor.contract, LEDGER_ABI, rpc);
  const [treeSize, rootHash] = await ledger.checkpoint(doc.anchor.checkpoint_seq);
  if (treeSize !== BigInt(doc.tree_size) || rootHash !== doc.root) fail("checkpoint differs on chain");
  const onChain = await ledger.verifyInclusion(doc.anchor.checkpoint_seq, doc.leaf_index, leaf, doc.inclusion_proof);
  if (!onChain) fail("the ledger's verifyInclusion says no");

  console.log(JSON.stringify({
    verified: true, entry_id: doc.entry_id, agreement_entry_id: batch.results[0].entry_id,
    leaf_index: doc.leaf_index, tree_size: doc.tree_size, root: doc.root,
    checkpoint_seq: doc.anchor.checkpoint_seq, ledger: doc.anchor.contract, chain_id: domain.chainId,
    policy_hash: items[0].entry.policyHash, period: [period.periodStart, period.periodEnd],
    entries: items.length,
    leaf_hash: leaf, on_chain_inclusion: onChain,
  }));
}

main().catch((err) => {
  console.log(JSON.stringify({ verified: false, error: String(err?.message ?? err) }));
  process.exit(1);
});
