"""The evidence log's persistent RFC 9162 Merkle tree, stored as hash tiles.

Layout (C2SP tlog-tiles with tile height 8, as in Trillian Tessera)
--------------------------------------------------------------------
Tree level ``h`` holds the hashes of the complete subtrees of ``2**h`` leaves: level 0
is the leaf hashes, and node ``k`` of level ``h`` covers leaves ``[k * 2**h, (k+1) * 2**h)``.
Only every eighth level is stored. Tile ``(L, N)`` (``L`` = tile level, ``N`` = tile
index) holds nodes ``256 N .. 256 N + 255`` of tree level ``8 L``, laid end to end as one
blob of ``32 * width`` bytes, so it covers leaves ``[N * 256**(L+1), (N+1) * 256**(L+1))``.
Levels ``8L+1 .. 8L+7`` are never stored: they are rehashed from the tile below them
(at most 255 hashes; full tiles are memoised by content in this process). Only complete
subtrees are stored, so for a tree of ``s`` leaves tile ``(L, N)`` has width
``min(256, (s >> 8L) - 256 N)``. A tile with width < 256 is partial: its row is rewritten
as the tree grows and never changes once full; the contents at an older, smaller width are
a prefix of the current ones, which is why any earlier tree size is served from the
current tiles. (tlog-tiles serves partial tiles at separate ``.p/W`` paths; with this
layout those are prefixes of the stored blob.)

Cost: the root or a proof for any size ``s <= size`` needs at most two tiles per tile
level (``ceil(log256 s)`` levels: 3 up to 16.7M leaves), fetched in one query, and at
most 255 hashes per tile. An append of ``m`` leaves computes about ``m`` node hashes and
writes each touched tile once, in ``executemany`` batches (on PostgreSQL pipelined, so the
server stores tiles while the next ones are hashed).

Storage
-------
:class:`TileStorage` is the small interface; :class:`MemoryTileStorage` (tests, tools)
and :class:`SqlTileStorage` implement it, and :class:`MerkleLog` holds all the tree logic
on top of either one. SQL tables (on ``SQLModel.metadata``):

- ``merkle_tiles(log_id, level, idx, hashes)``, primary key ``(log_id, level, idx)``;
- ``merkle_log_state(log_id, size, root)``: one row per log, the size and root that the
  tiles describe; its row lock serializes appends.

Transactions: :class:`SqlTileStorage` runs on the caller's ``Connection`` or ``Session``
and never commits, so entry rows and their leaves commit (or roll back) together.
Appends take the log's state row first (``SELECT ... FOR UPDATE`` on PostgreSQL; the
SQLite write lock, taken by a write statement, on SQLite), so several processes append
without gaps or duplicates; the other appenders wait for the commit. PostgreSQL must run
the appending transaction at READ COMMITTED (its default): under REPEATABLE READ or
SERIALIZABLE a concurrent append makes the database raise a serialization error, which
the caller retries. On SQLite, start write transactions with the append (or
``BEGIN IMMEDIATE``): a transaction that read before another process committed cannot
upgrade to a writer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from threading import RLock
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from service.db import driver_errors
from service.errors import ConfigError, InvalidInput, TallyError
from service.evidence.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_ranges,
    hash_level,
    inclusion_ranges,
    leaf_hash,
    node_hash,
)

__all__ = [
    "EVIDENCE_LOG_ID",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "LogCorrupted",
    "LogState",
    "MemoryTileStorage",
    "MerkleLog",
    "SqlTileStorage",
    "TileKey",
    "TileStorage",
    "bench_append",
    "merkle_log_state",
    "merkle_tiles",
]

TILE_HEIGHT = 8
"""Tree levels per tile: tile level ``L`` stores tree level ``8 L``."""
TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256)."""
EVIDENCE_LOG_ID = 0
"""``log_id`` of Tally's evidence log (other ids: benchmarks, tests)."""

_TILE_BYTES = TILE_WIDTH * HASH_SIZE
_CHUNK_LEAVES = 1 << 16  # leaves per step of a large append (2 MiB of hashes, memory reused)


class LogCorrupted(TallyError):
    """The stored tiles do not match the log's recorded size (storage damaged or edited)."""

    code = "log_corrupted"
    status = 500


