"""Fixtures for the Merkle log: one backend fixture over memory, SQLite and PostgreSQL.

``log_backend`` runs each shared test on :class:`MemoryTileStorage`, on SQLite (a file in
the test's tmp dir) and on PostgreSQL (the run's database from ``tests/conftest.py``;
skipped unless ``TALLY_TEST_POSTGRES_URL`` is set, failing under ``TALLY_REQUIRE_POSTGRES``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection, Engine

from service.db import create_schema, make_engine
from service.evidence.tiles import (
    MemoryTileStorage,
    MerkleLog,
    SqlTileStorage,
    TileKey,
    TileStorage,
    merkle_log_state,
    merkle_tiles,
)


class _Undo(Exception):
    """Raised inside a memory transaction to roll it back."""


class LogBackend:
    """Open a :class:`MerkleLog` the way a caller would: in a committed transaction, in a
    rolled-back one, or on a fresh read."""

    def __init__(self, name: str, engine: Engine | None = None, url: str | None = None) -> None:
        self.name = name
        self.engine = engine
        self.url = url
        self._memory: dict[int, MemoryTileStorage] = {}
        self._reader: Connection | None = None

    def _mem(self, log_id: int) -> MemoryTileStorage:
        return self._memory.setdefault(log_id, MemoryTileStorage())

    @contextmanager
    def transaction(self, log_id: int = 1) -> Iterator[MerkleLog]:
        """Commits when the block ends normally, rolls back when it raises."""
        if self.engine is None:
            with self._mem(log_id).transaction() as storage:
                yield MerkleLog(storage)
            return
        with self.engine.begin() as conn:
            yield MerkleLog(SqlTileStorage(conn, log_id=log_id))

    @contextmanager
    def rolled_back(self, log_id: int = 1) -> Iterator[MerkleLog]:
        """Always rolls back at the end of the block."""
        if self.engine is None:
            try:
                with self._mem(log_id).transaction() as storage:
                    yield MerkleLog(storage)
                    raise _Undo
            except _Undo:
                pass
            return
        with self.engine.connect() as conn:
            tx = conn.begin()
            yield MerkleLog(SqlTileStorage(conn, log_id=log_id))
            tx.rollback()

    def log(self, log_id: int = 1) -> MerkleLog:
        """A log for reads of committed data (SQL: on an autocommit connection)."""
        if self.engine is None:
            return MerkleLog(self._mem(log_id))
        if self._reader is None:
            self._reader = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return MerkleLog(SqlTileStorage(self._reader, log_id=log_id))

    def tiles(self, log_id: int = 1, levels: int = 4) -> dict[TileKey, bytes]:
        """Every stored tile of the log, raw."""
        storage: TileStorage
        if self.engine is None:
            storage = self._mem(log_id)
        else:
            self.log(log_id)  # opens the reader
            assert self._reader is not None
            storage = SqlTileStorage(self._reader, log_id=log_id)
        out: dict[TileKey, bytes] = {}
        for level in range(levels):
            out.update(storage.read_tile_range(level, 0, 2**40))
        return out

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self.engine is not None:
            self.engine.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def log_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogBackend]:
    """The same Merkle log API on memory, SQLite and PostgreSQL storage."""
    if request.param == "memory":
        yield LogBackend("memory")
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/log.db"
    else:
        url = request.getfixturevalue("_postgres_database")
    engine = make_engine(url)
    create_schema(engine)
    with engine.begin() as conn:  # the PostgreSQL database lives for the whole run
        conn.execute(merkle_tiles.delete())
        conn.execute(merkle_log_state.delete())
    backend = LogBackend(request.param, engine, url)
    yield backend
    backend.close()
