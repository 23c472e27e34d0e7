"""payout_tree.py against OpenZeppelin's own StandardMerkleTree (scripts/oz_merkle_tree.mjs).

The reference runs OpenZeppelin's JavaScript in one long-lived node process. The values sent to
it are built here from the definition (non-zero payouts sorted by lower-case address, index =
position), not taken from the module under test.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import SettlementError
from service.settlement import payout_tree
from service.settlement.payout_tree import (
    UINT256_MAX,
    build_payout_tree,
    checksum_address,
    keccak256,
    leaf_hash,
    node_hash,
    verify_proof,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "oz_merkle_tree.mjs"


class OzReference:
    """A node process running scripts/oz_merkle_tree.mjs: one JSON line in, one out."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(SCRIPT)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def tree(self, values: list[list[str]]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"values": values}) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        assert "error" not in answer, answer
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def oz() -> Iterator[OzReference]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: `make node`")
    if not (ROOT / "node_modules" / "@openzeppelin" / "merkle-tree").is_dir():
        pytest.skip("node_modules missing: `make node`")
    ref = OzReference()
    yield ref
    ref.close()


def expected_values(round_id: int, payouts: Mapping[str, int]) -> list[list[str]]:
    """(roundId, index, account, amount) per the design: non-zero payouts by ascending address."""
    nonzero = sorted((a.lower(), amt) for a, amt in payouts.items() if amt != 0)
    return [
        [str(round_id), str(i), to_checksum_address(a), str(amt)]
        for i, (a, amt) in enumerate(nonzero)
    ]


def h(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str.removeprefix("0x"))


def random_payouts(rng: random.Random, n: int) -> dict[str, int]:
    return {
        "0x" + rng.randbytes(20).hex(): rng.choice([1, rng.randrange(1, 10**30), UINT256_MAX])
        for _ in range(n)
    }


def assert_same_as_oz(oz: OzReference, round_id: int, payouts: Mapping[str, int]) -> None:
    values = expected_values(round_id, payouts)
    ref = oz.tree(values)
    tree = build_payout_tree(round_id=round_id, payouts=payouts)

    assert tree.root == h(ref["root"])
    assert list(tree.nodes) == [h(x) for x in ref["tree"]]
    assert len(tree) == len(values)
    for i, value in enumerate(values):
        entry = tree.entries[i]
        assert [str(round_id), str(entry.index), entry.account, str(entry.amount)] == value
        assert entry.leaf == h(ref["leafHashes"][i])
        assert tree.tree_index(i) == ref["treeIndices"][i]
        assert list(entry.proof) == [h(x) for x in ref["proofs"][i]]
        assert list(tree.proof(i)) == list(entry.proof)
        assert verify_proof(leaf=entry.leaf, proof=entry.proof, root=tree.root)
    dump = tree.dump()
    assert dump["tree"] == ref["tree"]
    assert [v["value"] for v in dump["values"]] == values
    assert [v["treeIndex"] for v in dump["values"]] == ref["treeIndices"]


# --- same tree as OpenZeppelin -------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000])
def test_build_matches_openzeppelin(oz: OzReference, n: int) -> None:
    assert_same_as_oz(oz, 4, random_payouts(random.Random(n), n))


def test_build_single_leaf_root_is_leaf(oz: OzReference) -> None:
    payouts = {"0x" + "ab" * 20: 10**18}
    tree = build_payout_tree(round_id=1, payouts=payouts)
    ref = oz.tree(expected_values(1, payouts))
    assert tree.root == h(ref["root"]) == tree.entries[0].leaf
    assert tree.proof(0) == ()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    round_id=st.one_of(st.integers(0, 1000), st.just(UINT256_MAX)),
    payouts=st.dictionaries(
        st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
        st.one_of(st.integers(0, 10**6), st.integers(0, UINT256_MAX)),
        min_size=1,
        max_size=40,
    ).filter(lambda d: any(d.values())),
)
def test_build_random_matches_openzeppelin(
    oz: OzReference, round_id: int, payouts: dict[str, int]
) -> None:
    assert_same_as_oz(oz, round_id, payouts)


def test_leaf_hash_matches_openzeppelin(oz: OzReference) -> None:
    account = "0x" + "12" * 20
    ref = oz.tree([["9", "3", to_checksum_address(account), "777"]])
    assert leaf_hash(round_id=9, index=3, account=account, amount=777) == h(ref["root"])


def test_leaf_hash_is_double_keccak_of_abi_encoding() -> None:
    # abi.encode(uint256 1, uint256 2, address 0x11..11, uint256 3): four 32-byte words.
    encoded = bytes.fromhex(
        "00" * 31 + "01" + "00" * 31 + "02" + "00" * 12 + "11" * 20 + "00" * 31 + "03"
    )
    expected = keccak256(keccak256(encoded))
    assert leaf_hash(round_id=1, index=2, account="0x" + "11" * 20, amount=3) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=20, max_size=20))
def test_checksum_address_matches_eth_utils(raw: bytes) -> None:
    assert checksum_address(raw) == to_checksum_address("0x" + raw.hex())


def test_keccak_backends_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without safe-pysha3 the module falls back to pycryptodome: same digests.
    monkeypatch.setitem(sys.modules, "sha3", None)  # makes `import sha3` raise ImportError
    fallback = payout_tree._load_keccak()
    rng = random.Random(11)
    for size in (0, 1, 32, 64, 128, 135, 136, 137, 1000):
        data = rng.randbytes(size)
        assert fallback(data).digest() == keccak256(data)


