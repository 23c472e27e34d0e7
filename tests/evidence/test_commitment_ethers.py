"""T15 commitments and reduced receipts recomputed by an independent implementation:
Node's crypto (SHA-256), Buffer (base64url) and ethers' TypedDataEncoder (EIP-712).

For every entry type (docs/evidence.md's signed examples) a full receipt is reduced; Node
then checks that the struct hash the reduced document carries is ethers' ``hashStruct`` of
the whole message and that keccak(0x1901 || ethers' domain separator || it) is ethers'
``hash``; re-derives the commitment salt and each field salt from the entry salt, decodes
each disclosure and hashes it; and rebuilds the commitment body, leaf data and leaf hash
from the signatures. Python's numbers must be Node's. (The deployed contract's
``verifyInclusion`` accepting a commitment leaf is tests/evidence/test_commitment_mixed.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from service.evidence import commitment
from service.evidence.entries import ENTRY_CLASSES, SignedEntry
from service.evidence.merkle import leaf_hash
from service.evidence.receipts import reduce_receipt
from tests.evidence.test_typed_data_ethers import ROOT, _examples

NODE_CHECK = r"""
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { TypedDataEncoder, keccak256, concat, getAddress } from "ethers";

const sha = (...parts) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};
const hex = (b) => "0x" + Buffer.from(b).toString("hex");
const bytes = (h) => Buffer.from(h.slice(2), "hex");
const u = (n, size) => {
  const b = Buffer.alloc(size);
  let v = BigInt(n);
  for (let i = size - 1; i >= 0; i--) { b[i] = Number(v & 0xffn); v >>= 8n; }
  return b;
};

