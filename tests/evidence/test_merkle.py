"""service/evidence/merkle.py against published RFC 6962/9162 vectors and the RFC itself.

Vectors: transparency-dev/merkle (the Go library Trillian and Sigstore use), files
``testonly/constants.go`` (leaf inputs, node hashes, roots by size), ``proof/verify_test.go``
(inclusion and consistency proofs, and the ways to corrupt them) and ``proof/proof_test.go``
(which tree nodes each proof is made of). The hex below is copied from those files; the
``ref_*`` functions are the recursive definitions of RFC 9162 section 2.1, written out here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.evidence.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    consistency_ranges,
    hash_level,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)


def h(hex_: str) -> bytes:
    return bytes.fromhex(hex_)


# --- published vectors (transparency-dev/merkle) ---------------------------------------

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

# NodeHashes(): [tree level][index] of every complete subtree of the 8-leaf tree.
NODE_HASHES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

# RootHashes(): root by tree size 0..8.
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# inclusionProofs: (leaf index, 0-based here; the Go table is 1-based), tree size, proof.
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# consistencyProofs: old size, new size, proof.
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")
LEAVES = NODE_HASHES[0]  # the published leaf hashes of LEAF_INPUTS


# --- RFC 9162 section 2.1, written out recursively --------------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """Largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over raw entries, straight from section 2.1.1."""
    n = len(entries)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + entries[0])
    k = _k(n)
    return _sha(b"\x01" + ref_mth(entries[:k]) + ref_mth(entries[k:]))


def ref_path(m: int, entries: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]), section 2.1.3.1."""
    n = len(entries)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, entries[:k]), ref_mth(entries[k:])]
    return [*ref_path(m - k, entries[k:]), ref_mth(entries[:k])]


def ref_subproof(m: int, entries: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), section 2.1.4.1."""
    n = len(entries)
    if m == n:
        return [] if b else [ref_mth(entries)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, entries[:k], b), ref_mth(entries[k:])]
    return [*ref_subproof(m - k, entries[k:], False), ref_mth(entries[:k])]


def ref_proof(m: int, entries: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) for 0 < m <= n; the empty proof for m == 0."""
    return [] if m == 0 else ref_subproof(m, entries, True)


# --- hashing ------------------------------------------------------------------------------


def test_leaf_hash_matches_published_vectors() -> None:
    assert [leaf_hash(d) for d in LEAF_INPUTS] == NODE_HASHES[0]


def test_node_hash_matches_published_vectors() -> None:
    for level in range(3):
        below, above = NODE_HASHES[level], NODE_HASHES[level + 1]
        assert [node_hash(below[2 * i], below[2 * i + 1]) for i in range(len(above))] == above


def test_hash_prefixes_are_rfc_domain_separation() -> None:
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    assert node_hash(b"L" * 32, b"R" * 32) == _sha(b"\x01" + b"L" * 32 + b"R" * 32)
    assert _sha(b"") == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_root_matches_published_vector(size: int) -> None:
    assert root_from_leaf_hashes(LEAVES[:size]) == ROOTS[size]


def test_root_refuses_hashes_of_the_wrong_size() -> None:
    with pytest.raises(ValueError):
        root_from_leaf_hashes([LEAVES[0], LEAVES[1][:31]])
    with pytest.raises(ValueError):  # lengths that add up to 64 are still refused
        root_from_leaf_hashes([LEAVES[0][:31], LEAVES[1] + b"x"])
    with pytest.raises(TypeError):
        root_from_leaf_hashes(["00" * 32])  # type: ignore[list-item]


def test_hash_level_refuses_an_odd_count() -> None:
    with pytest.raises(ValueError):
        hash_level(b"\x00" * 96)


