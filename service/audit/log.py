"""Audit the whole log: every anchored checkpoint against what the operator's log serves.

The chain is the trusted side: the EvidenceLedger holds every checkpoint ``(size, root)``
the operator ever anchored. The operator's log is the audited side: it must still hold
a tree whose root at each anchored size is the anchored root, and it must prove, with
RFC 9162 consistency proofs that the auditor verifies itself, that each checkpoint
extends the one before and that its current head extends the last checkpoint. A log
that was rewritten, truncated or forked fails at the first checkpoint that covers the
change; that checkpoint is the report's first break.

Checks, in order (``seq`` = the checkpoint's index on chain):

- ``checkpoint <seq> size`` (only when it fails): the anchored root is the log's root at
  another size than the one the checkpoint claims. An RFC 9162 consistency proof does not
  pin the new size (a proof from 4 to 6 leaves also verifies "size 8" with the root of 6,
  :func:`~service.evidence.merkle.consistency_shape`), and the first checkpoint has no
  proof at all, so the EvidenceLedger accepts such a mislabelled checkpoint; only the
  operator can anchor one, and it breaks its own log (entries past the real size can
  never be proven against it). The real size is searched among the sizes the proof
  could have come from, nearest first (at most ``MAX_SIZE_LOOKUPS`` roots are read);
- ``checkpoint <seq> consistency`` (seq >= 1): the log serves a proof from the previous
  checkpoint's size to this one's, and it links the two *anchored* roots;
- ``checkpoint <seq> root``: the log's root at this checkpoint's size is the anchored root;
- ``checkpoint <seq> entries``: the entries the log serves, read once in leaf order
  (:func:`~service.audit.sources.leaves_of`), rebuild the anchored root: their leaf
  hashes (:func:`~service.audit.sources.entry_leaf_hash`: of each entry's commitment
  under its salt, or of its canonical bytes for a legacy leaf; a log may mix both) make
  the tree, kept as a :class:`CompactRange`. The tree checks above only see
  the hashes the log keeps; an operator that rewrote an entry's bytes but kept its tiles
  passes them and fails here, at the first checkpoint covering the rewritten entry.
  Missing, repeated or unreadable entries fail it too (later checkpoints' entry checks
  are then skipped);
- ``checkpoint <seq> decode`` (only when it fails): an entry below this checkpoint's size
  is not canonical TALLY-ENTRY-V1 bytes (the first such entry is named);
- ``terms`` (when the log has receipts under usage terms): every UsageReceipt under an
  AgreementV2 with usage terms, among the
  anchored entries, is re-evaluated against those terms in leaf order
  (:class:`~service.audit.terms.TermsAudit`): a receipt the terms forbid (over quota,
  outside their validity, a purpose they do not permit) was let through by the operator;
- ``head``: the log's current head (size, root) extends the last checkpoint.

The operator's log is reached through a :class:`~service.audit.sources.LogSource`:
:class:`~service.audit.sources.ApiSource` over any Tally API's public ``/v1/log/*``
routes (what an auditor needs), :class:`~service.audit.sources.ExportFileSource`, or
the operator's own database (:class:`service.evidence.sources.SqlLogSource`, for the
operator's checks; this module never opens a database). Nothing the source returns is
trusted: roots are compared with the chain's, proofs are verified here, and an answer
the source cannot give (:class:`~service.errors.TallyError`) is a failed check.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain as chained
from itertools import zip_longest

from web3.contract import Contract

from service.audit.receipt import AuditReport
from service.audit.sources import ConsistencySource, Leaf, LogSource, entry_leaf_hash, leaves_of
from service.audit.terms import TermsAudit
from service.chain.client import Chain
from service.errors import InvalidEntry, TallyError
from service.evidence.anchor import OnChainCheckpoint, read_all_checkpoints
from service.evidence.entries import decode_entry, entry_id
from service.evidence.merkle import (
    EMPTY_ROOT,
    consistency_shape,
    node_hash,
    verify_consistency,
)

__all__ = ["CompactRange", "audit_log"]


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


class CompactRange:
    """The RFC 9162 root of a growing list of leaves in O(log n) memory: the roots of the
    perfect subtrees the leaves so far split into, largest (leftmost) first."""

    def __init__(self) -> None:
        self.size = 0
        self._nodes: list[tuple[int, bytes]] = []  # (leaves below, subtree root)

    def append(self, leaf: bytes) -> None:
        """Add the leaf hash ``leaf`` at index :attr:`size`."""
        width, node = 1, leaf
        while self._nodes and self._nodes[-1][0] == width:
            left = self._nodes.pop()[1]
            width, node = 2 * width, node_hash(left, node)
        self._nodes.append((width, node))
        self.size += 1

    def root(self) -> bytes:
        """The root of the leaves appended so far (the left subtree of a tree is its
        largest perfect one, so the root folds the subtrees from the right)."""
        if not self._nodes:
            return EMPTY_ROOT
        node = self._nodes[-1][1]
        for _, left in reversed(self._nodes[:-1]):
            node = node_hash(left, node)
        return node


class _EntryWalk:
    """The log's entries, read once in leaf order, rebuilding the tree as they come: the
    root at each checkpoint size is compared with the anchored root."""

    def __init__(self, source: LogSource, size: int) -> None:
        self._source = source
        self._size = size
        self._entries: Iterator[Leaf] | None = None
        self._tree = CompactRange()
        self.broken: str | None = None  # why the entries cannot be read any further
        self.terms = TermsAudit(documents=getattr(source, "terms_document", None))  # T11

    def advance(self, size: int) -> tuple[bytes | None, str | None]:
        """Read up to leaf ``size``: (the root of the first ``size`` entries, or None
        when they cannot all be read; the first entry among them that does not decode)."""
        undecodable = None
        if self.broken is not None:
            return None, undecodable
        try:
            if self._entries is None:
                self._entries = iter(leaves_of(self._source, size=self._size))
            while self._tree.size < size:
                item = next(self._entries, None)
                if item is None:
                    self.broken = (
                        f"{self._source.describe()} serves {self._tree.size} entries: "
                        f"leaf {self._tree.size} is missing"
                    )
                    return None, undecodable
                index, data, salt = item
                if index != self._tree.size:
                    self.broken = (
                        f"{self._source.describe()} gives leaf {index} where leaf "
                        f"{self._tree.size} should be (missing, repeated or out of order)"
                    )
                    return None, undecodable
                if undecodable is None:
                    undecodable = _undecodable(index, data)
                self._tree.append(entry_leaf_hash(data, salt))
                self.terms.feed(index, data)
        except TallyError as err:
            self.broken = f"cannot read the entries: {err.message}"
            return None, undecodable
        return self._tree.root(), undecodable


def _undecodable(index: int, data: bytes) -> str | None:
    try:
        decode_entry(data)
    except (InvalidEntry, ValueError) as err:
        message = err.message if isinstance(err, InvalidEntry) else str(err)
        return f"leaf {index} ({_hex(entry_id(data))}): {message}"
    return None


def _check_entries(
    report: AuditReport, walk: _EntryWalk, cp: OnChainCheckpoint, prev_size: int
) -> None:
    """``checkpoint <seq> entries``: the entries the log serves rebuild the anchored root
    (and ``checkpoint <seq> decode`` when one of them is not a canonical entry)."""
    name = f"checkpoint {cp.seq} entries"
    if walk.broken is not None:
        report.add(name, None, f"skipped: {walk.broken}", seq=cp.seq)
        return
    root, undecodable = walk.advance(cp.tree_size)
    if root is None:
        report.add(name, False, f"checkpoint {cp.seq}: {walk.broken}", seq=cp.seq)
    elif root == cp.root:
        report.add(
            name,
            True,
            f"the {cp.tree_size} entries rebuild the anchored root {_hex(cp.root)}",
            seq=cp.seq,
        )
    else:
        report.add(
            name,
            False,
            f"checkpoint {cp.seq} (size {cp.tree_size}): the entries the log serves give root "
            f"{_hex(root)}, not the anchored {_hex(cp.root)}: an entry among leaves "
            f"{prev_size} .. {cp.tree_size - 1} was rewritten",
            seq=cp.seq,
        )
    if undecodable is not None:
        report.add(
            f"checkpoint {cp.seq} decode",
            False,
            f"not a canonical entry: {undecodable}",
            seq=cp.seq,
        )


MAX_SIZE_LOOKUPS = 1024  # roots read when looking for a mislabelled checkpoint's real size
MAX_SIZE_SCAN = 1 << 20  # sizes whose proof shape is compared in that search


def _candidate_sizes(prev_size: int, size: int, served_size: int) -> Iterator[int]:
    """Sizes ``m != size`` a checkpoint claiming ``size`` could really have the root of,
    nearest first: every size the log holds for the first checkpoint (no proof), else
    those whose consistency proof from ``prev_size`` has the shape of one to ``size``."""
    below = range(min(size - 1, served_size), prev_size, -1)
    above = range(size + 1, served_size + 1)
    nearest = (m for m in chained.from_iterable(zip_longest(below, above)) if m is not None)
    shape = consistency_shape(prev_size, size) if prev_size else None
    for scanned, m in enumerate(nearest):
        if scanned >= MAX_SIZE_SCAN:
            return
        if shape is None or consistency_shape(prev_size, m) == shape:
            yield m


def _check_size(
    report: AuditReport,
    proofs: ConsistencySource,
    cp: OnChainCheckpoint,
    prev_size: int,
    served_size: int,
) -> None:
    """Add a failed ``checkpoint <seq> size`` when the anchored root is the log's root at
    another size (nothing when the root matches or no such size is found)."""
    try:
        if cp.tree_size <= served_size and proofs.root(cp.tree_size) == cp.root:
            return
        for lookups, m in enumerate(_candidate_sizes(prev_size, cp.tree_size, served_size)):
            if lookups >= MAX_SIZE_LOOKUPS:
                return
            if proofs.root(m) == cp.root:
                break
        else:
            return
    except TallyError:  # the root check reports what the log cannot serve
        return
    beyond = f" (the log has {served_size})" if cp.tree_size > served_size else ""
    why = (
        "; the ledger took it because no proof comes with a first checkpoint"
        if not prev_size
        else f"; the consistency proof from size {prev_size} cannot tell {m} from {cp.tree_size}"
    )
    report.add(
        f"checkpoint {cp.seq} size",
        False,
        f"checkpoint {cp.seq} claims size {cp.tree_size} but its root is the root of the "
        f"first {m} leaves{beyond}{why}",
        seq=cp.seq,
    )


def _check_root(
    report: AuditReport, proofs: ConsistencySource, cp: OnChainCheckpoint, served_size: int
) -> None:
    name = f"checkpoint {cp.seq} root"
    if cp.tree_size > served_size:
        report.add(
            name,
            False,
            f"checkpoint {cp.seq} claims size {cp.tree_size} beyond the log's entries: the log "
            f"serves only {served_size}",
            seq=cp.seq,
        )
        return
    try:
        served = proofs.root(cp.tree_size)
    except TallyError as err:
        report.add(name, False, f"the log cannot serve its root: {err.message}", seq=cp.seq)
        return
    if served == cp.root:
        report.add(name, True, f"size {cp.tree_size}: root {_hex(cp.root)} as anchored", seq=cp.seq)
    else:
        report.add(
            name,
            False,
            f"checkpoint {cp.seq} (size {cp.tree_size}): the log's root {_hex(served)} "
            f"differs from the anchored root {_hex(cp.root)}",
            seq=cp.seq,
        )


def _check_step(
    report: AuditReport,
    proofs: ConsistencySource,
    name: str,
    old: tuple[int, bytes],
    new: tuple[int, bytes],
    *,
    seq: int | None,
    what: str,
) -> None:
    """Verify that the tree ``new`` extends the tree ``old`` with a proof the log serves."""
    (old_size, old_root), (new_size, new_root) = old, new
    if new_size < old_size:
        report.add(name, False, f"{what}: size {new_size} is below {old_size}", seq=seq)
        return
    try:
        proof = proofs.consistency_proof(old_size, new_size)
    except TallyError as err:
        report.add(name, False, f"{what}: the log cannot serve a proof: {err.message}", seq=seq)
        return
    if verify_consistency(old_size, new_size, old_root, new_root, proof):
        report.add(
            name,
            True,
            f"{what}: size {old_size} -> {new_size} proven with {len(proof)} hash(es)",
            seq=seq,
        )
    else:
        report.add(
            name,
            False,
            f"{what}: the log's proof does not link root {_hex(old_root)} (size {old_size}) "
            f"to root {_hex(new_root)} (size {new_size})",
            seq=seq,
        )


def audit_log(*, chain: Chain, ledger: Contract, proofs: LogSource) -> AuditReport:
    """Check every checkpoint on ``ledger`` against the log (tree and entries) ``proofs``.

    The report's first failure is the first break (earliest checkpoint). An unreachable
    node raises :class:`~service.errors.RpcUnavailable`; a log that cannot be read at
    all raises the source's error (e.g. :class:`~service.errors.LogUnavailable`).
    """
    checkpoints = read_all_checkpoints(chain, ledger)
    report = AuditReport(subject=f"log {proofs.describe()} against {ledger.address}")
    served_size, served_root = proofs.head()  # a log that cannot say its size raises
    if not checkpoints:
        report.add("head", True, f"no checkpoints on chain yet; the log has {served_size} leaves")
        report.summary = "no checkpoints on chain yet: nothing anchored to check"
        return report
    walk = _EntryWalk(proofs, checkpoints[-1].tree_size)
    prev: OnChainCheckpoint | None = None
    for cp in checkpoints:
        _check_size(report, proofs, cp, 0 if prev is None else prev.tree_size, served_size)
        if prev is not None:
            _check_step(
                report,
                proofs,
                f"checkpoint {cp.seq} consistency",
                (prev.tree_size, prev.root),
                (cp.tree_size, cp.root),
                seq=cp.seq,
                what=f"checkpoint {cp.seq} extends checkpoint {prev.seq}",
            )
        _check_root(report, proofs, cp, served_size)
        _check_entries(report, walk, cp, 0 if prev is None else prev.tree_size)
        prev = cp
    if walk.broken is None and walk.terms.applies:  # usage terms re-evaluated (T11)
        report.add("terms", not walk.terms.problems, walk.terms.summary())
    last = checkpoints[-1]
    if served_size < last.tree_size:
        report.add(
            "head",
            False,
            f"the log has {served_size} leaves, fewer than the last checkpoint's {last.tree_size}",
        )
    else:
        _check_step(
            report,
            proofs,
            "head",
            (last.tree_size, last.root),
            (served_size, served_root),
            seq=None,
            what=f"the log's head extends checkpoint {last.seq}",
        )
    report.summary = (
        f"{len(checkpoints)} checkpoint(s) up to size {last.tree_size} on chain "
        f"{chain.chain_id} are consistent with the log (now {served_size} leaves)"
    )
    return report