const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ typed, salt, tag, full, reduced }) => {
  const types = { ...typed.types };
  delete types.EIP712Domain;
  const entrySalt = bytes(salt);
  const names = types[typed.primaryType].map((f) => f.name);
  const structHash = TypedDataEncoder.hashStruct(typed.primaryType, types, typed.message);
  const separator = TypedDataEncoder.hashDomain(typed.domain);
  const digest = keccak256(concat(["0x1901", separator, reduced.signed.struct_hash]));
  // every field's disclosure: its salt from the entry salt, its digest, its value
  const fieldDigests = [];
  const opened = [];
  for (const [i, name] of names.entries()) {
    const disclosure = full[i];
    const [fsalt, fname, value] = JSON.parse(Buffer.from(disclosure, "base64url").toString("utf8"));
    const want = sha(Buffer.from("tally/field-salt\0"), entrySalt, Buffer.from(name, "utf8"))
      .subarray(0, 16).toString("base64url");
    opened.push({ name: fname, salt_ok: fsalt === want,
                  value_ok: JSON.stringify(value) === JSON.stringify(typed.message[name]) });
    fieldDigests.push(sha(Buffer.from(disclosure, "ascii")));
  }
  // the signers digest from the signatures, ordered by signer address bytes
  const sigs = Object.entries(reduced.signed.signatures)
    .map(([a, s]) => [bytes(getAddress(a)), bytes(s)])
    .sort((x, y) => Buffer.compare(x[0], y[0]));
  const records = Buffer.concat([u(sigs.length, 2), ...sigs.flatMap(([a, s]) => [a, s])]);
  const signers = sha(bytes(separator), bytes(structHash), records);
  const body = Buffer.concat([
    Buffer.from("TALLY-COMMIT-V2"), u(tag, 1), u(typed.domain.chainId, 32),
    bytes(getAddress(typed.domain.verifyingContract)), u(names.length, 2), ...fieldDigests, signers,
  ]);
  const commitSalt = sha(Buffer.from("tally/commitment-salt\0"), entrySalt);
  const leafData = Buffer.concat([u(2, 1), u(tag, 1), sha(commitSalt, body)]);
  return {
    struct_hash: structHash,
    digest,
    ethers_digest: TypedDataEncoder.hash(typed.domain, types, typed.message),
    commitment_salt: hex(commitSalt),
    field_digests: fieldDigests.map(hex),
    reduced_digests: reduced.disclosures.map((d) => hex(sha(Buffer.from(d, "ascii")))),
    opened,
    leaf_data: hex(leafData),
    leaf_hash: hex(sha(Buffer.from([0]), leafData)),
  };
});
process.stdout.write(JSON.stringify(out) + "\n");
"""


def _node(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "ethers").is_dir():
        why = "the Node check needs Node 20 and `npm ci` (ethers)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    done = subprocess.run(
        [node, "--input-type=module", "-e", NODE_CHECK],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    answers: list[dict[str, Any]] = json.loads(done.stdout)
    return answers


def _full_receipt(signed: SignedEntry, salt: bytes) -> dict[str, Any]:
    """A full version-2 receipt of ``signed`` in a one-leaf tree (its leaf is the root)."""
    leaf = leaf_hash(commitment.commit(signed, salt).leaf_data)
    return {
        "version": 2,
        "form": "full",
        **signed.to_json(),
        "entry_id": "0x" + signed.id().hex(),
        "leaf_index": 0,
        "tree_size": 1,
        "root": "0x" + leaf.hex(),
        "inclusion_proof": [],
        "anchor": {
            "chain_id": signed.domain.chain_id,
            "contract": signed.domain.verifying_contract,
            "checkpoint_seq": 0,
            "tx_hash": "0x" + "00" * 32,
            "block_number": 1,
        },
        "salt": "0x" + salt.hex(),
    }


def _cases() -> list[tuple[SignedEntry, bytes, dict[str, Any]]]:
    cases = []
    for i, signed in enumerate(_examples().values()):
        salt = bytes([i + 1]) * 32
        names = commitment.field_names(type(signed.entry))
        chosen = [*commitment.signer_fields(signed.entry_type_name), names[-1]]
        reduced = reduce_receipt(_full_receipt(signed, salt), chosen)
        cases.append((signed, salt, reduced))
    return cases


def test_reduced_receipts_hash_and_commit_like_node_and_ethers() -> None:
    cases = _cases()
    assert {type(s.entry).__name__ for s, _, _ in cases} == set(ENTRY_CLASSES)
    answers = _node(
        [
            {
                "typed": s.entry.typed_data(s.domain),
                "salt": "0x" + salt.hex(),
                "tag": int(s.entry_type),
                "full": commitment.disclosures(s, salt),
                "reduced": reduced,
            }
            for s, salt, reduced in cases
        ]
    )
    for (signed, salt, reduced), node in zip(cases, answers, strict=True):
        name = signed.entry_type_name
        assert node["struct_hash"] == reduced["signed"]["struct_hash"], name
        assert node["digest"] == node["ethers_digest"] == "0x" + signed.digest().hex(), name
        assert node["commitment_salt"] == reduced["commitment_salt"], name
        assert node["field_digests"] == reduced["field_digests"], name
        wanted = [
            reduced["field_digests"][
                commitment.field_names(type(signed.entry)).index(
                    commitment.parse_disclosure(d).name
                )
            ]
            for d in reduced["disclosures"]
        ]
        assert node["reduced_digests"] == wanted, name
        names = list(commitment.field_names(type(signed.entry)))
        assert [o["name"] for o in node["opened"]] == names, name
        assert all(o["salt_ok"] and o["value_ok"] for o in node["opened"]), (name, node["opened"])
        leaf_data = commitment.commit(signed, salt).leaf_data
        assert node["leaf_data"] == "0x" + leaf_data.hex(), name
        assert node["leaf_hash"] == "0x" + leaf_hash(leaf_data).hex() == reduced["root"], name


def test_a_changed_salt_changes_node_leaf_too() -> None:
    """The comparison can fail: another salt is another commitment on both sides."""
    signed, salt, reduced = _cases()[1]
    other = bytes(32)
    (node,) = _node(
        [
            {
                "typed": signed.entry.typed_data(signed.domain),
                "salt": "0x" + other.hex(),
                "tag": int(signed.entry_type),
                "full": commitment.disclosures(signed, other),
                "reduced": reduced,
            }
        ]
    )
    assert node["leaf_data"] == "0x" + commitment.commit(signed, other).leaf_data.hex()
    assert node["leaf_data"] != "0x" + commitment.commit(signed, salt).leaf_data.hex()
    assert node["commitment_salt"] != reduced["commitment_salt"]
