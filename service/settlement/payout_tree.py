"""The payout tree of a settlement round: OpenZeppelin's ``StandardMerkleTree``, rebuilt in Python.

A round pays ``amount`` to ``account`` through ``SettlementVault.claim(roundId, index, account,
amount, proof)``. The vault checks the proof against the round's payout root with OpenZeppelin's
``MerkleProof`` (sorted pairs), so this module must build exactly the tree that
``StandardMerkleTree.of(values, ["uint256", "uint256", "address", "uint256"])`` of npm
``@openzeppelin/merkle-tree`` 1.0.8 builds for the same values:

- value ``(roundId, index, account, amount)``; ``index`` is the payee's position when the
  round's non-zero payouts are sorted by address ascending (lower-case hex); zero payouts are
  left out;
- leaf = ``keccak256(keccak256(abi.encode(roundId, index, account, amount)))`` (the double hash
  keeps a leaf from ever being read as an inner node);
- the leaves are sorted by hash ascending (``sortLeaves`` default) and laid out as a complete
  binary tree in one array: root at 0, children of ``i`` at ``2i + 1`` and ``2i + 2``, the
  ``k``-th smallest leaf at ``len(nodes) - 1 - k``;
- inner node = ``keccak256(min(a, b) || max(a, b))``; a proof lists the siblings from the leaf
  up to (not including) the root.

``scripts/oz_merkle_tree.mjs`` runs OpenZeppelin's own code; the tests require the same root, the
same node array and the same proofs.

Keccak-256 comes from ``safe-pysha3`` (``sha3.keccak_256``, about 5x faster per call) when it is
installed, else from pycryptodome; both compute the same function.
"""

from __future__ import annotations

import importlib
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload

from service.errors import SettlementError

__all__ = [
    "PAYOUT_LEAF_ENCODING",
    "UINT256_MAX",
    "PayoutEntry",
    "PayoutTree",
    "build_payout_tree",
    "checksum_address",
    "keccak256",
    "leaf_hash",
    "node_hash",
    "process_proof",
    "verify_proof",
]

PAYOUT_LEAF_ENCODING: tuple[str, ...] = ("uint256", "uint256", "address", "uint256")
"""The ``leafEncoding`` of the payout tree, as given to ``StandardMerkleTree.of``."""

UINT256_MAX = 2**256 - 1

_ZERO12 = bytes(12)
_HEX = frozenset("0123456789abcdef")


class _KeccakState(Protocol):
    def digest(self) -> bytes: ...


def _load_keccak() -> Callable[[bytes], _KeccakState]:
    try:
        sha3: Any = importlib.import_module("sha3")  # safe-pysha3: C, no Python wrapper
    except ImportError:
        from Crypto.Hash import keccak as _pycryptodome_keccak

        def _new(data: bytes) -> _KeccakState:
            return _pycryptodome_keccak.new(data=data, digest_bits=256)

        return _new
    new: Callable[[bytes], _KeccakState] = sha3.keccak_256
    return new


_keccak_new = _load_keccak()


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's hash, not NIST SHA3-256) of ``data``."""
    return _keccak_new(data).digest()


# --- hashing ------------------------------------------------------------------------------


_M40 = int.from_bytes(b"\x40" * 40, "big")
_M08 = int.from_bytes(b"\x08" * 40, "big")


def checksum_address(raw: bytes) -> str:
    """EIP-55 form of a 20-byte address: hex letter ``i`` upper-cased when nibble ``i`` of
    ``keccak256(lower-case hex)`` is 8 or more.

    Done on all 40 ASCII characters at once as one big integer (eth_utils loops per character,
    about 10x slower; the tests compare the two): in the digest's hex, a character stands for a
    nibble >= 8 exactly when it is a letter (bit 0x40) or "8"/"9" (bit 0x08); in the address's
    hex, clearing bit 0x20 of a letter upper-cases it, and digits have no 0x40 bit to select.
    """
    address = raw.hex().encode("ascii")
    digest = _keccak_new(address).digest().hex()[:40].encode("ascii")
    a = int.from_bytes(address, "big")
    d = int.from_bytes(digest, "big")
    nibble_high = ((d & _M40) >> 1) | ((d & _M08) << 2)  # 0x20 where the digest nibble >= 8
    letters = (a & _M40) >> 1  # 0x20 where the address has a letter
    return "0x" + (a ^ (nibble_high & letters)).to_bytes(40, "big").decode("ascii")