class TileKey(NamedTuple):
    """Tile ``(level, idx)``: nodes ``256 idx ..`` of tree level ``8 level``."""

    level: int
    idx: int


class LogState(NamedTuple):
    """What the tiles describe: the tree size and its root."""

    size: int
    root: bytes


EMPTY_STATE = LogState(0, EMPTY_ROOT)


# --- storage interface -----------------------------------------------------------------


class TileStorage(Protocol):
    """Where a :class:`MerkleLog` keeps its tiles and its size; no tree logic."""

    def read_state(self) -> LogState:
        """The current size and root (``EMPTY_STATE`` for a log never appended to)."""
        ...

    def lock_state(self) -> LogState:
        """Like :meth:`read_state`, and hold off every other appender until this
        transaction ends. Every append calls it first; calling it again in the same
        transaction is harmless (and answered without a query by :class:`SqlTileStorage`),
        so a caller that numbers its entry rows before appending takes the lock (and the
        size) up front."""
        ...

    def write_state(self, state: LogState) -> None:
        """Record a new size and root (after :meth:`lock_state`)."""
        ...

    def read_tiles(self, keys: Collection[TileKey]) -> dict[TileKey, bytes]:
        """The stored blobs of ``keys``; a missing tile is absent from the result."""
        ...

    def read_tile_range(self, level: int, first: int, last: int) -> dict[TileKey, bytes]:
        """Tiles ``(level, first) .. (level, last)`` inclusive, as far as stored."""
        ...

    def write_tiles(self, tiles: Mapping[TileKey, bytes]) -> None:
        """Insert or overwrite tiles."""
        ...

    def writing(self) -> AbstractContextManager[None]:
        """A scope for a run of :meth:`write_tiles` calls that may complete in the
        background (overlapping the caller's hashing); all of them are done, or have
        raised, when the scope exits."""
        ...


class MemoryTileStorage:
    """Tiles in a dict: for tests and tools. Not shared between processes.

    :meth:`transaction` gives the same all-or-nothing behaviour as a database
    transaction (and a lock for threads); outside it each call applies at once.
    """

    def __init__(self) -> None:
        self._tiles: dict[TileKey, bytes] = {}
        self._state = EMPTY_STATE
        self._lock = RLock()

    @contextmanager
    def transaction(self) -> Iterator[MemoryTileStorage]:
        """Hold the lock; undo every change if the block raises."""
        with self._lock:
            tiles, state = dict(self._tiles), self._state
            try:
                yield self
            except BaseException:
                self._tiles, self._state = tiles, state
                raise

    def read_state(self) -> LogState:
        return self._state

    def lock_state(self) -> LogState:
        return self._state

    def write_state(self, state: LogState) -> None:
        self._state = state

    def read_tiles(self, keys: Collection[TileKey]) -> dict[TileKey, bytes]:
        return {k: self._tiles[k] for k in keys if k in self._tiles}

    def read_tile_range(self, level: int, first: int, last: int) -> dict[TileKey, bytes]:
        if last - first < len(self._tiles):
            keys = (TileKey(level, i) for i in range(first, last + 1))
            return {k: self._tiles[k] for k in keys if k in self._tiles}
        return {k: v for k, v in self._tiles.items() if k.level == level and first <= k.idx <= last}

    def write_tiles(self, tiles: Mapping[TileKey, bytes]) -> None:
        self._tiles.update({k: bytes(v) for k, v in tiles.items()})

    def writing(self) -> AbstractContextManager[None]:
        return nullcontext()


# --- SQL storage -------------------------------------------------------------------------

merkle_tiles = sa.Table(
    "merkle_tiles",
    SQLModel.metadata,
    sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hashes", sa.LargeBinary, nullable=False),
    comment="RFC 9162 tree tiles (C2SP tlog-tiles, height 8): see service/evidence/tiles.py",
)

merkle_log_state = sa.Table(
    "merkle_log_state",
    SQLModel.metadata,
    sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root", sa.LargeBinary, nullable=False),
    comment="Size and root of each Merkle log; the row lock serializes appends",
)


