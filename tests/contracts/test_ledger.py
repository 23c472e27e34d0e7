"""EvidenceLedger: append-only checkpoints, on-chain RFC 9162 proofs, same answers as Python."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from service.chain.client import Chain
from service.evidence import merkle
from tests.contracts.helpers import (
    OPERATOR_ROLE,
    Tally,
    deploy_revert,
    expect_revert,
    leaves,
    one_event,
)

ZERO = "0x" + "00" * 20
HASHES = leaves(300)
PROPERTY = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# RFC 6962 / transparency-dev test vector: the roots of the first 1..8 of these entries.
VECTOR_ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
VECTOR_ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _root(n: int, hashes: list[bytes] = HASHES) -> bytes:
    return merkle.root_from_leaf_hashes(hashes[:n])


def _anchor(t: Tally, n: int, old: int | None = None, hashes: list[bytes] = HASHES) -> dict:
    proof = [] if old is None else merkle.consistency_proof(hashes[:n], old)
    receipt = t.tx(t.ledger.functions.anchor(n, _root(n, hashes), proof))
    return one_event(t.ledger, receipt, "CheckpointAnchored")


# --- anchor ---------------------------------------------------------------------------------


def test_first_anchor_records_checkpoint_and_emits(tally: Tally) -> None:
    led = tally.ledger
    assert tally.call(led.functions.count()) == 0
    receipt = tally.tx(led.functions.anchor(5, _root(5), []))
    assert one_event(led, receipt, "CheckpointAnchored") == {
        "seq": 0,
        "treeSize": 5,
        "rootHash": _root(5),
    }
    block = tally.chain.w3.eth.get_block(receipt["blockNumber"])
    assert tally.call(led.functions.count()) == 1
    assert tally.call(led.functions.checkpoint(0)) == [
        5,
        _root(5),
        block["number"],
        block["timestamp"],
    ]
    assert tally.call(led.functions.latest()) == [
        0,
        5,
        _root(5),
        block["number"],
        block["timestamp"],
    ]


def test_anchor_chain_with_consistency_proofs(tally: Tally) -> None:
    sizes = [1, 2, 3, 4, 7, 8, 9, 16, 17, 100, 255, 256, 300]
    _anchor(tally, sizes[0])
    for seq, (old, new) in enumerate(itertools.pairwise(sizes), start=1):
        assert _anchor(tally, new, old) == {"seq": seq, "treeSize": new, "rootHash": _root(new)}
    assert tally.call(tally.ledger.functions.count()) == len(sizes)
    for seq, n in enumerate(sizes):
        assert tally.call(tally.ledger.functions.checkpoint(seq))[:2] == [n, _root(n)]
    assert tally.call(tally.ledger.functions.latest())[:3] == [len(sizes) - 1, 300, _root(300)]


def test_rfc6962_vector_anchors_entry_by_entry(tally: Tally) -> None:
    hashes = [merkle.leaf_hash(e) for e in VECTOR_ENTRIES]
    for n in range(1, 9):
        assert _root(n, hashes) == VECTOR_ROOTS[n - 1]
        _anchor(tally, n, None if n == 1 else n - 1, hashes)
    assert tally.call(tally.ledger.functions.latest())[:3] == [7, 8, VECTOR_ROOTS[7]]
    assert tally.call(tally.ledger.functions.leafHashOf(VECTOR_ENTRIES[3])) == hashes[3]


def test_anchor_by_non_operator_reverts(tally: Tally) -> None:
    for sender in (tally.outsider, tally.admin, tally.auditor):
        expect_revert(
            lambda s=sender: tally.tx(tally.ledger.functions.anchor(1, _root(1), []), s),
            "EvidenceLedgerUnauthorizedAccount",
            (sender.address, OPERATOR_ROLE),
        )


def test_anchor_empty_tree_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.ledger.functions.anchor(0, merkle.EMPTY_ROOT, [])),
        "EvidenceLedgerEmptyTree",
        (),
    )
    _anchor(tally, 3)
    expect_revert(
        lambda: tally.tx(tally.ledger.functions.anchor(0, merkle.EMPTY_ROOT, [])),
        "EvidenceLedgerEmptyTree",
        (),
    )


def test_first_anchor_with_proof_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.ledger.functions.anchor(4, _root(4), [HASHES[0], HASHES[1]])),
        "EvidenceLedgerUnexpectedProof",
        (2,),
    )


def test_non_extending_anchor_reverts(tally: Tally) -> None:
    _anchor(tally, 10)
    for size in (10, 9, 1):  # equal size (even with the same root) and shrinking
        expect_revert(
            lambda n=size: tally.tx(tally.ledger.functions.anchor(n, _root(n), [])),
            "EvidenceLedgerNotExtending",
            (10, size),
        )


def test_bad_consistency_proof_reverts(tally: Tally) -> None:
    _anchor(tally, 6)
    good = merkle.consistency_proof(HASHES[:13], 6)
    forked = HASHES[:5] + leaves(8, salt=1)  # entry 5 rewritten, then grown to 13
    cases = [
        (_root(13), good[:-1]),  # truncated
        (_root(13), [*good, HASHES[0]]),  # one hash too many
        (_root(13), [good[0], HASHES[99], *good[2:]]),  # tampered hash
        (_root(13), []),  # no proof at all
        (_root(12), good),  # proof for 13, root of 12
        (merkle.root_from_leaf_hashes(forked), merkle.consistency_proof(forked, 6)),  # history
    ]
    for root, proof in cases:
        expect_revert(
            lambda r=root, p=proof: tally.tx(tally.ledger.functions.anchor(13, r, p)),
            "EvidenceLedgerInconsistentCheckpoint",
            (0, 6, 13, root),
        )
    _anchor(tally, 13, 6)  # the good one still goes in


def test_mislabelled_checkpoint_size_is_accepted_on_chain(tally: Tally) -> None:
    """A consistency proof does not pin the new size: the proof from 4 to 6 leaves also
    verifies "size 8" with the root of 6 (T9 item 9). Only an operator can anchor it, and
    it breaks its own log: what the ledger then holds."""
    led = tally.ledger
    _anchor(tally, 4)
    proof = merkle.consistency_proof(HASHES[:6], 4)
    receipt = tally.tx(led.functions.anchor(8, _root(6), proof))
    assert one_event(led, receipt, "CheckpointAnchored") == {
        "seq": 1,
        "treeSize": 8,
        "rootHash": _root(6),
    }
    assert tuple(tally.call(led.functions.checkpoint(1))[:2]) == (8, _root(6))
    # leaves 0..3 still verify against "size 8" (their paths pass through the left half),
    # leaves 4 and 5 never can: the paths of a tree of 8 do not fit a root of 6
    for i in range(4):
        real = merkle.inclusion_proof(HASHES[:6], i)
        assert tally.call(led.functions.verifyInclusion(1, i, HASHES[i], real)) is True
    for i in (4, 5):
        for proof_of in (
            merkle.inclusion_proof(HASHES[:6], i),
            merkle.inclusion_proof(HASHES[:8], i),
        ):
            assert tally.call(led.functions.verifyInclusion(1, i, HASHES[i], proof_of)) is False
    # and the honest log of 8 leaves can no longer be anchored on top of it
    expect_revert(
        lambda: tally.tx(
            led.functions.anchor(10, _root(10), merkle.consistency_proof(HASHES[:10], 8))
        ),
        "EvidenceLedgerInconsistentCheckpoint",
        (1, 8, 10, _root(10)),
    )


def test_last_leaf_inclusion_does_not_pin_the_size(tally: Tally) -> None:
    """The defence of requiring the new last leaf's inclusion proof at index size - 1 is
    not exact: it pins only the number of left siblings on the last leaf's path (the bits
    set in size - 1), so the root of 6 leaves labelled "size 7" passes both checks."""
    led = tally.ledger
    consistency = merkle.consistency_proof(HASHES[:6], 4)
    last = merkle.inclusion_proof(HASHES[:6], 5)
    assert tally.call(led.functions.verifyConsistency(4, 7, _root(4), _root(6), consistency))
    assert tuple(tally.call(led.functions.rootFromInclusionProof(6, 7, HASHES[5], last))) == (
        True,
        _root(6),
    )
    # it does stop "size 8" (7 = 0b111 has three set bits, 5 = 0b101 two)
    assert tally.call(led.functions.rootFromInclusionProof(7, 8, HASHES[5], last))[0] is False


# --- views ----------------------------------------------------------------------------------


def test_views_before_any_checkpoint(tally: Tally) -> None:
    led = tally.ledger
    expect_revert(lambda: tally.call(led.functions.latest()), "EvidenceLedgerNoCheckpoint", ())
    expect_revert(
        lambda: tally.call(led.functions.checkpoint(0)), "EvidenceLedgerUnknownCheckpoint", (0, 0)
    )
    expect_revert(
        lambda: tally.call(led.functions.verifyInclusion(0, 0, HASHES[0], [])),
        "EvidenceLedgerUnknownCheckpoint",
        (0, 0),
    )


def test_unknown_checkpoint_reverts(tally: Tally) -> None:
    _anchor(tally, 2)
    _anchor(tally, 5, 2)
    for seq in (2, 3, 2**256 - 1):
        expect_revert(
            lambda s=seq: tally.call(tally.ledger.functions.checkpoint(s)),
            "EvidenceLedgerUnknownCheckpoint",
            (seq, 2),
        )
        expect_revert(
            lambda s=seq: tally.call(tally.ledger.functions.verifyInclusion(s, 0, HASHES[0], [])),
            "EvidenceLedgerUnknownCheckpoint",
            (seq, 2),
        )


def test_verify_inclusion_against_stored_checkpoints(tally: Tally) -> None:
    led = tally.ledger
    _anchor(tally, 7)
    _anchor(tally, 21, 7)
    for seq, n in ((0, 7), (1, 21)):
        for i in range(n):
            proof = merkle.inclusion_proof(HASHES[:n], i)
            assert tally.call(led.functions.verifyInclusion(seq, i, HASHES[i], proof))
    proof = merkle.inclusion_proof(HASHES[:21], 4)
    bad = [
        (1, 4, HASHES[5], proof),  # wrong leaf
        (1, 5, HASHES[4], proof),  # wrong index
        (0, 4, HASHES[4], proof),  # proof for size 21 against the checkpoint of size 7
        (1, 4, HASHES[4], proof[:-1]),  # too short
        (1, 4, HASHES[4], [*proof, HASHES[0]]),  # too long
        (1, 21, HASHES[4], proof),  # index == size
        (1, 2**64 - 1, HASHES[4], proof),  # index far out of range
    ]
    for seq, index, leaf, p in bad:
        assert tally.call(led.functions.verifyInclusion(seq, index, leaf, p)) is False


def test_hash_helpers_match_python(tally: Tally) -> None:
    led = tally.ledger
    for data in (b"", b"\x00", b"tally" * 40):
        assert tally.call(led.functions.leafHashOf(data)) == merkle.leaf_hash(data)
    assert tally.call(led.functions.nodeHashOf(HASHES[0], HASHES[1])) == merkle.node_hash(
        HASHES[0], HASHES[1]
    )


def test_constructor_zero_registry_reverts(chain: Chain) -> None:
    got = deploy_revert(chain, "EvidenceLedger", ZERO, sender=chain.accounts[0])
    assert got == ("EvidenceLedgerZeroAddress", ())


def test_consistency_edge_cases_match_python(tally: Tally) -> None:
    led = tally.ledger
    r5, r9 = _root(5), _root(9)
    cases = [
        (5, 5, r5, r5, []),  # equal sizes, equal roots
        (5, 5, r5, r9, []),  # equal sizes, different roots
        (5, 5, r5, r5, [r5]),  # equal sizes with a proof
        (0, 9, merkle.EMPTY_ROOT, r9, []),  # from the empty tree
        (0, 9, r5, r9, []),  # "empty" tree with a non-empty root
        (0, 9, merkle.EMPTY_ROOT, r9, [r5]),  # from the empty tree with a proof
        (9, 5, r9, r5, merkle.consistency_proof(HASHES[:9], 5)),  # shrinking
        (0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, []),
    ]
    for m, n, a, b, proof in cases:
        expected = merkle.verify_consistency(m, n, a, b, proof)
        assert tally.call(led.functions.verifyConsistency(m, n, a, b, proof)) is expected, (m, n)


# --- the same answers as service.evidence.merkle, on random trees ---------------------------
# Each case goes to the deployed ledger's verifier through LedgerProbe, many per eth_call.

Consistency = tuple[int, int, bytes, bytes, list[bytes]]
Inclusion = tuple[int, int, bytes, list[bytes], bytes]


def _chain_consistency(t: Tally, probe: Contract, cases: list[Consistency]) -> list[bool]:
    return list(t.call(probe.functions.consistency(t.ledger.address, cases)))


def _chain_inclusion(t: Tally, probe: Contract, cases: list[Inclusion]) -> list[bool]:
    return list(t.call(probe.functions.inclusion(t.ledger.address, cases)))


def _mutations(proof: list[bytes], pick: int) -> list[list[bytes]]:
    """Ways to break a proof: longer, shorter, one hash replaced or duplicated."""
    extra = HASHES[pick % 300]
    out = [[*proof, extra], [extra, *proof]]
    if proof:
        k = pick % len(proof)
        out += [proof[:-1], proof[1:], [*proof[:k], bytes(32), *proof[k + 1 :]]]
        out.append([*proof[:k], proof[(k + 1) % len(proof)], *proof[k + 1 :]])
    return out


def _some(variants: list[Any], pick: int, k: int = 3) -> list[Any]:
    """``k`` of ``variants``, a different selection for each ``pick`` (py-evm is slow: each
    case costs milliseconds, so each example checks a few variants, not all)."""
    start = pick % len(variants)
    rotated = variants[start:] + variants[:start]
    return rotated[:k]


def _consistency_cases(n: int, m: int, pick: int) -> list[Consistency]:
    proof = merkle.consistency_proof(HASHES[:n], m)
    old_root = _root(m) if m else merkle.EMPTY_ROOT
    new_root = _root(n)
    variants: list[Consistency] = [(m, n, old_root, new_root, p) for p in _mutations(proof, pick)]
    variants += [
        (m, n, new_root, old_root, proof),  # roots swapped
        (m, n, old_root, _root(n - 1) if n > 1 else bytes(32), proof),  # wrong new root
        (m + 1, n, old_root, new_root, proof),  # wrong sizes
        (m, n + 1, old_root, new_root, proof),
        (max(m - 1, 0), n, old_root, new_root, proof),
        (m, max(n - 1, 0), old_root, new_root, proof),
    ]
    return [(m, n, old_root, new_root, proof), *_some(variants, pick)]


def _inclusion_cases(n: int, i: int, pick: int) -> list[Inclusion]:
    root = _root(n)
    proof = merkle.inclusion_proof(HASHES[:n], i)
    variants: list[Inclusion] = [(i, n, HASHES[i], p, root) for p in _mutations(proof, pick)]
    variants += [
        (i, n, HASHES[(i + 1) % 300], proof, root),  # another leaf
        ((i + 1) % n, n, HASHES[i], proof, root),  # another index (the same when n == 1)
        (i, n + 1, HASHES[i], proof, root),  # another size
        (i, max(n - 1, 1), HASHES[i], proof, root),
        (n, n, HASHES[i], proof, root),  # index out of range
        (i, n, HASHES[i], proof, _root(n + 1)),  # another root
    ]
    return [(i, n, HASHES[i], proof, root), *_some(variants, pick)]


def _python_consistency(cases: list[Consistency]) -> list[bool]:
    return [merkle.verify_consistency(m, n, a, b, p) for m, n, a, b, p in cases]


def _python_inclusion(cases: list[Inclusion]) -> list[bool]:
    return [merkle.verify_inclusion(leaf, i, n, p, root) for i, n, leaf, p, root in cases]


def test_consistency_matches_python_for_every_old_size(tally: Tally, probe: Contract) -> None:
    """Every (old, new) pair up to 10 leaves, each proof with three broken variants."""
    cases = [c for n in range(1, 11) for m in range(n + 1) for c in _consistency_cases(n, m, n + m)]
    want = _python_consistency(cases)
    assert all(want[::4])  # every genuine proof verifies
    assert _chain_consistency(tally, probe, cases) == want


def test_inclusion_matches_python_for_every_leaf(tally: Tally, probe: Contract) -> None:
    """Every leaf of every tree up to 10 leaves, each proof with three broken variants."""
    cases = [c for n in range(1, 11) for i in range(n) for c in _inclusion_cases(n, i, n + i)]
    want = _python_inclusion(cases)
    assert all(want[::4])
    assert _chain_inclusion(tally, probe, cases) == want


PAIRS = st.lists(st.tuples(st.integers(1, 300), st.integers(0, 10**9)), min_size=1, max_size=3)


@PROPERTY
@given(pairs=PAIRS)
def test_consistency_matches_python_on_random_trees(
    tally: Tally, probe: Contract, pairs: list[tuple[int, int]]
) -> None:
    cases = [c for n, r in pairs for c in _consistency_cases(n, r % (n + 1), r)]
    want = _python_consistency(cases)
    assert all(want[::4])
    assert _chain_consistency(tally, probe, cases) == want


@PROPERTY
@given(pairs=PAIRS)
def test_inclusion_matches_python_on_random_trees(
    tally: Tally, probe: Contract, pairs: list[tuple[int, int]]
) -> None:
    cases = [c for n, r in pairs for c in _inclusion_cases(n, r % n, r)]
    want = _python_inclusion(cases)
    assert all(want[::4])
    assert _chain_inclusion(tally, probe, cases) == want


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.lists(st.integers(1, 300), min_size=2, max_size=5, unique=True))
def test_random_anchor_sequences(tally: Tally, sizes: list[int]) -> None:
    """Growing sizes anchor with their proofs; any shrink is refused by name."""
    snap = tally.chain.snapshot()
    try:
        latest = 0
        for n in sizes:
            if n <= latest:
                expect_revert(
                    lambda k=n: tally.tx(tally.ledger.functions.anchor(k, _root(k), [])),
                    "EvidenceLedgerNotExtending",
                    (latest, n),
                )
                continue
            _anchor(tally, n, latest or None)
            latest = n
        assert tally.call(tally.ledger.functions.latest())[1:3] == [latest, _root(latest)]
    finally:
        tally.chain.revert(snap)
