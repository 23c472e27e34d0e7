// Reference payout tree: OpenZeppelin's own StandardMerkleTree (npm @openzeppelin/merkle-tree),
// the independent implementation that service/settlement/payout_tree.py is tested against.
//
//   echo '{"values": [["1", "0", "0xAb…", "100"]]}' | node scripts/oz_merkle_tree.mjs
//
// Input: JSON Lines on stdin, one request per line. A request is either an array of values or
// {"values": [...], "encoding": [...]}; the encoding defaults to the payout leaf
// ["uint256", "uint256", "address", "uint256"] (roundId, index, account, amount). Pass
// integers as decimal strings: uint256 does not fit in a JSON number.
//
// Output: one JSON line per request, written as soon as the request is read (so a test can keep
// one process open and send many trees):
//   {"root": "0x…", "tree": ["0x…", …], "leafHashes": [per value], "treeIndices": [per value],
//    "proofs": [[per value, "0x…", …], …]}
// or {"error": "message"} when OpenZeppelin refuses the input.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

const require = createRequire(import.meta.url);
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

const PAYOUT_ENCODING = ["uint256", "uint256", "address", "uint256"];

function build(request) {
  const values = Array.isArray(request) ? request : request.values;
  const encoding = Array.isArray(request) ? PAYOUT_ENCODING : (request.encoding ?? PAYOUT_ENCODING);
  const tree = StandardMerkleTree.of(values, encoding);
  const dump = tree.dump();
  return {
    root: tree.root,
    tree: dump.tree,
    leafHashes: values.map((_, i) => dump.tree[dump.values[i].treeIndex]),
    treeIndices: dump.values.map((v) => v.treeIndex),
    proofs: values.map((_, i) => tree.getProof(i)),
  };
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  let answer;
  try {
    answer = build(JSON.parse(line));
  } catch (err) {
    answer = { error: String(err?.message ?? err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
