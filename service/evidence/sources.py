"""The operator's log database as an audit source, and the log export file it writes.

Operator-side: the audits (:mod:`service.audit`) never open the operator's database; an
auditor reads the public API (:class:`service.audit.sources.ApiSource`) or an export
file. :class:`SqlLogSource` implements the same :class:`~service.audit.sources.LogSource`
interface straight from the SQL tiles and ``log_entries``, for the operator's own checks
(``tally audit log --db``, ``tally audit settlement --db``, the demo) and for an auditor
given read access. :func:`write_log_export` writes what ``tally log export`` hands out.
Both carry each entry's salt (T15: a commitment leaf is rebuilt from the entry and its
salt, :func:`service.evidence.commitment.leaf_data_for`; no salt: a legacy leaf).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import Session, col, select

from service.audit.sources import EXPORT_FORMAT
from service.errors import LogUnavailable, NotFound
from service.evidence.models import AnchorRow, EntryCommitment, LogEntry
from service.evidence.tiles import EVIDENCE_LOG_ID, MerkleLog, SqlTileStorage

__all__ = ["SqlLogSource", "open_log_engine", "write_log_export"]

T = TypeVar("T")


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


class SqlLogSource:
    """The log straight from its SQL tiles and entries (read-only; one transaction per
    call, entries streamed). ``owned``: :meth:`close` disposes of the engine."""

    def __init__(
        self, engine: Engine, *, log_id: int = EVIDENCE_LOG_ID, owned: bool = False
    ) -> None:
        self._engine = engine
        self._log_id = log_id
        self._owned = owned

    @classmethod
    def from_url(cls, url: str, *, log_id: int = EVIDENCE_LOG_ID) -> SqlLogSource:
        """A source on its own engine (closed by :meth:`close` or ``with``)."""
        return cls(open_log_engine(url), log_id=log_id, owned=True)

    def close(self) -> None:
        if self._owned:
            self._engine.dispose()

    def __enter__(self) -> SqlLogSource:
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

    def entries(self, *, size: int) -> Iterator[tuple[int, bytes]]:
        for index, data, _ in self.leaves(size=size):
            yield index, data

    def leaves(self, *, size: int) -> Iterator[tuple[int, bytes, bytes | None]]:
        """``(leaf index, canonical bytes, salt or None)`` below ``size``, in leaf order
        (:data:`service.audit.sources.Leaf`)."""
        leaf = col(LogEntry.leaf_index)
        try:
            with Session(self._engine) as session:
                rows = session.exec(
                    select(  # type: ignore[call-overload]
                        LogEntry.leaf_index, LogEntry.data, EntryCommitment.salt
                    )
                    .outerjoin(EntryCommitment, col(EntryCommitment.leaf_index) == leaf)
                    .where(leaf < size)
                    .order_by(leaf)
                    .execution_options(yield_per=10_000)
                )
                for index, data, salt in rows:
                    yield int(index), bytes(data), None if salt is None else bytes(salt)
        except SQLAlchemyError as err:
            raise LogUnavailable(
                f"cannot read the log from {self.describe()}: {type(err).__name__}"
            ) from None

    def terms_document(self, terms_hash: str) -> str | None:
        """A usage-terms document by SHA-256 from the catalog (T11: narrowed terms are not
        log entries; :class:`service.audit.terms.TermsAudit` checks the hash)."""
        from service.catalog.index import terms_document

        try:
            with Session(self._engine) as session:
                return terms_document(session=session, terms_hash=terms_hash)
        except SQLAlchemyError:
            return None


def write_log_export(*, engine: Engine, seq: int, out: Path) -> dict[str, Any]:
    """Write leaves ``0 .. tree_size(seq) - 1`` of the operator's log to ``out``
    (format :data:`~service.audit.sources.EXPORT_FORMAT`).

    ``seq`` is an anchored checkpoint recorded in the database (:class:`NotFound` if not).
    Returns the header written.
    """
    with Session(engine) as session:
        anchor = session.get(AnchorRow, seq)
        if anchor is None:
            raise NotFound(f"checkpoint {seq} is not recorded in this database")
        header = {
            "format": EXPORT_FORMAT,
            "seq": anchor.seq,
            "tree_size": anchor.tree_size,
            "root": anchor.root,
            "chain_id": anchor.chain_id,
            "ledger": anchor.contract,
        }
        leaf = col(LogEntry.leaf_index)
        rows = session.exec(
            select(  # type: ignore[call-overload]
                LogEntry.leaf_index, LogEntry.entry_id, LogEntry.data, EntryCommitment.salt
            )
            .outerjoin(EntryCommitment, col(EntryCommitment.leaf_index) == leaf)
            .where(leaf < anchor.tree_size)
            .order_by(leaf)
            .execution_options(yield_per=10_000)
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(header) + "\n")
            for index, eid, data, salt in rows:
                line = {
                    "leaf_index": index,
                    "entry_id": eid,
                    "data": bytes(data).hex(),
                    "salt": None if salt is None else bytes(salt).hex(),
                }
                fh.write(json.dumps(line) + "\n")
    return header
