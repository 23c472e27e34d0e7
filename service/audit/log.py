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
- ``head``: the log's current head (size, root) extends the last checkpoint.

The operator's log is reached through a :class:`ConsistencySource`, a three-call
protocol: :class:`SqlConsistencySource` reads the tiles from the operator's database
(an auditor with read access, or the operator checking itself). An HTTP source over the
API implements the same three methods: ``head`` from ``GET /v1/log/checkpoints`` (its
``log.tree_size`` and ``log.root``), ``root(size)`` from the ``root_to`` of
``GET /v1/log/proof/consistency?from=size&to=size`` and ``consistency_proof`` from the
``proof`` of ``GET /v1/log/proof/consistency?from=old&to=new``. Nothing the source
returns is trusted: roots are compared with the chain's and proofs are verified here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain as chained
from itertools import zip_longest
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import Session
from web3.contract import Contract

from service.audit.receipt import AuditReport
from service.chain.client import Chain
from service.errors import LogUnavailable, TallyError
from service.evidence.anchor import OnChainCheckpoint, read_all_checkpoints
from service.evidence.merkle import consistency_shape, verify_consistency
from service.evidence.tiles import EVIDENCE_LOG_ID, MerkleLog, SqlTileStorage

__all__ = ["ConsistencySource", "SqlConsistencySource", "audit_log"]

T = TypeVar("T")


class ConsistencySource(Protocol):
    """The operator's log as an auditor sees it. Every method may raise a
    :class:`~service.errors.TallyError` (the log cannot serve it); nothing is trusted."""

    def describe(self) -> str:
        """Where the log is read from (safe to print: no password)."""
        ...

    def head(self) -> tuple[int, bytes]:
        """The log's current size and root."""
        ...

    def root(self, size: int) -> bytes:
        """The root of the first ``size`` leaves."""
        ...

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """An RFC 9162 consistency proof from size ``old`` to size ``new``."""
        ...


def open_log_engine(url: str) -> Engine:
    """A read engine on an operator's log database. A SQLite file that does not exist
    is :class:`LogUnavailable` (opening it would create an empty log to audit)."""
    from service.db import make_engine

    parsed = make_url(url) if "://" in url else None
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not Path(path).is_file():
            raise LogUnavailable(f"no SQLite database at {path}")
    return make_engine(url, pool=False)


class SqlConsistencySource:
    """Serves the log straight from its SQL tiles (read-only; one transaction per call)."""

    def __init__(self, engine: Engine, *, log_id: int = EVIDENCE_LOG_ID) -> None:
        self._engine = engine
        self._log_id = log_id
        self._owned = False

    @classmethod
    def from_url(cls, url: str, *, log_id: int = EVIDENCE_LOG_ID) -> SqlConsistencySource:
        """A source on its own engine (closed by :meth:`close` or ``with``)."""
        source = cls(open_log_engine(url), log_id=log_id)
        source._owned = True
        return source

    def close(self) -> None:
        if self._owned:
            self._engine.dispose()

    def __enter__(self) -> SqlConsistencySource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def describe(self) -> str:
        try:
            url = make_url(str(self._engine.url)).render_as_string(hide_password=True)
        except ArgumentError:  # pragma: no cover - the engine was built from this URL
            url = "database"
        return f"SQL log {url}" + (f" (log {self._log_id})" if self._log_id else "")

    def _read(self, fn: Callable[[MerkleLog], T]) -> T:
        try:
            with self._engine.connect() as conn:
                return fn(MerkleLog(SqlTileStorage(conn, log_id=self._log_id)))
        except SQLAlchemyError as err:
            raise LogUnavailable(
                f"cannot read the log from {self.describe()}: {type(err).__name__}"
            ) from None

    def check_deployment(self, *, chain_id: int, ledger: str) -> None:
        """Refuse (:class:`~service.errors.LogBoundElsewhere`) a log database that belongs to
        another deployment than the one being audited (read-only check)."""
        from service.evidence.binding import check_log_binding

        with Session(self._engine) as session:
            check_log_binding(session, chain_id=chain_id, ledger=ledger)

    def head(self) -> tuple[int, bytes]:
        state = self._read(lambda log: log.state())
        return state.size, state.root

    def root(self, size: int) -> bytes:
        return self._read(lambda log: log.root(size=size))

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self._read(lambda log: log.consistency_proof(old=old, new=new))


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


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


def audit_log(*, chain: Chain, ledger: Contract, proofs: ConsistencySource) -> AuditReport:
    """Check every checkpoint on ``ledger`` against the log behind ``proofs``.

    The report's first failure is the first break (earliest checkpoint). An unreachable
    node raises :class:`~service.errors.RpcUnavailable`; a log that cannot be read at
    all raises the source's error (e.g. :class:`~service.errors.LogUnavailable`).
    """
    checkpoints = read_all_checkpoints(chain, ledger)
    report = AuditReport(subject=f"log {proofs.describe()} against {ledger.address}")
    served_size, served_root = proofs.head()
    if not checkpoints:
        report.add("head", True, f"no checkpoints on chain yet; the log has {served_size} leaves")
        report.summary = "no checkpoints on chain yet: nothing anchored to check"
        return report
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
        prev = cp
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
