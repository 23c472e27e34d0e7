"""The witness's own state: what it cosigned, for whom, and the split views it caught.

One SQLite file (WAL, ``synchronous=FULL``) that belongs to the witness and never to a
space it follows. Three tables:

- ``cosigned(origin, size, root, note, timestamp, cosignature, posted)``: every checkpoint
  this witness cosigned, primary key ``(origin, size)``, so one key can never hold two
  cosignatures for one size of one log. The latest row per origin is the witness's view
  of that log (tlog-witness: "the latest checkpoint it cosigned"). ``posted`` is 0 until
  the space acknowledged the cosignature line.
- ``split_views(id, origin, digest, detected_at, kind, proof)``: split-view proofs
  (JSON, :mod:`service.witness.evidence`), one row per conflicting note (``digest`` is the
  SHA-256 of that note), so a space that keeps serving its fork is recorded once.
- ``meta(key, value)``: the witness key's vkey, so a database is never reused with
  another key (the state would then describe cosignatures that key never made).

Crash safety: the checkpoint, its cosignature and the new latest state are one ``INSERT``
in one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): after a crash the row is either
there (the next run posts it if ``posted`` is 0, and never signs that size again) or not
(nothing left the process: the next run verifies and cosigns afresh).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cosigned (
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    cosignature TEXT NOT NULL,
    posted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, size)
);
CREATE TABLE IF NOT EXISTS split_views (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    digest TEXT NOT NULL,
    detected_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    proof TEXT NOT NULL,
    UNIQUE (origin, digest)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Cosigned:
    """One checkpoint this witness cosigned (``root`` in base64, as in the note)."""

    origin: str
    size: int
    root: str
    note: str
    timestamp: int
    cosignature: str
    posted: bool


@dataclass(frozen=True)
class SplitView:
    """One recorded split view: its kind and the proof document anyone can re-check."""

    id: int
    origin: str
    detected_at: int
    kind: str
    proof: dict[str, Any]


def _cosigned(row: sqlite3.Row) -> Cosigned:
    return Cosigned(
        origin=row["origin"],
        size=int(row["size"]),
        root=row["root"],
        note=row["note"],
        timestamp=int(row["timestamp"]),
        cosignature=row["cosignature"],
        posted=bool(row["posted"]),
    )


class WitnessStore:
    """The witness database (one connection, used by one thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE in _write)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._write() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (no read-then-upgrade deadlock)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- the witness key ---------------------------------------------------------------

    def bind_key(self, vkey: str) -> None:
        """Record the witness key's vkey on first use; refuse another key afterwards."""
        with self._write() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'vkey'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta (key, value) VALUES ('vkey', ?)", (vkey,))
            elif row["value"] != vkey:
                raise ConfigError(
                    f"{self.path} belongs to witness key {row['value']!r}, not to the key "
                    "given: use that key or another database"
                )

    # --- cosignatures --------------------------------------------------------------------

    def latest(self, origin: str) -> Cosigned | None:
        """The largest checkpoint this witness cosigned for ``origin``."""
        row = self._db.execute(
            "SELECT * FROM cosigned WHERE origin = ? ORDER BY size DESC LIMIT 1", (origin,)
        ).fetchone()
        return None if row is None else _cosigned(row)

    def history(self, origin: str) -> list[Cosigned]:
        rows = self._db.execute(
            "SELECT * FROM cosigned WHERE origin = ? ORDER BY size", (origin,)
        ).fetchall()
        return [_cosigned(r) for r in rows]

    def unposted(self, origin: str) -> list[Cosigned]:
        rows = self._db.execute(
            "SELECT * FROM cosigned WHERE origin = ? AND posted = 0 ORDER BY size", (origin,)
        ).fetchall()
        return [_cosigned(r) for r in rows]

    def record_cosignature(self, c: Cosigned) -> None:
        """Store a cosignature (and so the new latest state) in one transaction.

        Refuses (``ValueError``) a size that is not larger than the latest one: the
        caller checked consistency against that latest state, and the primary key
        keeps one cosignature per size in any case."""
        with self._write() as db:
            last = db.execute(
                "SELECT MAX(size) AS size FROM cosigned WHERE origin = ?", (c.origin,)
            ).fetchone()["size"]
            if last is not None and c.size <= int(last):
                raise ValueError(f"{c.origin}: size {c.size} is not past cosigned size {last}")
            db.execute(
                "INSERT INTO cosigned (origin, size, root, note, timestamp, cosignature, posted)"
                " VALUES (?, ?, ?, ?, ?, ?, 0)",
                (c.origin, c.size, c.root, c.note, c.timestamp, c.cosignature),
            )

    def mark_posted(self, origin: str, size: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE cosigned SET posted = 1 WHERE origin = ? AND size = ?", (origin, size)
            )

    # --- split views ---------------------------------------------------------------------

    def record_split_view(
        self, *, origin: str, conflicting_note: str, kind: str, proof: dict[str, Any], at: int
    ) -> bool:
        """Keep a split-view proof; ``False`` when this conflicting note was already kept."""
        digest = hashlib.sha256(conflicting_note.encode()).hexdigest()
        with self._write() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO split_views (origin, digest, detected_at, kind, proof)"
                " VALUES (?, ?, ?, ?, ?)",
                (origin, digest, at, kind, json.dumps(proof, sort_keys=True)),
            )
            return cur.rowcount == 1

    def split_views(self, origin: str | None = None) -> list[SplitView]:
        query = "SELECT * FROM split_views"
        args: tuple[str, ...] = ()
        if origin is not None:
            query += " WHERE origin = ?"
            args = (origin,)
        rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [
            SplitView(
                id=int(r["id"]),
                origin=r["origin"],
                detected_at=int(r["detected_at"]),
                kind=r["kind"],
                proof=json.loads(r["proof"]),
            )
            for r in rows
        ]

    def origins(self) -> list[str]:
        rows = self._db.execute(
            "SELECT origin FROM cosigned UNION SELECT origin FROM split_views ORDER BY origin"
        ).fetchall()
        return [r["origin"] for r in rows]