# --- proofs against the vectors ----------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_proof_matches_published_vector(
    index: int, size: int, proof: list[bytes]
) -> None:
    assert inclusion_proof(LEAVES[:size], index) == proof
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_consistency_proof_matches_published_vector(old: int, new: int, proof: list[bytes]) -> None:
    assert consistency_proof(LEAVES[:new], old) == proof
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def _layout(
    *nodes: tuple[int, int], rehash: tuple[int, int] | None = None
) -> list[tuple[int, int]]:
    """proof_test.go's notation -> leaf ranges: node id(level, index) covers leaves
    [index << level, (index + 1) << level); nodes[begin:end] of a rehash are hashed
    together into one proof element (their union)."""
    spans = [(i << lv, (i + 1) << lv) for lv, i in nodes]
    if rehash is None:
        return spans
    begin, end = rehash
    group = spans[begin:end]
    merged = (min(a for a, _ in group), max(b for _, b in group))
    return [*spans[:begin], merged, *spans[end:]]


# TestInclusion of proof/proof_test.go: (size, index, nodes, rehash).
INCLUSION_LAYOUTS = [
    (1, 0, [], None),
    (2, 0, [(0, 1)], None),
    (2, 1, [(0, 0)], None),
    (3, 1, [(0, 0), (0, 2)], None),
    (7, 0, [(0, 1), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (7, 1, [(0, 0), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (7, 2, [(0, 3), (1, 0), (0, 6), (1, 2)], (2, 4)),
    (7, 3, [(0, 2), (1, 0), (0, 6), (1, 2)], (2, 4)),
    (7, 4, [(0, 5), (0, 6), (2, 0)], None),
    (7, 5, [(0, 4), (0, 6), (2, 0)], None),
    (7, 6, [(1, 2), (2, 0)], None),
    (4, 2, [(0, 3), (1, 0)], None),
    (5, 3, [(0, 2), (1, 0), (0, 4)], None),
    (6, 3, [(0, 2), (1, 0), (1, 2)], None),
    (6, 4, [(0, 5), (2, 0)], None),
    (15, 10, [(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)], (2, 4)),
    (31, 24, [(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)], (2, 4)),
    (95, 81, [(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)], (3, 6)),
]

# TestConsistency of proof/proof_test.go: (old, new, nodes, rehash).
CONSISTENCY_LAYOUTS = [
    (1, 2, [(0, 1)], None),
    (1, 4, [(0, 1), (1, 1)], None),
    (1, 6, [(0, 1), (1, 1), (1, 2)], None),
    (2, 3, [(0, 2)], None),
    (2, 8, [(1, 1), (2, 1)], None),
    (3, 7, [(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)], (3, 5)),
    (4, 7, [(0, 6), (1, 2)], (0, 2)),
    (5, 7, [(0, 4), (0, 5), (0, 6), (2, 0)], None),
    (6, 7, [(1, 2), (0, 6), (2, 0)], None),
    (7, 8, [(0, 6), (0, 7), (1, 2), (2, 0)], None),
    (1, 1, [], None),
    (5, 5, [], None),
    (8, 8, [], None),
    (2, 4, [(1, 1)], None),
    (3, 5, [(0, 2), (0, 3), (1, 0), (0, 4)], None),
    (3, 6, [(0, 2), (0, 3), (1, 0), (1, 2)], None),
    (4, 6, [(1, 2)], None),
    (1, 7, [(0, 1), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (10, 15, [(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)], (2, 4)),
    (24, 31, [(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)], (1, 4)),
    (
        81,
        95,
        [(0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)],
        (4, 7),
    ),
]


@pytest.mark.parametrize(("size", "index", "nodes", "rehash"), INCLUSION_LAYOUTS)
def test_inclusion_layout_matches_published_node_ids(
    size: int, index: int, nodes: list[tuple[int, int]], rehash: tuple[int, int] | None
) -> None:
    assert inclusion_ranges(index, size) == _layout(*nodes, rehash=rehash)


@pytest.mark.parametrize(("old", "new", "nodes", "rehash"), CONSISTENCY_LAYOUTS)
def test_consistency_layout_matches_published_node_ids(
    old: int, new: int, nodes: list[tuple[int, int]], rehash: tuple[int, int] | None
) -> None:
    assert consistency_ranges(old, new) == _layout(*nodes, rehash=rehash)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (3, 0), (8, 7), (-1, 3)])
def test_inclusion_proof_of_a_leaf_outside_the_tree_raises(index: int, size: int) -> None:
    with pytest.raises(ValueError):
        inclusion_ranges(index, size)
    with pytest.raises(ValueError):
        inclusion_proof([SOME_HASH] * size, index)


@pytest.mark.parametrize(("old", "new"), [(5, 0), (9, 8), (-1, 3)])
def test_consistency_proof_of_shrinking_sizes_raises(old: int, new: int) -> None:
    with pytest.raises(ValueError):
        consistency_ranges(old, new)
    with pytest.raises(ValueError):
        consistency_proof([SOME_HASH] * max(new, 0), old)


# --- verifiers refuse what verify_test.go's corruptors produce ---------------------------


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ bit]) + out[i][1:]
    return out


def _inclusion_probes(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    probes = [
        ("index - 1", index - 1, size, proof, root, leaf),
        ("index + 1", index + 1, size, proof, root, leaf),
        ("index ^ 2", index ^ 2, size, proof, root, leaf),
        ("size * 2", index, size * 2, proof, root, leaf),
        ("size // 2", index, size // 2, proof, root, leaf),
        ("wrong leaf", index, size, proof, root, b"WrongLeaf"),
        ("empty root", index, size, proof, EMPTY_ROOT, leaf),
        ("random root", index, size, proof, SOME_HASH, leaf),
        ("trailing garbage", index, size, [*proof, b""], root, leaf),
        ("trailing root", index, size, [*proof, root], root, leaf),
        ("preceding garbage", index, size, [b"", *proof], root, leaf),
        ("preceding root", index, size, [root, *proof], root, leaf),
    ]
    probes += [
        (f"proof[{i}] bit 3", index, size, _flip(proof, i, 8), root, leaf)
        for i in range(len(proof))
    ]
    if proof:
        probes.append(("removed component", index, size, proof[:-1], root, leaf))
    if len(proof) > 1:
        probes.append(
            ("inserted component", index, size, [proof[0], SOME_HASH, *proof[1:]], root, leaf)
        )
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_verify_inclusion_refuses_corrupted_vectors(
    index: int, size: int, proof: list[bytes]
) -> None:
    probes = _inclusion_probes(index, size, proof, ROOTS[size], LEAVES[index])
    wrongly_accepted = [desc for desc, i, n, p, r, lf in probes if verify_inclusion(lf, i, n, p, r)]
    assert wrongly_accepted == []


def test_verify_inclusion_single_entry_tree() -> None:
    one = leaf_hash(b"data")
    assert verify_inclusion(one, 0, 1, [], one)  # root of a 1-leaf tree is its leaf hash
    assert not verify_inclusion(b"", 0, 1, [], one)
    assert not verify_inclusion(one, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], b"")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_verify_inclusion_refuses_mismatched_empty_proofs(index: int, size: int) -> None:
    assert not verify_inclusion(SOME_HASH, index, size, [], b"")
    assert not verify_inclusion(b"", index, size, [], EMPTY_ROOT)
    assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


def _consistency_probes(
    old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes]
) -> list[tuple[str, int, int, bytes, bytes, list[bytes]]]:
    probes = [
        ("old - 1", old - 1, new, r1, r2, proof),
        ("old + 1", old + 1, new, r1, r2, proof),
        ("old ^ 2", old ^ 2, new, r1, r2, proof),
        ("new * 2", old, new * 2, r1, r2, proof),
        ("new // 2", old, new // 2, r1, r2, proof),
        ("wrong old root", old, new, b"WrongRoot", r2, proof),
        ("wrong new root", old, new, r1, b"WrongRoot", proof),
        ("swapped roots", old, new, r2, r1, proof),
        ("empty proof", old, new, r1, r2, []),
        ("trailing garbage", old, new, r1, r2, [*proof, b""]),
        ("trailing old root", old, new, r1, r2, [*proof, r1]),
        ("trailing new root", old, new, r1, r2, [*proof, r2]),
        ("preceding garbage", old, new, r1, r2, [b"", *proof]),
        ("preceding old root", old, new, r1, r2, [r1, *proof]),
        ("preceding new root", old, new, r1, r2, [r2, *proof]),
        ("preceding proof[0]", old, new, r1, r2, [proof[0], *proof]),
        ("truncated", old, new, r1, r2, proof[:-1]),
    ]
    probes += [
        (f"proof[{i}] bit 4", old, new, r1, r2, _flip(proof, i, 16)) for i in range(len(proof))
    ]
    return probes


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY_VECTORS if v[2]])
def test_verify_consistency_refuses_corrupted_vectors(
    old: int, new: int, proof: list[bytes]
) -> None:
    probes = _consistency_probes(old, new, ROOTS[old], ROOTS[new], proof)
    wrongly_accepted = [
        desc for desc, m, n, r1, r2, p in probes if verify_consistency(m, n, r1, r2, p)
    ]
    assert wrongly_accepted == []


# TestVerifyConsistency's table with 32-byte stand-ins for its "don't care" roots. One
# deliberate difference: an empty old tree must have the empty root here (Go accepts any).
R1, R2, E = _sha(b"don't care 1"), _sha(b"don't care 2"), EMPTY_ROOT


@pytest.mark.parametrize(
    ("old", "new", "r1", "r2", "proof", "ok"),
    [
        (0, 0, R1, R2, [], False),
        (1, 1, R1, R2, [], False),
        (0, 0, R1, R1, [], True),
        (0, 1, E, R2, [], True),
        (0, 1, R1, R2, [], False),  # stricter than Go: size 0 has exactly one root
        (1, 1, R2, R2, [], True),
        (1, 0, R1, R2, [], False),
        (2, 1, R1, R2, [], False),
        (1, 2, R1, R2, [], False),
        (0, 0, E, R2, [], False),
        (1, 1, E, R2, [], False),
        (0, 0, E, E, [E], False),
        (0, 1, E, E, [E], False),
        (1, 1, E, E, [E], False),
        (-1, 3, R1, R2, [], False),
    ],
)
def test_verify_consistency_edge_cases(
    old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes], ok: bool
) -> None:
    assert verify_consistency(old, new, r1, r2, proof) is ok