@sa.event.listens_for(merkle_tiles, "after_create")
def _store_tiles_uncompressed(target: sa.Table, connection: Connection, **_: object) -> None:
    """Tile blobs are SHA-256 output: PostgreSQL's TOAST compression would only waste time."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("ALTER TABLE merkle_tiles ALTER COLUMN hashes SET STORAGE EXTERNAL")
        )


_t, _s = merkle_tiles.c, merkle_log_state.c
_SELECT_STATE = sa.select(_s.size, _s.root).where(_s.log_id == sa.bindparam("lid"))
_LOCK_STATE = _SELECT_STATE.with_for_update()
_CREATE_STATE = {  # per dialect: INSERT ... ON CONFLICT DO NOTHING
    name: insert(merkle_log_state)
    .values(log_id=sa.bindparam("lid"), size=0, root=EMPTY_ROOT)
    .on_conflict_do_nothing(index_elements=["log_id"])
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_UPDATE_STATE = (
    merkle_log_state.update()
    .where(_s.log_id == sa.bindparam("lid"))
    .values(size=sa.bindparam("new_size"), root=sa.bindparam("new_root"))
)
_SELECT_TILES = sa.select(_t.level, _t.idx, _t.hashes).where(_t.log_id == sa.bindparam("lid"))


@lru_cache(maxsize=64)
def _tiles_by_key(count: int) -> sa.Select[tuple[int, int, bytes]]:
    """Tiles by key, ``count`` keys: ``(log_id = ? AND level = ? AND idx = ?) OR ...``
    (the whole key in every term: SQLite does not carry a shared ``log_id = ?`` into
    the OR, and then searches its index on ``log_id`` alone). SQLite plans
    the row-value form ``(level, idx) IN (VALUES ...)`` as a scan of every tile of the
    log (its primary-key index on ``log_id`` alone); the OR of equalities is one index
    search per key there, and a bitmap OR of index scans on PostgreSQL. Proofs and
    appends ask for a handful of keys (at most two per tile level), so the statements
    are few and cached."""
    lid: sa.BindParameter[int] = sa.bindparam("lid")
    return sa.select(_t.level, _t.idx, _t.hashes).where(
        sa.or_(
            *(
                sa.and_(
                    _t.log_id == lid,
                    _t.level == sa.bindparam(f"l{i}"),
                    _t.idx == sa.bindparam(f"i{i}"),
                )
                for i in range(count)
            )
        )
    )


def _key_params(keys: Collection[TileKey]) -> dict[str, int]:
    params: dict[str, int] = {}
    for i, key in enumerate(keys):
        params[f"l{i}"], params[f"i{i}"] = key.level, key.idx
    return params


_TILE_RANGE = _SELECT_TILES.where(
    _t.level == sa.bindparam("level"),
    _t.idx.between(sa.bindparam("first"), sa.bindparam("last")),
)
_PARAM_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class SqlTileStorage:
    """Tiles in ``merkle_tiles`` on the caller's connection or session; never commits.

    ``bind`` is the ``Connection`` or ``Session`` whose transaction the log's writes
    join: commit it to publish an append, roll it back to undo one. SQLite and
    PostgreSQL (psycopg) are supported.
    """

    def __init__(self, bind: Connection | Session, *, log_id: int = EVIDENCE_LOG_ID) -> None:
        self._bind = bind
        self._log_id = log_id
        self._pipeline: Any = None  # the psycopg connection while writing() pipelines
        # in the connection's info: (transaction, state) once that transaction holds this
        # log's lock; no other writer can move the state until it ends, so lock_state
        # again need not ask the database (shared by every storage on the connection)
        self._held_key = ("tally.merkle_log_lock", log_id)

    def _conn(self) -> Connection:
        conn = self._bind.connection() if isinstance(self._bind, Session) else self._bind
        if conn.dialect.name not in _CREATE_STATE:
            raise ConfigError(f"the Merkle log needs SQLite or PostgreSQL, not {conn.dialect.name}")
        return conn

    def _state(self, conn: Connection, query: sa.Select[tuple[int, bytes]]) -> LogState | None:
        row = conn.execute(query, {"lid": self._log_id}).one_or_none()
        return None if row is None else LogState(int(row.size), bytes(row.root))

    def read_state(self) -> LogState:
        return self._state(self._conn(), _SELECT_STATE) or EMPTY_STATE

    def lock_state(self) -> LogState:
        conn = self._conn()
        held = conn.info.get(self._held_key)
        if held is not None and held[0] is conn.get_transaction():
            locked: LogState = held[1]  # locked earlier in this transaction: 2 statements saved
            return locked
        # A write first: it creates the row of a new log and, on SQLite, takes the
        # database write lock; FOR UPDATE then locks the row on PostgreSQL.
        conn.execute(_CREATE_STATE[conn.dialect.name], {"lid": self._log_id})
        state = self._state(conn, _LOCK_STATE)
        if state is None:  # pragma: no cover - the insert above guarantees the row
            raise LogCorrupted("the Merkle log state row vanished")
        conn.info[self._held_key] = (conn.get_transaction(), state)
        return state

    def write_state(self, state: LogState) -> None:
        conn = self._conn()
        params = {"lid": self._log_id, "new_size": state.size, "new_root": state.root}
        conn.execute(_UPDATE_STATE, params)
        held = conn.info.get(self._held_key)
        if held is not None and held[0] is conn.get_transaction():
            conn.info[self._held_key] = (held[0], state)

    def _tiles(
        self, query: sa.Select[tuple[int, int, bytes]], **params: object
    ) -> dict[TileKey, bytes]:
        rows = self._conn().execute(query, {"lid": self._log_id, **params})
        return {TileKey(int(r.level), int(r.idx)): bytes(r.hashes) for r in rows}

    def read_tiles(self, keys: Collection[TileKey]) -> dict[TileKey, bytes]:
        if not keys:
            return {}
        return self._tiles(_tiles_by_key(len(keys)), **_key_params(keys))

    def read_tile_range(self, level: int, first: int, last: int) -> dict[TileKey, bytes]:
        return self._tiles(_TILE_RANGE, level=level, first=first, last=last)

    def write_tiles(self, tiles: Mapping[TileKey, bytes]) -> None:
        if not tiles:
            return
        conn = self._conn()
        # Straight to the driver's executemany: a bulk append writes thousands of 8 KiB
        # blobs and SQLAlchemy's per-row parameter processing would cost more than the I/O.
        sql = (
            "INSERT INTO merkle_tiles (log_id, level, idx, hashes) VALUES ({0}, {0}, {0}, {0}) "
            "ON CONFLICT (log_id, level, idx) DO UPDATE SET hashes = excluded.hashes"
        ).format(_PARAM_MARKS.get(conn.dialect.paramstyle, "?"))
        rows = [(self._log_id, k.level, k.idx, v) for k, v in tiles.items()]
        if self._pipeline is not None:  # queued; the server works while we hash on
            with self._pipeline.cursor() as cursor:
                cursor.executemany(sql, rows)
            return
        conn.exec_driver_sql(sql, rows)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """On PostgreSQL, a psycopg pipeline: tile writes are sent at once and the
        server stores them while the caller computes the next ones."""
        conn = self._conn()
        raw: Any = conn.connection.dbapi_connection
        if not hasattr(raw, "pipeline") or self._pipeline is not None:  # psycopg 3 only
            yield
            return
        with driver_errors(conn, "INSERT INTO merkle_tiles (pipelined)"), raw.pipeline():
            self._pipeline = raw
            try:
                yield
            finally:
                self._pipeline = None


# --- the tree on top of tiles ------------------------------------------------------------


def _subtree_in_blob(blob: bytes, offset: int, height: int) -> bytes:
    """Hash of the ``2**height`` nodes of ``blob`` starting at node ``offset``."""
    if len(blob) == _TILE_BYTES and height:
        level = _full_tile_levels(blob)[height]
        at = (offset >> height) * HASH_SIZE
        return level[at : at + HASH_SIZE]
    level = blob[offset * HASH_SIZE : (offset + (1 << height)) * HASH_SIZE]
    for _ in range(height):
        level = hash_level(level)
    return level


@lru_cache(maxsize=256)  # about 6 MiB at most
def _full_tile_levels(blob: bytes) -> tuple[bytes, ...]:
    """Tree levels 0..8 inside a full tile. Keyed by content: a rolled-back append
    can never leave a wrong entry behind."""
    levels = [blob]
    for _ in range(TILE_HEIGHT):
        levels.append(hash_level(levels[-1]))
    return tuple(levels)


def _decompose(start: int, end: int) -> list[tuple[int, int]]:
    """Complete subtrees ``(height, index)`` making up leaves ``[start, end)``, largest
    first: MTH of the range is their right fold. Each must be a node of the whole tree
    (aligned), which holds for every range a proof is made of."""
    nodes = []
    span = end - start
    for height in range(span.bit_length() - 1, -1, -1):
        if span >> height & 1:
            if start & ((1 << height) - 1):  # pragma: no cover - guarded by the callers
                raise ValueError(f"range [{start}, {end}) is not aligned")
            nodes.append((height, start >> height))
            start += 1 << height
    return nodes


def _tile_of(height: int, index: int) -> tuple[TileKey, int, int]:
    """Tile holding subtree ``(height, index)``, the subtree's first node in that tile,
    and its height above the tile's level."""
    level, rest = divmod(height, TILE_HEIGHT)
    first = index << rest  # first node of tree level 8*level under the subtree
    return TileKey(level, first >> TILE_HEIGHT), first & (TILE_WIDTH - 1), rest