def test_keccak256_is_ethereum_keccak_not_sha3() -> None:
    # Known digests: keccak256("") and keccak256("abc") (SHA3-256("") is a7ffc6f8...).
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )


# --- index rule and zero payouts -----------------------------------------------------------


def test_index_is_position_by_ascending_lowercase_address() -> None:
    a = "0x" + "0a" * 20
    b = "0x" + "B0" * 20  # upper case: must sort as "b0b0…", after "0a…" and before "c1…"
    c = to_checksum_address("0x" + "c1" * 20)
    tree = build_payout_tree(round_id=1, payouts={c: 3, b: 2, a: 1})
    assert [(e.index, e.account.lower(), e.amount) for e in tree.entries] == [
        (0, a, 1),
        (1, b.lower(), 2),
        (2, c.lower(), 3),
    ]
    assert tree.index_of(c.lower()) == 2
    assert tree.index_of(b) == 1
    assert all(e.account == to_checksum_address(e.account) for e in tree.entries)


def test_zero_payouts_get_no_leaf_and_no_index(oz: OzReference) -> None:
    payouts = {"0x" + "01" * 20: 0, "0x" + "02" * 20: 5, "0x" + "03" * 20: 0, "0x" + "04" * 20: 6}
    tree = build_payout_tree(round_id=2, payouts=payouts)
    assert [(e.index, e.amount) for e in tree.entries] == [(0, 5), (1, 6)]
    assert tree.entries[1].account.lower() == "0x" + "04" * 20
    assert tree.total == 11
    with pytest.raises(SettlementError):
        tree.index_of("0x" + "01" * 20)
    assert tree.root == h(oz.tree(expected_values(2, payouts))["root"])


def test_build_is_independent_of_input_order() -> None:
    payouts = random_payouts(random.Random(5), 50)
    shuffled = list(payouts.items())
    random.Random(6).shuffle(shuffled)
    a = build_payout_tree(round_id=3, payouts=payouts)
    b = build_payout_tree(round_id=3, payouts=dict(shuffled))
    assert a.root == b.root


def test_round_id_changes_every_leaf() -> None:
    payouts = random_payouts(random.Random(8), 5)
    a = build_payout_tree(round_id=1, payouts=payouts)
    b = build_payout_tree(round_id=2, payouts=payouts)
    assert {e.leaf for e in a.entries}.isdisjoint({e.leaf for e in b.entries})


# --- proofs ---------------------------------------------------------------------------------


def test_verify_proof_rejects_tampering() -> None:
    tree = build_payout_tree(round_id=1, payouts=random_payouts(random.Random(3), 9))
    e = tree.entries[4]
    assert verify_proof(leaf=e.leaf, proof=e.proof, root=tree.root)
    other = tree.entries[5]
    assert not verify_proof(leaf=other.leaf, proof=e.proof, root=tree.root)
    wrong_amount = leaf_hash(round_id=1, index=4, account=e.account, amount=e.amount + 1)
    assert not verify_proof(leaf=wrong_amount, proof=e.proof, root=tree.root)
    flipped = bytes([e.proof[0][0] ^ 1]) + e.proof[0][1:]
    assert not verify_proof(leaf=e.leaf, proof=(flipped, *e.proof[1:]), root=tree.root)
    assert not verify_proof(leaf=e.leaf, proof=e.proof[:-1], root=tree.root)
    assert not verify_proof(leaf=e.leaf, proof=(*e.proof, e.leaf), root=tree.root)
    assert not verify_proof(leaf=e.leaf[:31], proof=e.proof, root=tree.root)
    assert not verify_proof(leaf=e.leaf, proof=e.proof, root=bytes(32))


def test_node_hash_sorts_the_pair() -> None:
    a, b = bytes(32), b"\xff" * 32
    assert node_hash(a, b) == node_hash(b, a) == keccak256(a + b)


def test_entries_sequence_behaves_like_a_list() -> None:
    tree = build_payout_tree(round_id=1, payouts=random_payouts(random.Random(4), 6))
    entries = tree.entries
    assert len(entries) == 6
    assert [e.index for e in entries] == list(range(6))
    assert entries[-1] == entries[5]
    assert [e.index for e in entries[1:4]] == [1, 2, 3]
    with pytest.raises(IndexError):
        entries[6]
    with pytest.raises(SettlementError):
        tree.proof(6)


# --- refused input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payouts",
    [
        {},
        {"0x" + "01" * 20: 0},
        {"0x" + "01" * 20: -1},
        {"0x" + "01" * 20: UINT256_MAX + 1},
        {"0x" + "01" * 20: 1.0},
        {"0x" + "01" * 20: True},
        {"0x" + "ab" * 20: 1, "0x" + "AB" * 20: 2},  # the same address twice
        {"0x" + "01" * 19: 1},  # 19 bytes
        {"0x" + "zz" * 20: 1},
        {"0x" + "01" * 19 + " 1": 1},
        {"0X" + "01" * 20: 1},
        {"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD": 1},  # EIP-55 example, one letter wrong
    ],
)
def test_build_refuses_bad_payouts(payouts: dict[str, Any]) -> None:
    with pytest.raises(SettlementError):
        build_payout_tree(round_id=1, payouts=payouts)


def test_build_accepts_valid_checksum_and_refuses_bad_round() -> None:
    good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's own example
    assert build_payout_tree(round_id=0, payouts={good: 1}).entries[0].account == good
    with pytest.raises(SettlementError):
        build_payout_tree(round_id=-1, payouts={good: 1})
    with pytest.raises(SettlementError):
        build_payout_tree(round_id=UINT256_MAX + 1, payouts={good: 1})