def test_verifiers_raise_only_on_wrong_argument_types() -> None:
    with pytest.raises(TypeError):
        verify_inclusion(LEAVES[0], "0", 1, [], ROOTS[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_consistency(1.0, 2, ROOTS[1], ROOTS[2], [])  # type: ignore[arg-type]
    assert not verify_inclusion(LEAVES[0], 0, 1, ["00" * 32], ROOTS[1])  # type: ignore[list-item]
    assert not verify_inclusion("00" * 32, 0, 1, [], ROOTS[1])  # type: ignore[arg-type]


# --- properties against the RFC definitions ----------------------------------------------

# Distinct entries: with repeated entries a proof can honestly verify at another index.
entry_lists = st.lists(st.binary(max_size=6), min_size=1, max_size=140, unique=True)
PROPS = settings(max_examples=120, deadline=None)


@PROPS
@given(entries=st.lists(st.binary(max_size=6), max_size=140))
def test_root_equals_recursive_definition(entries: list[bytes]) -> None:
    assert root_from_leaf_hashes([leaf_hash(e) for e in entries]) == ref_mth(entries)


@PROPS
@given(entries=entry_lists, data=st.data())
def test_inclusion_proof_equals_definition_and_verifies(
    entries: list[bytes], data: st.DataObject
) -> None:
    n = len(entries)
    index = data.draw(st.integers(0, n - 1), label="index")
    leaves = [leaf_hash(e) for e in entries]
    root = ref_mth(entries)
    proof = inclusion_proof(leaves, index)
    assert proof == ref_path(index, entries)
    assert verify_inclusion(leaves[index], index, n, proof, root)


@PROPS
@given(entries=entry_lists, data=st.data())
def test_tampered_inclusion_proofs_fail(entries: list[bytes], data: st.DataObject) -> None:
    n = len(entries)
    index = data.draw(st.integers(0, n - 1), label="index")
    leaves = [leaf_hash(e) for e in entries]
    root = ref_mth(entries)
    proof = ref_path(index, entries)

    # one flipped bit anywhere: a proof element, the leaf hash or the root
    target = data.draw(st.integers(0, len(proof) + 1), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    flip = bytes(31 - bit // 8) + bytes([1 << bit % 8]) + bytes(bit // 8)
    mutated = [bytes(x ^ y for x, y in zip(p, flip, strict=True)) for p in proof]
    leaf, r, p = leaves[index], root, list(proof)
    if target < len(proof):
        p[target] = mutated[target]
    elif target == len(proof):
        leaf = bytes(x ^ y for x, y in zip(leaf, flip, strict=True))
    else:
        r = bytes(x ^ y for x, y in zip(r, flip, strict=True))
    assert not verify_inclusion(leaf, index, n, p, r)

    # any other index, in or out of the tree
    other = data.draw(st.integers(-2, n + 2).filter(lambda i: i != index), label="other")
    assert not verify_inclusion(leaves[index], other, n, proof, root)

    # any tree size whose audit path for this leaf has another length (per the RFC)
    size = data.draw(st.integers(0, 2 * n + 2).filter(lambda s: s != n), label="size")
    if size <= index or len(ref_path(index, entries[:1] * size)) != len(proof):
        assert not verify_inclusion(leaves[index], index, size, proof, root)
    assert not verify_inclusion(leaves[index], index, n * 2, proof, root)

    # truncated or extended
    if proof:
        assert not verify_inclusion(leaves[index], index, n, proof[:-1], root)
        assert not verify_inclusion(leaves[index], index, n, proof[1:], root)
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    assert not verify_inclusion(leaves[index], index, n, [*proof, extra], root)
    assert not verify_inclusion(leaves[index], index, n, [extra, *proof], root)


@PROPS
@given(entries=entry_lists, data=st.data())
def test_consistency_proof_equals_definition_and_verifies(
    entries: list[bytes], data: st.DataObject
) -> None:
    n = len(entries)
    old = data.draw(st.integers(0, n), label="old")
    leaves = [leaf_hash(e) for e in entries]
    proof = consistency_proof(leaves, old)
    assert proof == ref_proof(old, entries)
    assert verify_consistency(old, n, ref_mth(entries[:old]), ref_mth(entries), proof)


@PROPS
@given(entries=entry_lists.filter(lambda e: len(e) > 1), data=st.data())
def test_tampered_consistency_proofs_fail(entries: list[bytes], data: st.DataObject) -> None:
    n = len(entries)
    old = data.draw(st.integers(1, n - 1), label="old")
    r1, r2 = ref_mth(entries[:old]), ref_mth(entries)
    proof = ref_proof(old, entries)
    assert verify_consistency(old, n, r1, r2, proof)

    target = data.draw(st.integers(0, len(proof) + 1), label="target")
    byte = data.draw(st.integers(0, 31), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")

    def flipped(x: bytes) -> bytes:
        return x[:byte] + bytes([x[byte] ^ (1 << bit)]) + x[byte + 1 :]

    p, a, b = list(proof), r1, r2
    if target < len(proof):
        p[target] = flipped(p[target])
    elif target == len(proof):
        a = flipped(a)
    else:
        b = flipped(b)
    assert not verify_consistency(old, n, a, b, p)

    other_old = data.draw(st.integers(-1, n + 1).filter(lambda m: m != old), label="other_old")
    assert not verify_consistency(other_old, n, r1, r2, proof)
    other_new = data.draw(st.integers(0, 2 * n + 2).filter(lambda m: m != n), label="other_new")
    if other_new < old or len(ref_proof(old, entries[:1] * other_new)) != len(proof):
        assert not verify_consistency(old, other_new, r1, r2, proof)

    assert not verify_consistency(old, n, r1, r2, proof[:-1])
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    assert not verify_consistency(old, n, r1, r2, [*proof, extra])
    assert not verify_consistency(old, n, r1, r2, [extra, *proof])
    assert not verify_consistency(old, n, r2, r1, proof)
