"""The cursor store and every database write of the indexer.

Each write is one transaction that also moves the cursor, compare-and-set style: the
cursor row is updated only if it still holds the (number, hash) this indexer read, so
a range's rows and the cursor that covers them commit together or not at all, and a
second indexer on the same deployment fails with
:class:`~service.errors.IndexerConflict` instead of doubling anything.

Invariant: no row of the deployment's contracts lies above its cursor block.
:meth:`Store.heal` re-establishes it at start (it can only break if something outside
the indexer wrote rows), :meth:`Store.rollback` keeps it through reorgs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from service.db import table_of
from service.errors import IndexerConflict
from service.indexer import handlers
from service.indexer.decode import Event
from service.indexer.handlers import T_EVENTS, apply_events, upsert
from service.indexer.models import IndexedBlock, IndexerCursor, IndexerReorg
from service.indexer.scanner import Batch
from service.indexer.sql import BulkUpsert, dump_json
from service.indexer.util import gc_paused

T_CURSORS = table_of(IndexerCursor)
T_BLOCKS = table_of(IndexedBlock)
T_REORGS = table_of(IndexerReorg)

KEEP_BLOCKS = 4096  # recorded block hashes kept below the cursor (event blocks are kept anyway)


def deployment_key(addresses: Sequence[str]) -> str:
    """A stable id of a deployment: its sorted contract addresses, hashed."""
    joined = ",".join(sorted(a.lower() for a in addresses))
    return "d" + hashlib.sha256(joined.encode()).hexdigest()[:15]


@dataclass(frozen=True)
class Cursor:
    number: int
    hash: str


@dataclass(frozen=True)
class RollbackResult:
    ancestor: Cursor | None
    depth: int
    events_removed: int
    events_replayed: int
    orphaned: list[tuple[int, str]]


class Store:
    """Database side of one (chain, deployment) mirror."""

    def __init__(
        self,
        engine: Engine,
        *,
        chain_id: int,
        addresses: Sequence[str],
        network: str,
    ) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.addresses = sorted(a.lower() for a in addresses)
        self.key = deployment_key(self.addresses)
        self.network = network

    # --- cursor ---------------------------------------------------------------------------

    def _cursor_where(self) -> Any:
        return and_(T_CURSORS.c.chain_id == self.chain_id, T_CURSORS.c.deployment == self.key)

    def cursor(self) -> Cursor | None:
        with self.engine.connect() as conn:
            return self._read_cursor(conn)

    def _read_cursor(self, conn: Connection) -> Cursor | None:
        row = conn.execute(
            select(T_CURSORS.c.block_number, T_CURSORS.c.block_hash).where(self._cursor_where())
        ).first()
        return None if row is None else Cursor(int(row[0]), str(row[1]))

    def _move_cursor(self, conn: Connection, expected: Cursor | None, new: Cursor | None) -> None:
        """Compare-and-set: ``expected`` -> ``new`` (None: no cursor row)."""
        now = datetime.now(UTC)
        if expected is None:
            if new is None:
                return
            try:  # the first statement of the transaction: its failure aborts all of it
                conn.execute(
                    insert(T_CURSORS).values(
                        chain_id=self.chain_id,
                        deployment=self.key,
                        network=self.network,
                        addresses=self.addresses,
                        block_number=new.number,
                        block_hash=new.hash,
                        updated_at=now,
                    )
                )
            except IntegrityError:
                raise IndexerConflict(
                    "another indexer created this deployment's cursor meanwhile"
                ) from None
            return
        same = and_(
            self._cursor_where(),
            T_CURSORS.c.block_number == expected.number,
            T_CURSORS.c.block_hash == expected.hash,
        )
        if new is None:
            result = conn.execute(delete(T_CURSORS).where(same))
        else:
            result = conn.execute(
                update(T_CURSORS)
                .where(same)
                .values(block_number=new.number, block_hash=new.hash, updated_at=now)
            )
        if result.rowcount != 1:
            raise IndexerConflict("another indexer moved this deployment's cursor meanwhile")

    # --- ranges ---------------------------------------------------------------------------

    def commit(self, batch: Batch, *, expected: Cursor | None) -> int:
        """Write a range's raw rows, derived rows, block hashes and cursor in one
        transaction; returns the number of events handled into derived tables."""
        with gc_paused(), self.engine.begin() as conn:
            self._move_cursor(conn, expected, Cursor(batch.end, batch.end_hash))
            upsert_events(conn, batch.events)
            handled = apply_events(conn, batch.events)
            known = {b.number: b.hash for b in batch.blocks}
            known[batch.end] = batch.end_hash
            upsert(
                conn,
                T_BLOCKS,
                [
                    {
                        "chain_id": self.chain_id,
                        "deployment": self.key,
                        "block_number": n,
                        "block_hash": h,
                    }
                    for n, h in sorted(known.items())
                ],
            )
            conn.execute(
                delete(T_BLOCKS).where(
                    T_BLOCKS.c.chain_id == self.chain_id,
                    T_BLOCKS.c.deployment == self.key,
                    T_BLOCKS.c.block_number < batch.end - KEEP_BLOCKS,
                )
            )
        return handled

    # --- reorgs ---------------------------------------------------------------------------

    def known_blocks(self, upto: int, *, limit: int | None = None) -> list[tuple[int, str]]:
        """(number, hash) of blocks at or below ``upto`` whose hash we stored, highest
        first: recorded blocks and the blocks of raw events (the newest ``limit`` of each
        kind, or all)."""
        recorded_q = (
            select(T_BLOCKS.c.block_number, T_BLOCKS.c.block_hash)
            .where(
                T_BLOCKS.c.chain_id == self.chain_id,
                T_BLOCKS.c.deployment == self.key,
                T_BLOCKS.c.block_number <= upto,
            )
            .order_by(T_BLOCKS.c.block_number.desc())
        )
        events_q = (
            select(T_EVENTS.c.block_number, T_EVENTS.c.block_hash)
            .where(
                T_EVENTS.c.chain_id == self.chain_id,
                T_EVENTS.c.address.in_(self.addresses),
                T_EVENTS.c.block_number <= upto,
            )
            .distinct()
            .order_by(T_EVENTS.c.block_number.desc())
        )
        if limit is not None:
            recorded_q, events_q = recorded_q.limit(limit), events_q.limit(limit)
        with self.engine.connect() as conn:
            recorded = conn.execute(recorded_q).all()
            from_events = conn.execute(events_q).all()
        known: dict[int, str] = {}
        for n, h in (*from_events, *recorded):
            known[int(n)] = str(h)
        return sorted(known.items(), reverse=True)

    def rollback(
        self,
        *,
        expected: Cursor,
        ancestor: Cursor | None,
        orphaned: list[tuple[int, str]],
        record: bool = True,
    ) -> RollbackResult:
        """Undo everything above ``ancestor`` (None: everything) in one transaction and
        record the reorg."""
        keep = ancestor.number if ancestor is not None else -1
        with self.engine.begin() as conn:
            self._move_cursor(conn, expected, ancestor)
            removed, replayed = self._delete_above(conn, keep)
            if record:
                conn.execute(
                    insert(T_REORGS).values(
                        chain_id=self.chain_id,
                        deployment=self.key,
                        detected_at=datetime.now(UTC),
                        old_block_number=expected.number,
                        old_block_hash=expected.hash,
                        ancestor_block_number=keep,
                        ancestor_block_hash=ancestor.hash if ancestor else None,
                        depth=expected.number - keep,
                        events_removed=removed,
                        orphaned_blocks=[[n, h] for n, h in sorted(orphaned)[:1000]],
                    )
                )
        return RollbackResult(ancestor, expected.number - keep, removed, replayed, orphaned)

    def _delete_above(self, conn: Connection, keep: int) -> tuple[int, int]:
        touched = handlers.delete_above(conn, self.chain_id, self.addresses, keep)
        result = conn.execute(
            delete(T_EVENTS).where(
                T_EVENTS.c.chain_id == self.chain_id,
                T_EVENTS.c.address.in_(self.addresses),
                T_EVENTS.c.block_number > keep,
            )
        )
        replayed = handlers.rebuild_keys(conn, touched)
        conn.execute(
            delete(T_BLOCKS).where(
                T_BLOCKS.c.chain_id == self.chain_id,
                T_BLOCKS.c.deployment == self.key,
                T_BLOCKS.c.block_number > keep,
            )
        )
        return int(result.rowcount or 0), replayed

    def heal(self) -> int:
        """Remove rows above the cursor (none unless written outside the indexer)."""
        with self.engine.begin() as conn:
            cursor = self._read_cursor(conn)
            keep = cursor.number if cursor is not None else -1
            stale = conn.execute(
                select(func.count())
                .select_from(T_EVENTS)
                .where(
                    T_EVENTS.c.chain_id == self.chain_id,
                    T_EVENTS.c.address.in_(self.addresses),
                    T_EVENTS.c.block_number > keep,
                )
            ).scalar_one()
            if not stale:
                return 0
            removed, _ = self._delete_above(conn, keep)
            return removed

    def rebuild(self) -> int:
        """Recompute every derived row of the deployment from ``chain_events``."""
        with self.engine.begin() as conn:
            return handlers.rebuild_all(conn, self.chain_id, self.addresses)

    # --- status ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(T_EVENTS.c.event, func.count())
                .where(T_EVENTS.c.chain_id == self.chain_id, T_EVENTS.c.address.in_(self.addresses))
                .group_by(T_EVENTS.c.event)
            ).all()
        return {str(name): int(n) for name, n in sorted(rows)}

    def reorgs(self, limit: int = 10) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(T_REORGS)
                .where(T_REORGS.c.chain_id == self.chain_id, T_REORGS.c.deployment == self.key)
                .order_by(T_REORGS.c.id.desc())
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]


_EVENTS_UPSERT = BulkUpsert(
    T_EVENTS,
    ("chain_id", "tx_hash", "log_index"),
    columns=(
        "chain_id",
        "block_number",
        "block_hash",
        "tx_hash",
        "tx_index",
        "log_index",
        "address",
        "contract",
        "event",
        "topic1",
        "args",
    ),
)


def upsert_events(conn: Connection, events: Sequence[Event]) -> None:
    """Insert raw rows; one that exists (same chain id, tx hash, log index) is replaced."""
    _EVENTS_UPSERT.write_tuples(
        conn,
        [
            (
                e.chain_id,
                e.block_number,
                e.block_hash,
                e.tx_hash,
                e.tx_index,
                e.log_index,
                e.address,
                e.contract,
                e.event,
                e.topic1,
                dump_json(e.args),
            )
            for e in events
        ],
    )
