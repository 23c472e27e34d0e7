"""RFC 9162 Merkle tree hashes and proofs: pure functions, no I/O.

The tree is the one of RFC 9162 section 2.1 (the same as RFC 6962, Certificate
Transparency, Trillian, Sigstore and the ``EvidenceLedger`` contract):

- leaf hash  ``SHA-256(0x00 || data)``
- node hash  ``SHA-256(0x01 || left || right)``
- ``MTH({}) = SHA-256("")``; for ``n > 1`` leaves the left subtree holds the largest
  power of two ``k < n`` leaves and the right subtree the other ``n - k``.

Proofs are lists of 32-byte hashes in RFC 9162 order (inclusion: from the leaf's
sibling up to the root's child; consistency: as ``SUBPROOF`` in section 2.1.4.1).
The functions here take *leaf hashes*, never raw entries: call :func:`leaf_hash` on
an entry's canonical bytes first.

Besides the seven functions other modules call, :func:`inclusion_ranges` and
:func:`consistency_ranges` give the proof *layout* (which leaf range each proof hash
covers) so a persistent store can fetch exactly those subtree hashes, and
:func:`hash_level` is the tight loop that builds one tree level from the one below.

Security notes for callers (the verifiers check the maths, not the context):

- A verifier returning ``True`` says only that the proof links the given hashes.
  The caller MUST obtain ``root`` / ``new_root`` from a source it trusts (a
  checkpoint on chain), and MUST compute ``leaf_hash`` itself from the entry bytes
  it is checking, never take it from the party that sent the proof.
- Verifiers never raise on malformed proofs or sizes: they return ``False``. They
  raise ``TypeError`` only when an argument has a wrong Python type.
- A consistency proof does not pin ``new_size``: the verifier's steps depend on the
  sizes only through :func:`consistency_shape`, so a proof from ``old`` to ``m``
  also verifies the root of ``m`` leaves labelled with any size ``n`` of the same
  shape (4 -> 6 is 4 -> 8; exactly half of all (old, m, n) triples up to 64 leaves).
  Only the anchored sizes of a log that really holds the entries pin them.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_proof",
    "consistency_ranges",
    "consistency_shape",
    "hash_level",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root of the empty tree: ``SHA-256("")`` (RFC 9162, section 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256
_NODE_STATE = hashlib.sha256(_NODE_PREFIX)  # never updated: only copied (hash_level)
_pairs = struct.Struct(f"{2 * HASH_SIZE}s").iter_unpack


def leaf_hash(data: bytes) -> bytes:
    """The leaf hash of ``data``: ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The interior node hash: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def hash_level(level: bytes | memoryview) -> bytes:
    """Hash adjacent pairs of one tree level into the level above.

    ``level`` is ``2p`` hashes laid end to end (``64 * p`` bytes); the result is the
    ``p`` parent hashes laid end to end. Callers carry an odd last node up
    themselves (RFC 9162 trees promote it unchanged).
    """
    if len(level) % (2 * HASH_SIZE):
        raise ValueError("a level to hash must hold an even number of 32-byte hashes")
    # A copy of a state that has absorbed the prefix, then the pair: the same bytes
    # hashed as SHA-256(0x01 || pair), ~20% faster than building ``prefix + pair`` and a
    # new hash object per node (no 65-byte concatenation, no fresh initialisation).
    copy = _NODE_STATE.copy
    out: list[bytes] = []
    append = out.append
    for (pair,) in _pairs(level):
        h = copy()
        h.update(pair)
        append(h.digest())
    return b"".join(out)


def _root_of_buffer(level: bytes | memoryview) -> bytes:
    """MTH of the hashes laid end to end in ``level`` (at least one hash)."""
    count = len(level) // HASH_SIZE
    while count > 1:
        even = count & ~1
        parents = hash_level(level[: even * HASH_SIZE])
        if count & 1:  # the last node has no sibling at this level: promote it
            parents += level[even * HASH_SIZE :]
        level = parents
        count = (count + 1) // 2
    return bytes(level)


