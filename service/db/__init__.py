"""Database engine and sessions (SQLModel on SQLAlchemy 2).

SQLite file by default (WAL journal, foreign keys on, a busy timeout so several
processes can share it); PostgreSQL via ``postgresql+psycopg://…`` for scale. The
schema is created by the application at start (``create_schema``); every table lives
on ``SQLModel.metadata`` (modules listed in ``TABLE_MODULES``) so Alembic can take over
later without moving anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, SQLModel, create_engine

from service.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def table_of(model: Any) -> Table:
    """The Core ``Table`` of a SQLModel table class (for Core inserts and COPY)."""
    table: Table = model.__table__
    return table


_INSERT_CHUNK = 50_000  # rows per executemany where there is no COPY (bounds the dicts)


def bulk_insert(
    conn: Connection,
    table: Table,
    rows: Sequence[Any],
    *,
    columns: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` into ``table`` in ``conn``'s transaction: dicts with the same keys,
    or, with ``columns``, tuples in that order (millions of rows without a dict each).

    On PostgreSQL (psycopg) the rows go in by one ``COPY ... FROM STDIN``: psycopg
    writes each row in C and the server parses and plans nothing per row (the evidence
    log inserts its entry and commitment rows with it while it holds the log lock; see
    README "Benchmarks"). Elsewhere: Core ``executemany`` in chunks."""
    if not rows:
        return
    names = list(columns) if columns is not None else list(rows[0])
    if conn.dialect.name != "postgresql":
        for pos in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[pos : pos + _INSERT_CHUNK]
            if columns is not None:
                chunk = [dict(zip(names, r, strict=True)) for r in chunk]
            conn.execute(table.insert(), list(chunk))
        return
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    raw: Any = conn.connection.dbapi_connection
    text = statement.as_string(raw)
    with driver_errors(conn, text), raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row if columns is not None else [row[c] for c in names])


@contextmanager
def driver_errors(conn: Connection, statement: str) -> Iterator[None]:
    """Work done on ``conn``'s psycopg connection directly (COPY, a pipeline) raises what
    SQLAlchemy raises for a statement it ran: ``IntegrityError``, ``OperationalError``
    (the API's 503) and so on, with the connection dropped from the pool if it is gone."""
    import psycopg

    try:
        yield
    except psycopg.Error as err:
        failed: Any = err
        gone = conn.dialect.is_disconnect(failed, conn.connection.dbapi_connection, None)
        if gone:
            conn.invalidate(err)
        raise DBAPIError.instance(
            statement, None, err, psycopg.Error, connection_invalidated=gone
        ) from None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def make_engine(
    url: str, *, echo: bool = False, pool: bool = True, pool_size: int | None = None
) -> Engine:
    """An engine for ``url``; SQLite files get WAL + foreign keys, their folder is created.

    ``pool_size``: connections kept open (and 4 more opened when all are busy). A server
    sizes it to its request threads: SQLAlchemy's default (5 + 10 overflow) makes the
    threads beyond 5 open and close a connection per request (SQLite pragmas, PostgreSQL
    login), and those beyond 15 wait.
    """
    sizing = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": 4}
    options = {"poolclass": NullPool} if not pool else sizing
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("database URL is not valid") from None  # the URL may hold a password
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **options,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ConfigError("PostgreSQL URLs must use the psycopg driver: postgresql+psycopg://…")
        return create_engine(url, echo=echo, pool_pre_ping=True, **options)
    raise ConfigError(f"unsupported database backend {backend!r} (use sqlite or postgresql)")


def create_schema(engine: Engine) -> None:
    """Create every Tally table that does not exist yet."""
    _import_models()
    SQLModel.metadata.create_all(engine)


def drop_schema(engine: Engine) -> None:
    _import_models()
    SQLModel.metadata.drop_all(engine)


# Every module that defines tables on SQLModel.metadata (add new ones here).
TABLE_MODULES = (
    "service.evidence.models",
    "service.evidence.tiles",
    "service.indexer.models",
    "service.api.models",
    "service.witness.cosignatures",
    "service.catalog.models",
)


def _import_models() -> None:
    """Import the modules that define tables so they are on the shared metadata."""
    import importlib

    for name in TABLE_MODULES:
        importlib.import_module(name)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