def _address_bytes(account: str) -> bytes:
    """The 20 bytes of an address; a mixed-case address must carry a valid EIP-55 checksum."""
    if not isinstance(account, str) or len(account) != 42 or not account.startswith("0x"):
        raise SettlementError(f"not an address: {account!r}", account=repr(account))
    try:
        raw = bytes.fromhex(account[2:])
    except ValueError:
        raw = b""
    if len(raw) != 20:  # fromhex skips whitespace: a 40-character body with any is short
        raise SettlementError(f"not an address: {account!r}", account=account)
    body = account[2:]
    if body != raw.hex() and body != body.upper():
        checksummed = checksum_address(raw)
        if checksummed != account:
            raise SettlementError(
                f"address has a wrong EIP-55 checksum: {account} (expected {checksummed})",
                account=account,
            )
    return raw


def _check_uint256(name: str, value: int) -> None:
    if type(value) is not int or not 0 <= value <= UINT256_MAX:
        raise SettlementError(f"{name} must be an integer in [0, 2**256): {value!r}")


def leaf_hash(*, round_id: int, index: int, account: str, amount: int) -> bytes:
    """The payout leaf ``keccak256(keccak256(abi.encode(roundId, index, account, amount)))``."""
    _check_uint256("round_id", round_id)
    _check_uint256("index", index)
    _check_uint256("amount", amount)
    raw = _address_bytes(account)
    encoded = (
        round_id.to_bytes(32, "big")
        + index.to_bytes(32, "big")
        + _ZERO12
        + raw
        + amount.to_bytes(32, "big")
    )
    return keccak256(keccak256(encoded))


