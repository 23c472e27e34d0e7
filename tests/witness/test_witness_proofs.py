"""Split-view proofs and the witness store, without a network: what a proof must show to be
one, and what the store refuses so that one key never cosigns one size twice."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import ConfigError
from service.evidence.merkle import consistency_proof, leaf_hash, root_from_leaf_hashes
from service.witness.evidence import (
    FORK,
    SAME_SIZE,
    PrefixProof,
    SplitViewProofInvalid,
    build_proof,
    extends,
    verify_proof,
)
from service.witness.note import Checkpoint, CosignatureV1Signer, NoteSigner, sign_note
from service.witness.store import Cosigned, WitnessStore

LOG = NoteSigner("space-a.test/log", hashlib.sha256(b"log key").digest())
OTHER = NoteSigner("space-a.test/log", hashlib.sha256(b"another key").digest())
WITNESS = CosignatureV1Signer("witness.test/w1", hashlib.sha256(b"witness").digest())


def leaves(n: int, *, forked_at: int | None = None) -> list[bytes]:
    return [
        leaf_hash(f"entry {i}{' (rewritten)' if i == forked_at else ''}".encode()) for i in range(n)
    ]


def note(hashes: list[bytes], signer: NoteSigner = LOG) -> tuple[str, Checkpoint]:
    cp = Checkpoint(signer.name, len(hashes), root_from_leaf_hashes(hashes))
    return sign_note(cp.body(), signer).decode(), cp


def prefix_proof(hashes: list[bytes], old: int) -> PrefixProof:
    """What a log holding ``hashes`` serves for ``old -> len(hashes)``."""
    return PrefixProof(
        old, len(hashes), root_from_leaf_hashes(hashes[:old]), tuple(consistency_proof(hashes, old))
    )


def doc(a: str, b: str, kind: str, proof: PrefixProof | None) -> dict[str, object]:
    return build_proof(
        kind=kind,
        log_vkey=LOG.vkey(),
        cosigned_note=a,
        conflicting_note=b,
        consistency=proof,
        detected_at=1_700_000_000,
        witness_vkey=WITNESS.vkey(),
        url="http://space-a.test",
    )


def test_same_size_other_root_is_a_split_view() -> None:
    a, _ = note(leaves(8))
    b, _ = note(leaves(8, forked_at=3))
    lines = verify_proof(doc(a, b, SAME_SIZE, None))
    assert lines[-1].startswith("SPLIT VIEW: two different trees of size 8")


def test_fork_proved_by_the_logs_own_consistency_proof() -> None:
    honest, forked = leaves(5), leaves(11, forked_at=2)
    a, old = note(honest)
    b, new = note(forked)
    served = prefix_proof(forked, 5)  # the forked log proves 5 -> 11 from its own prefix
    assert extends(old, new, served) is False
    lines = verify_proof(doc(a, b, FORK, served))
    assert "does not contain the signed size-5 tree" in lines[-1]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.data())
def test_fork_detected_wherever_the_rewrite_is(old: int, extra: int, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, old - 1))
    honest, forked = leaves(old), leaves(old + extra, forked_at=at)
    _, cp_old = note(honest)
    _, cp_new = note(forked)
    assert extends(cp_old, cp_new, prefix_proof(forked, old)) is False
    assert extends(cp_old, note(leaves(old + extra))[1], prefix_proof(leaves(old + extra), old))


def test_consistent_notes_are_no_split_view() -> None:
    a, _ = note(leaves(5))
    b, _ = note(leaves(9))
    with pytest.raises(SplitViewProofInvalid, match="extends"):
        verify_proof(doc(a, b, FORK, prefix_proof(leaves(9), 5)))
    with pytest.raises(SplitViewProofInvalid, match="same tree"):
        verify_proof(doc(a, a, SAME_SIZE, None))


def test_garbage_consistency_proof_proves_nothing() -> None:
    """Anyone can write a proof that fails: failing alone is not evidence against the log."""
    a, _ = note(leaves(5))
    b, _ = note(leaves(9))
    junk = PrefixProof(5, 9, b"\x11" * 32, (b"\x22" * 32, b"\x33" * 32))
    with pytest.raises(SplitViewProofInvalid, match="proves nothing"):
        verify_proof(doc(a, b, FORK, junk))


def test_forged_split_view_with_a_note_the_log_never_signed_fails() -> None:
    a, _ = note(leaves(8))
    b, _ = note(leaves(8, forked_at=1), OTHER)  # same name, another key: not the log's note
    with pytest.raises(SplitViewProofInvalid, match="conflicting_note"):
        verify_proof(doc(a, b, SAME_SIZE, None))
    tampered = doc(a, note(leaves(8, forked_at=1))[0], SAME_SIZE, None)
    tampered["conflicting_note"] = str(tampered["conflicting_note"]).replace("\n8\n", "\n9\n")
    with pytest.raises(SplitViewProofInvalid):
        verify_proof(tampered)


def _cosigned(size: int, ts: int = 1) -> Cosigned:
    text, _ = note(leaves(size))
    return Cosigned(LOG.name, size, "root", text, ts, f"line {size}", posted=False)


def test_store_keeps_one_cosignature_per_size_and_only_moves_forward(tmp_path: Path) -> None:
    store = WitnessStore(tmp_path / "w.db")
    store.record_cosignature(_cosigned(4))
    with pytest.raises(ValueError, match="not past"):
        store.record_cosignature(_cosigned(4, ts=2))
    with pytest.raises(ValueError, match="not past"):
        store.record_cosignature(_cosigned(3))
    store.record_cosignature(_cosigned(7))
    assert [c.size for c in store.unposted(LOG.name)] == [4, 7]
    store.mark_posted(LOG.name, 4)
    store.close()
    again = WitnessStore(tmp_path / "w.db")  # a restart reads the same state
    latest = again.latest(LOG.name)
    assert latest is not None and (latest.size, latest.posted) == (7, False)
    assert [c.size for c in again.unposted(LOG.name)] == [7]


def test_store_refuses_another_witness_key(tmp_path: Path) -> None:
    store = WitnessStore(tmp_path / "w.db")
    store.bind_key(WITNESS.vkey())
    store.bind_key(WITNESS.vkey())
    other = CosignatureV1Signer("witness.test/w1", hashlib.sha256(b"other").digest())
    with pytest.raises(ConfigError, match="belongs to witness key"):
        store.bind_key(other.vkey())


def test_store_records_a_split_view_once(tmp_path: Path) -> None:
    store = WitnessStore(tmp_path / "w.db")
    a, _ = note(leaves(8))
    b, _ = note(leaves(8, forked_at=3))
    proof = doc(a, b, SAME_SIZE, None)
    kw = {"origin": LOG.name, "kind": SAME_SIZE, "proof": proof, "at": 5}
    assert store.record_split_view(conflicting_note=b, **kw)  # type: ignore[arg-type]
    assert not store.record_split_view(conflicting_note=b, **kw)  # type: ignore[arg-type]
    [kept] = store.split_views(LOG.name)
    assert kept.kind == SAME_SIZE and verify_proof(kept.proof)[-1].startswith("SPLIT VIEW")