def _fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a run of complete subtrees, largest first (right fold)."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _checked_blob(hashes: Sequence[bytes]) -> bytes:
    try:
        blob = b"".join(hashes)
    except TypeError:
        raise InvalidInput("leaf hashes must be bytes") from None
    # the lengths add up to 32 per hash and none is shorter: then each is exactly 32
    # (one pass at C speed; a set of the lengths cost twice as much at 1M leaves)
    if len(blob) != HASH_SIZE * len(hashes) or min(map(len, hashes)) < HASH_SIZE:
        raise InvalidInput(f"every leaf hash must be {HASH_SIZE} bytes")
    return blob


class MerkleLog:
    """An append-only RFC 9162 Merkle tree over a :class:`TileStorage`.

    Proofs and roots are the ones :mod:`service.evidence.merkle` computes from the full
    list of leaf hashes, at O(log n) tile reads. Arguments out of range raise
    :class:`~service.errors.InvalidInput`; stored tiles that disagree with the recorded
    size raise :class:`LogCorrupted`.
    """

    def __init__(self, storage: TileStorage) -> None:
        self._storage = storage

    # -- reads ------------------------------------------------------------------------

    def size(self) -> int:
        """The number of leaves."""
        return self._storage.read_state().size

    def state(self) -> LogState:
        """The current size and root, read together."""
        return self._storage.read_state()

    def _within(self, size: int) -> LogState:
        state = self._storage.read_state()
        if not 0 <= size <= state.size:
            raise InvalidInput(f"tree size {size} is outside the log (size {state.size})")
        return state

    def _subtrees(self, nodes: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Hashes of complete subtrees ``(height, index)``, all from one tile query."""
        where = {node: _tile_of(*node) for node in nodes}
        tiles = self._storage.read_tiles({key for key, _, _ in where.values()})
        out = {}
        for node, (key, offset, rest) in where.items():
            blob = tiles.get(key, b"")
            if len(blob) < (offset + (1 << rest)) * HASH_SIZE:
                raise LogCorrupted(f"tile {key} lacks node {offset + (1 << rest) - 1}")
            out[node] = _subtree_in_blob(blob, offset, rest)
        return out

    def _range_hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        parts = [_decompose(a, b) for a, b in ranges]
        known = self._subtrees({node for part in parts for node in part})
        return [_fold([known[node] for node in part]) for part in parts]

    def root(self, *, size: int | None = None) -> bytes:
        """The tree hash at ``size`` leaves (default: the current size)."""
        state = self._storage.read_state() if size is None else self._within(size)
        if size is None or size == state.size:
            return state.root
        if size == 0:
            return EMPTY_ROOT
        return self._range_hashes([(0, size)])[0]

    def inclusion_proof(self, *, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        self._within(size)
        if not 0 <= index < size:
            raise InvalidInput(f"leaf index {index} is not in a tree of size {size}")
        return self._range_hashes(inclusion_ranges(index, size))

    def proof_and_root(self, *, index: int, size: int) -> tuple[list[bytes], bytes]:
        """:meth:`inclusion_proof` of leaf ``index`` in the tree of ``size`` leaves and
        :meth:`root` at ``size``, from one state read and one tile query (a receipt
        needs both: the proof and its checkpoint note's root)."""
        state = self._within(size)
        if not 0 <= index < size:
            raise InvalidInput(f"leaf index {index} is not in a tree of size {size}")
        ranges = inclusion_ranges(index, size)
        if size == state.size:
            return self._range_hashes(ranges), state.root
        *proof, root = self._range_hashes([*ranges, (0, size)])
        return proof, root

    def consistency_proof(self, *, old: int, new: int) -> list[bytes]:
        """RFC 9162 consistency proof from tree size ``old`` to tree size ``new``."""
        self._within(new)
        if not 0 <= old <= new:
            raise InvalidInput(f"cannot prove size {old} consistent with size {new}")
        return self._range_hashes(consistency_ranges(old, new))

    def leaf_hashes(self, *, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``start .. end - 1``."""
        self._within(end)
        if not 0 <= start <= end:
            raise InvalidInput(f"leaf range [{start}, {end}) is not valid")
        if start == end:
            return []
        first, last = start >> TILE_HEIGHT, (end - 1) >> TILE_HEIGHT
        tiles = self._storage.read_tile_range(0, first, last)
        blob = b"".join(tiles.get(TileKey(0, i), b"") for i in range(first, last + 1))
        lo = (start - (first << TILE_HEIGHT)) * HASH_SIZE
        hi = lo + (end - start) * HASH_SIZE
        if len(blob) < hi:
            raise LogCorrupted(f"level-0 tiles {first}..{last} lack leaves below {end}")
        return [blob[i : i + HASH_SIZE] for i in range(lo, hi, HASH_SIZE)]

    # -- append -----------------------------------------------------------------------

    def append(self, *, hashes: Sequence[bytes]) -> int:
        """Append leaf hashes (32 bytes each) and return the new size: the new leaves
        have indices ``new_size - len(hashes) .. new_size - 1``.

        Runs in the storage's transaction and first takes the log lock, held until that
        transaction ends: nothing is visible to others, and nothing stays, unless the
        caller commits. Call it before the transaction's other writes (the entry rows
        need the indices anyway), so that concurrent appenders queue on the log lock
        alone. A malformed hash raises :class:`~service.errors.InvalidInput`; the caller
        then rolls back (the recorded size has not moved either way)."""
        count = len(hashes)
        if not count:
            return self._storage.read_state().size
        size = self._storage.lock_state().size
        edge = self._read_edge(size)
        pending: dict[TileKey, bytes] = {}
        with self._storage.writing():
            for pos in range(0, count, _CHUNK_LEAVES):
                part = hashes[pos : pos + _CHUNK_LEAVES]
                _grow(size, _checked_blob(part), edge, pending)
                size += len(part)
                full = {k: v for k, v in pending.items() if len(v) == _TILE_BYTES}
                self._storage.write_tiles(full)  # full tiles never change again
                for key in full:
                    del pending[key]
            self._storage.write_tiles(pending)
        root = _edge_root(size, edge)
        self._storage.write_state(LogState(size, root))
        return size

    def _read_edge(self, size: int) -> dict[int, bytes]:
        """The partial tile of each tile level at ``size``: ``{level: blob}``."""
        wanted: dict[TileKey, int] = {}
        level = 0
        while size >> (TILE_HEIGHT * level):
            count = size >> (TILE_HEIGHT * level)
            if count & (TILE_WIDTH - 1):
                wanted[TileKey(level, count >> TILE_HEIGHT)] = count & (TILE_WIDTH - 1)
            level += 1
        tiles = self._storage.read_tiles(wanted.keys())
        edge = {}
        for key, width in wanted.items():
            blob = tiles.get(key, b"")
            if len(blob) < width * HASH_SIZE:
                raise LogCorrupted(f"tile {key} holds fewer than {width} hashes")
            edge[key.level] = blob[: width * HASH_SIZE]
        return edge


def _grow(size: int, leaves: bytes, edge: dict[int, bytes], out: dict[TileKey, bytes]) -> None:
    """Add ``leaves`` (leaf hashes laid end to end) to a tree of ``size`` leaves whose
    partial tiles are ``edge``: update ``edge`` and put every changed tile in ``out``."""
    level, count, new = 0, size, leaves
    while new:
        combined = edge.pop(level, b"") + new
        first = count >> TILE_HEIGHT
        for at in range(0, len(combined), _TILE_BYTES):
            out[TileKey(level, first + at // _TILE_BYTES)] = combined[at : at + _TILE_BYTES]
        full = len(combined) // _TILE_BYTES
        if len(combined) > full * _TILE_BYTES:
            edge[level] = combined[full * _TILE_BYTES :]
        if not full:
            return
        parents: bytes | memoryview = memoryview(combined)[: full * _TILE_BYTES]
        for _ in range(TILE_HEIGHT):
            parents = hash_level(parents)
        level, count, new = level + 1, first, bytes(parents)


def _edge_root(size: int, edge: Mapping[int, bytes]) -> bytes:
    """Root of a tree of ``size`` leaves from its partial tiles alone."""
    if size == 0:
        return EMPTY_ROOT
    parts = []
    for height in range(size.bit_length() - 1, -1, -1):
        if size >> height & 1:
            key, offset, rest = _tile_of(height, (size >> height) - 1)
            parts.append(_subtree_in_blob(edge[key.level], offset, rest))
    return _fold(parts)


# --- benchmark ---------------------------------------------------------------------------


def _plain_root(hashes: Sequence[bytes]) -> bytes:
    """The benchmark's yardstick: a plain in-memory hashlib loop building the RFC 9162
    tree level by level from the leaf hashes."""
    level = list(hashes)
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0] if level else EMPTY_ROOT


def _plain_from_entries(entries: Sequence[bytes]) -> bytes:
    """The same loop starting from entry bytes: leaf hashes first, then the tree."""
    return _plain_root([hashlib.sha256(b"\x00" + e).digest() for e in entries])


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_append(n: int, url: str) -> dict[str, float | int | str]:
    """Time one append of ``n`` leaf hashes through :class:`SqlTileStorage` at ``url``
    (tiles written, root computed and stored, committed) against plain in-memory hashlib
    loops building the same tree, in this process. Uses a fresh ``log_id`` and deletes it
    afterwards; a 1-leaf append to a scratch log first keeps SQL compilation out of it.

    ``ratio`` = plain loop from the same leaf hashes / store (the goal is >= 0.9);
    ``ratio_vs_entries`` = plain loop from the entry bytes (leaf hashing included, which
    the store's caller does before appending) / store. Each plain loop runs before and
    after the append and its faster run counts.
    """
    from service.db import create_schema, make_engine

    engine = make_engine(url)
    create_schema(engine)
    entries = [i.to_bytes(8, "big") for i in range(n)]
    hashes = [leaf_hash(e) for e in entries]
    with engine.begin() as conn:
        top = conn.execute(sa.select(sa.func.max(merkle_log_state.c.log_id))).scalar()
        log_id = max(int(top or 0), 1_000_000) + 2
        MerkleLog(SqlTileStorage(conn, log_id=log_id - 1)).append(hashes=hashes[:1])

    expected = _plain_root(hashes)
    plain = [_timed(lambda: _plain_root(hashes))]
    from_entries = [_timed(lambda: _plain_from_entries(entries))]

    def store() -> None:
        with engine.begin() as conn:
            MerkleLog(SqlTileStorage(conn, log_id=log_id)).append(hashes=hashes)

    store_seconds = _timed(store)
    plain.append(_timed(lambda: _plain_root(hashes)))
    from_entries.append(_timed(lambda: _plain_from_entries(entries)))

    with engine.begin() as conn:
        root = MerkleLog(SqlTileStorage(conn, log_id=log_id)).root()
        for lid in (log_id - 1, log_id):
            conn.execute(merkle_tiles.delete().where(merkle_tiles.c.log_id == lid))
            conn.execute(merkle_log_state.delete().where(merkle_log_state.c.log_id == lid))
    dialect = engine.dialect.name
    engine.dispose()
    if root != expected:
        raise LogCorrupted("benchmark: the stored tree's root differs from the plain loop's")
    return {
        "leaves": n,
        "database": dialect,
        "store_seconds": round(store_seconds, 4),
        "plain_seconds": round(min(plain), 4),
        "plain_from_entries_seconds": round(min(from_entries), 4),
        "ratio": round(min(plain) / store_seconds, 3),
        "ratio_vs_entries": round(min(from_entries) / store_seconds, 3),
        "root": root.hex(),
    }