def _join_hashes(hashes: Sequence[bytes]) -> bytes:
    """``hashes`` laid end to end, after checking each one is a 32-byte string."""
    joined = b"".join(hashes)  # TypeError for anything that is not bytes-like
    if len(joined) != HASH_SIZE * len(hashes) or any(map(HASH_SIZE.__ne__, map(len, hashes))):
        raise ValueError(f"every hash must be {HASH_SIZE} bytes")
    return joined


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The RFC 9162 Merkle tree hash (root) of a list of leaf hashes.

    ``hashes`` are leaf hashes (:func:`leaf_hash` outputs), 32 bytes each; the empty
    list gives :data:`EMPTY_ROOT`. Raises ``ValueError`` on a hash of the wrong size.
    """
    if len(hashes) == 0:
        return EMPTY_ROOT
    return _root_of_buffer(_join_hashes(hashes))


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges ``[start, end)`` whose tree hashes form the inclusion proof.

    The i-th proof hash of leaf ``index`` in a tree of ``size`` leaves is
    ``MTH(D[start:end])`` for the i-th range, in RFC 9162 order (bottom up). Every
    range starts at a multiple of a power of two at least as large as the range, so
    its hash is a right fold of aligned complete subtrees. Raises ``ValueError``
    unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    top_down: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:  # PATH(m, D[lo:hi]) = PATH(m, one side) : MTH(other side)
        mid = lo + _split(hi - lo)
        if index < mid:
            top_down.append((mid, hi))
            hi = mid
        else:
            top_down.append((lo, mid))
            lo = mid
    top_down.reverse()
    return top_down


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges ``[start, end)`` whose tree hashes form the consistency proof.

    Same convention as :func:`inclusion_ranges`, following ``SUBPROOF`` of RFC 9162
    section 2.1.4.1. Empty when ``old_size`` is 0 or equals ``new_size``. Raises
    ``ValueError`` unless ``0 <= old_size <= new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"cannot prove size {old_size} consistent with size {new_size}")
    if old_size in (0, new_size):
        return []
    top_down: list[tuple[int, int]] = []
    lo, hi, whole = 0, new_size, True  # SUBPROOF(m, D[lo:hi], whole)
    while old_size != hi:
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            top_down.append((mid, hi))
            hi = mid
        else:
            top_down.append((lo, mid))
            lo, whole = mid, False
    if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        top_down.append((lo, hi))
    top_down.reverse()
    return top_down


def _range_hashes(hashes: Sequence[bytes], ranges: list[tuple[int, int]]) -> list[bytes]:
    if not ranges:
        return []
    view = memoryview(_join_hashes(hashes))
    return [_root_of_buffer(view[a * HASH_SIZE : b * HASH_SIZE]) for a, b in ranges]


def inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The RFC 9162 inclusion proof (audit path) of leaf ``index`` in the tree of ``hashes``.

    ``hashes`` are all the tree's leaf hashes. Raises ``ValueError`` unless
    ``0 <= index < len(hashes)``. Costs about ``len(hashes)`` hash operations.
    """
    return _range_hashes(hashes, inclusion_ranges(index, len(hashes)))


def consistency_proof(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The RFC 9162 consistency proof from the first ``old_size`` leaves to all of ``hashes``.

    Empty when ``old_size`` is 0 or ``len(hashes)``. Raises ``ValueError`` unless
    ``0 <= old_size <= len(hashes)``.
    """
    return _range_hashes(hashes, consistency_ranges(old_size, len(hashes)))


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def _check_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be int, not {type(value).__name__}")


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf ``index`` with hash ``leaf_hash`` in the tree ``root``.

    RFC 9162 section 2.1.3.2. Returns ``False`` (never raises) for a wrong-length
    hash, ``index >= tree_size``, a negative number, or a proof of the wrong length.

    The caller MUST compute ``leaf_hash`` itself from the entry bytes (never take it
    from the prover), MUST take ``root`` and ``tree_size`` from a checkpoint it trusts
    (e.g. read from the EvidenceLedger contract), and MUST check that ``index`` is the
    index the entry claims.
    """
    _check_int("index", index)
    _check_int("tree_size", tree_size)
    path = list(proof)
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(map(_is_hash, path))):
        return False
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, bytes(leaf_hash)
    for p in path:
        if sn == 0:  # proof longer than the path to the root
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:  # skip levels where the node was promoted
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree ``new_root`` extends the tree ``old_root``.

    RFC 9162 section 2.1.4.2 for ``0 < old_size < new_size``. Edge cases: equal sizes
    need an empty proof and equal roots; ``old_size == 0`` needs an empty proof and
    ``old_root == SHA-256("")`` (every tree extends the empty one, so ``new_root`` is
    not checked at all then). Returns ``False`` (never raises) for negative or
    shrinking sizes, wrong-length hashes and malformed proofs.

    The caller MUST take both roots from checkpoints it trusts (e.g. the previous and
    the new EvidenceLedger checkpoint), and MUST separately check ``new_root`` when
    ``old_size`` is 0.
    """
    _check_int("old_size", old_size)
    _check_int("new_size", new_size)
    path = list(proof)
    if not (_is_hash(old_root) and _is_hash(new_root) and all(map(_is_hash, path))):
        return False
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if old_size == 0:
        return not path and old_root == EMPTY_ROOT
    if not path:
        return False
    if old_size & (old_size - 1) == 0:  # old tree is a complete subtree: its root starts
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = bytes(path[0])
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def consistency_shape(old_size: int, new_size: int) -> tuple[bool, ...]:
    """The hashing steps the RFC 9162 consistency verifier takes for ``(old, new)``.

    One flag per proof hash after the first (``True``: the hash is combined on the left
    of both roots; ``False``: on the right of the new root only), for
    ``0 < old_size < new_size``; ``()`` otherwise. The verifier reads the sizes only
    through this shape, so a valid proof from ``old`` to ``m`` also verifies
    ``(old, n, old_root, root_m)`` exactly when ``consistency_shape(old, n) ==
    consistency_shape(old, m)`` (and no hash collides).
    """
    _check_int("old_size", old_size)
    _check_int("new_size", new_size)
    if not 0 < old_size < new_size:
        return ()
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    steps: list[bool] = []
    while sn:
        left = bool(fn & 1 or fn == sn)
        steps.append(left)
        if left:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
    return tuple(steps)
