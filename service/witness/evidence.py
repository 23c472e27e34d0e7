"""Split-view proofs: two signed checkpoints of one log that do not extend each other.

A proof is a JSON document anyone can re-check with the log's vkey alone
(``tally witness verify-proof FILE``); nothing in it is trusted but the signatures::

    {"type": "tally-witness-split-view/v1", "kind": "same-size" | "fork",
     "origin": ..., "vkey": ...,             # the log's note key
     "cosigned_note": ..., "conflicting_note": ...,   # both as the log served them
     "consistency": null | {"from": m, "to": n, "prefix_root": b64, "proof": [b64, ...]},
     "detected_at": unix seconds, "witness": {"vkey": ..., "url": ...}}

Two kinds, both needing both notes to verify under ``vkey`` with origin = its name:

- ``same-size``: the notes sign two different roots for one tree size.
- ``fork``: the notes have sizes ``m < n``; ``consistency`` is the RFC 9162 proof the log
  itself served for ``m -> n``, and it verifies from ``prefix_root`` (the root of the
  first ``m`` leaves that the log's proof commits to) to the size-``n`` note's root, while
  ``prefix_root`` differs from the size-``m`` note's root. A consistency proof binds its
  prefix root to the new root (collision resistance of SHA-256), so the size-``n`` tree
  does not contain the size-``m`` tree the log signed: the two do not extend each other.

A consistency proof that verifies against neither root proves nothing (anyone can write
garbage): the witness refuses such a checkpoint but does not call it a split view.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from service.errors import InvalidInput
from service.evidence.merkle import verify_consistency
from service.witness.note import Checkpoint, NoteError, NoteVerifier, open_checkpoint

PROOF_TYPE = "tally-witness-split-view/v1"
SAME_SIZE = "same-size"
FORK = "fork"


class SplitViewProofInvalid(InvalidInput):
    """A split-view proof document is malformed or does not prove a split view."""

    code = "split_view_proof_invalid"


@dataclass(frozen=True)
class PrefixProof:
    """A log's consistency proof ``size_from -> size_to`` and the prefix root it starts at."""

    size_from: int
    size_to: int
    prefix_root: bytes
    proof: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.size_from,
            "to": self.size_to,
            "prefix_root": _b64(self.prefix_root),
            "proof": [_b64(h) for h in self.proof],
        }


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise SplitViewProofInvalid(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SplitViewProofInvalid(f"{what} is not base64") from None
    if len(raw) != 32:
        raise SplitViewProofInvalid(f"{what} is not a 32-byte hash")
    return raw


def extends(older: Checkpoint, newer: Checkpoint, proof: PrefixProof) -> bool | None:
    """Whether ``proof`` (served by the log) shows ``newer`` extends ``older``.

    ``True``: it does. ``False``: the proof verifies from another prefix root than
    ``older.root`` to ``newer.root``, so ``newer`` does not extend ``older`` (a fork).
    ``None``: the proof links neither root (or is for other sizes): it proves nothing.
    """
    if (proof.size_from, proof.size_to) != (older.size, newer.size):
        return None
    hashes = list(proof.proof)
    if verify_consistency(older.size, newer.size, older.root, newer.root, hashes):
        return True
    if proof.prefix_root != older.root and verify_consistency(
        older.size, newer.size, proof.prefix_root, newer.root, hashes
    ):
        return False
    return None


def build_proof(
    *,
    kind: str,
    log_vkey: str,
    cosigned_note: str,
    conflicting_note: str,
    consistency: PrefixProof | None,
    detected_at: int,
    witness_vkey: str,
    url: str,
) -> dict[str, Any]:
    origin = NoteVerifier.from_vkey(log_vkey).name
    return {
        "type": PROOF_TYPE,
        "kind": kind,
        "origin": origin,
        "vkey": log_vkey,
        "cosigned_note": cosigned_note,
        "conflicting_note": conflicting_note,
        "consistency": None if consistency is None else consistency.to_json(),
        "detected_at": detected_at,
        "witness": {"vkey": witness_vkey, "url": url},
    }


def _open(doc: dict[str, Any], field: str, verifier: NoteVerifier) -> Checkpoint:
    note = doc.get(field)
    if not isinstance(note, str):
        raise SplitViewProofInvalid(f"{field} is missing")
    try:
        checkpoint, _ = open_checkpoint(note.encode("utf-8"), verifier)
    except NoteError as err:
        raise SplitViewProofInvalid(f"{field}: {err.message}") from None
    return checkpoint


def _prefix_proof(doc: dict[str, Any]) -> PrefixProof:
    c = doc.get("consistency")
    if not isinstance(c, dict):
        raise SplitViewProofInvalid("a fork proof needs the log's consistency proof")
    sizes = (c.get("from"), c.get("to"))
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sizes):
        raise SplitViewProofInvalid("consistency from/to must be tree sizes")
    hashes = c.get("proof")
    if not isinstance(hashes, list) or len(hashes) > 64:
        raise SplitViewProofInvalid("consistency proof must be a list of at most 64 hashes")
    return PrefixProof(
        size_from=int(c["from"]),
        size_to=int(c["to"]),
        prefix_root=_unb64(c.get("prefix_root"), "prefix_root"),
        proof=tuple(_unb64(h, f"proof hash {i}") for i, h in enumerate(hashes)),
    )


def verify_proof(doc: Any) -> list[str]:
    """Re-check a split-view proof; the lines say what was shown.

    Raises :class:`SplitViewProofInvalid` when the document does not prove a split view
    (bad signature, other origin, notes that are consistent, a proof that links nothing).
    """
    if not isinstance(doc, dict) or doc.get("type") != PROOF_TYPE:
        raise SplitViewProofInvalid(f"not a {PROOF_TYPE} document")
    vkey = doc.get("vkey")
    if not isinstance(vkey, str):
        raise SplitViewProofInvalid("vkey is missing")
    try:
        verifier = NoteVerifier.from_vkey(vkey)
    except NoteError as err:
        raise SplitViewProofInvalid(f"vkey: {err.message}") from None
    if doc.get("origin") != verifier.name:
        raise SplitViewProofInvalid("origin is not the vkey's name")
    a = _open(doc, "cosigned_note", verifier)
    b = _open(doc, "conflicting_note", verifier)
    lines = [
        f"both notes verify under {vkey}",
        f"cosigned note:    {a.origin} size {a.size} root {_b64(a.root)}",
        f"conflicting note: {b.origin} size {b.size} root {_b64(b.root)}",
    ]
    if a.size == b.size:
        if a.root == b.root:
            raise SplitViewProofInvalid("the notes sign the same tree: no split view")
        return [*lines, f"SPLIT VIEW: two different trees of size {a.size}, both signed"]
    older, newer = (a, b) if a.size < b.size else (b, a)
    proof = _prefix_proof(doc)
    verdict = extends(older, newer, proof)
    if verdict is True:
        raise SplitViewProofInvalid(
            f"the proof shows size {newer.size} extends size {older.size}: no split view"
        )
    if verdict is None:
        raise SplitViewProofInvalid(
            f"the consistency proof {proof.size_from} -> {proof.size_to} links neither root: "
            "it proves nothing"
        )
    return [
        *lines,
        f"the log's own consistency proof {older.size} -> {newer.size} "
        f"({len(proof.proof)} hashes) verifies from prefix root {_b64(proof.prefix_root)}",
        f"SPLIT VIEW: the size-{newer.size} tree does not contain the signed "
        f"size-{older.size} tree (its first {older.size} leaves hash to another root)",
    ]