def node_hash(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's inner node: ``keccak256`` of the two children, smaller first."""
    return keccak256(a + b if a <= b else b + a)


def process_proof(*, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root ``proof`` leads to from ``leaf`` (OpenZeppelin ``MerkleProof.processProof``)."""
    node = leaf
    for sibling in proof:
        node = node_hash(node, sibling)
    return node


def verify_proof(*, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` proves ``leaf`` (a leaf *hash*) under ``root``, as ``MerkleProof.verify``.

    Like the contract, this checks the path only: the caller MUST also check that ``leaf`` is the
    :func:`leaf_hash` of the values it is about to pay, and that ``root`` is the round's root on
    chain. Every element must be 32 bytes; anything else is simply not a valid proof.
    """
    if len(leaf) != 32 or len(root) != 32 or any(len(p) != 32 for p in proof):
        return False
    return process_proof(leaf=leaf, proof=proof) == root


# --- the tree -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayoutEntry:
    """One claimable payout: the arguments of ``SettlementVault.claim`` for it."""

    index: int
    account: str
    """EIP-55 checksummed."""
    amount: int
    leaf: bytes
    proof: tuple[bytes, ...]


class _Entries(Sequence[PayoutEntry]):
    """The tree's entries by index, built on access (a million proofs are not kept in memory)."""

    __slots__ = ("_tree",)

    def __init__(self, tree: PayoutTree) -> None:
        self._tree = tree

    def __len__(self) -> int:
        return len(self._tree)

    @overload
    def __getitem__(self, i: int) -> PayoutEntry: ...

    @overload
    def __getitem__(self, i: slice) -> list[PayoutEntry]: ...

    def __getitem__(self, i: int | slice) -> PayoutEntry | list[PayoutEntry]:
        if isinstance(i, slice):
            return [self._tree.entry(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        return self._tree.entry(i % n)

    def __iter__(self) -> Iterator[PayoutEntry]:
        for j in range(len(self)):
            yield self._tree.entry(j)


class PayoutTree:
    """A built payout tree. Build it with :func:`build_payout_tree`; treat it as immutable.

    ``nodes`` is OpenZeppelin's ``tree`` array (root first); ``tree_index(i)`` is where the leaf of
    payee ``i`` sits in it (OpenZeppelin's ``values[i].treeIndex``).
    """

    __slots__ = ("_accounts", "_amounts", "_leaves", "_nodes", "_sorted_leaves", "round_id")

    def __init__(
        self,
        *,
        round_id: int,
        accounts: list[bytes],
        amounts: list[int],
        nodes: list[bytes],
        leaves: list[bytes],
        sorted_leaves: list[bytes],
    ) -> None:
        self.round_id = round_id
        self._accounts = accounts  # 20-byte addresses, ascending: position = index
        self._amounts = amounts
        self._nodes = nodes
        self._leaves = leaves  # by payee index
        self._sorted_leaves = sorted_leaves  # ascending: the k-th sits at len(nodes) - 1 - k

    def __len__(self) -> int:
        return len(self._accounts)

    def __repr__(self) -> str:
        return f"PayoutTree(round_id={self.round_id}, payees={len(self)}, root=0x{self.root.hex()})"

    @property
    def root(self) -> bytes:
        """The 32-byte payout root that ``propose`` puts on chain."""
        return self._nodes[0]

    @property
    def total(self) -> int:
        """Sum of all payouts: the round's ``total``."""
        return sum(self._amounts)

    @property
    def nodes(self) -> Sequence[bytes]:
        """Every node, in OpenZeppelin's array layout (root at 0, leaves at the end)."""
        return tuple(self._nodes)

    @property
    def entries(self) -> Sequence[PayoutEntry]:
        """The payouts by index (ascending address), each with its leaf and proof."""
        return _Entries(self)

    def _check_index(self, index: int) -> None:
        if type(index) is not int or not 0 <= index < len(self._accounts):
            raise SettlementError(
                f"no payout with index {index!r} in round {self.round_id}",
                index=index,
            )

    def tree_index(self, index: int) -> int:
        """Position of payee ``index``'s leaf in :attr:`nodes`."""
        self._check_index(index)
        k = bisect_left(self._sorted_leaves, self._leaves[index])
        return len(self._nodes) - 1 - k

    def leaf_hash(self, index: int) -> bytes:
        """The leaf of payee ``index``."""
        self._check_index(index)
        return self._leaves[index]

    def proof(self, index: int) -> tuple[bytes, ...]:
        """Siblings from payee ``index``'s leaf up to the root (OpenZeppelin ``getProof``)."""
        i = self.tree_index(index)
        nodes = self._nodes
        proof: list[bytes] = []
        while i > 0:
            proof.append(nodes[i + 1 if i % 2 else i - 1])
            i = (i - 1) // 2
        return tuple(proof)

    def entry(self, index: int) -> PayoutEntry:
        """Payee ``index``'s claim: account (checksummed), amount, leaf and proof."""
        proof = self.proof(index)
        return PayoutEntry(
            index=index,
            account=checksum_address(self._accounts[index]),
            amount=self._amounts[index],
            leaf=self._leaves[index],
            proof=proof,
        )

    def index_of(self, account: str) -> int:
        """The index of ``account``'s payout; :class:`SettlementError` if it has none."""
        raw = _address_bytes(account)
        i = bisect_left(self._accounts, raw)
        if i == len(self._accounts) or self._accounts[i] != raw:
            raise SettlementError(
                f"{account} has no payout in round {self.round_id}", account=account
            )
        return i

    def dump(self) -> dict[str, Any]:
        """OpenZeppelin's ``standard-v1`` JSON form, loadable by ``StandardMerkleTree.load``.

        Integers are decimal strings (JavaScript numbers cannot hold a uint256).
        """
        rid = str(self.round_id)
        return {
            "format": "standard-v1",
            "leafEncoding": list(PAYOUT_LEAF_ENCODING),
            "tree": ["0x" + node.hex() for node in self._nodes],
            "values": [
                {
                    "value": [rid, str(i), checksum_address(acct), str(amt)],
                    "treeIndex": self.tree_index(i),
                }
                for i, (acct, amt) in enumerate(zip(self._accounts, self._amounts, strict=True))
            ],
        }


def build_payout_tree(*, round_id: int, payouts: Mapping[str, int]) -> PayoutTree:
    """Build round ``round_id``'s payout tree from ``{address: amount}``.

    Addresses may be lower-case, upper-case or EIP-55 checksummed (a mixed-case address must
    carry a valid checksum); the same address twice (in any case) is an error. Amounts are
    integers in the token's smallest unit, ``0 <= amount < 2**256``; zero amounts get no leaf.
    At least one amount must be non-zero: OpenZeppelin has no empty tree (a round that pays
    nobody has nothing to propose).

    Raises :class:`SettlementError` on any bad input.
    """
    _check_uint256("round_id", round_id)
    by_account: dict[bytes, int] = {}
    for account, amount in payouts.items():
        if type(amount) is not int:
            raise SettlementError(f"payout of {account} is not an integer: {amount!r}")
        if not 0 <= amount <= UINT256_MAX:
            raise SettlementError(
                f"payout of {account} out of range [0, 2**256): {amount}", account=account
            )
        raw = _address_bytes(account)
        if raw in by_account:
            raise SettlementError(f"address listed twice: 0x{raw.hex()}", account=account)
        by_account[raw] = amount
    # Index rule: ascending address. 20-byte big-endian order = lower-case hex string order.
    accounts = sorted(raw for raw, amount in by_account.items() if amount)
    amounts = [by_account[raw] for raw in accounts]
    n = len(accounts)
    if n == 0:
        raise SettlementError(f"round {round_id} has no non-zero payout: nothing to put in a tree")

    # Leaves: abi.encode of four static words, hashed twice. Hand-rolled: every field is 32 bytes.
    new = _keccak_new
    prefix = round_id.to_bytes(32, "big")
    zero12 = _ZERO12
    leaves = [
        new(
            new(prefix + i.to_bytes(32, "big") + zero12 + raw + amt.to_bytes(32, "big")).digest()
        ).digest()
        for i, (raw, amt) in enumerate(zip(accounts, amounts, strict=True))
    ]

    # Sort leaves by hash (equal-length bytes compare like OpenZeppelin's BigInt compare) and lay
    # them out from the end of the array (2n - 1 nodes): the k-th smallest at 2n - 2 - k.
    sorted_leaves = sorted(leaves)
    nodes: list[bytes] = [b""] * (n - 1)
    nodes.extend(reversed(sorted_leaves))

    # Inner nodes 0 .. n-2, children of i at 2i+1 and 2i+2. One depth at a time, deepest first:
    # depth d holds 2**d - 1 .. 2**(d+1) - 2, and its children are the contiguous run below.
    depth = (n - 1).bit_length() - 1  # depth of node n - 2, the last inner node
    for d in range(depth, -1, -1):
        lo, hi = 2**d - 1, min(2 ** (d + 1) - 2, n - 2)
        left = nodes[2 * lo + 1 : 2 * hi + 2 : 2]
        right = nodes[2 * lo + 2 : 2 * hi + 3 : 2]
        nodes[lo : hi + 1] = [
            new(a + b if a <= b else b + a).digest() for a, b in zip(left, right, strict=True)
        ]

    return PayoutTree(
        round_id=round_id,
        accounts=accounts,
        amounts=amounts,
        nodes=nodes,
        leaves=leaves,
        sorted_leaves=sorted_leaves,
    )
