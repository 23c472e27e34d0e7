"""bulk_insert: COPY on PostgreSQL, executemany elsewhere; the same rows come back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from service.db import bulk_insert, make_engine

_meta = sa.MetaData()
_things = sa.Table(
    "test_bulk_things",
    _meta,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("blob", sa.LargeBinary, nullable=False),
    sa.Column("n", sa.BigInteger, nullable=True),
)

# what COPY's text format must escape: tabs, newlines, backslashes, the NULL marker
_ROWS = [
    {"id": 1, "name": "a\tb\nc\\d", "blob": b"\x00\t\n\\N\xff", "n": 2**63 - 1},
    {"id": 2, "name": "\\N", "blob": b"", "n": None},
    {"id": 3, "name": None, "blob": bytes(range(256)), "n": -(2**63)},
    {"id": 4, "name": "可信数据空间 \r end", "blob": b"\\\\", "n": 0},
]


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    eng = make_engine(db_url)
    _meta.create_all(eng)
    return eng


def test_rows_come_back_byte_for_byte(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        bulk_insert(conn, _things, _ROWS)
    with engine.connect() as conn:
        got = [dict(r._mapping) for r in conn.execute(sa.select(_things).order_by(_things.c.id))]
    assert [{**r, "blob": bytes(r["blob"])} for r in got] == _ROWS
    engine.dispose()


def test_a_failing_batch_inserts_nothing(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        bulk_insert(conn, _things, _ROWS[:1])
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:  # id 1 again: the key
        bulk_insert(conn, _things, [_ROWS[1], _ROWS[0]])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(_things)).scalar() == 1
    engine.dispose()


def test_copy_errors_are_sqlalchemy_errors(engine: sa.Engine) -> None:
    """The API maps SQLAlchemy's errors (``OperationalError``: 503); COPY's must be those."""
    with engine.begin() as conn:
        bulk_insert(conn, _things, _ROWS[:1])
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        bulk_insert(conn, _things, _ROWS[:1])
    engine.dispose()


def test_tuples_in_column_order_insert_the_same_rows(engine: sa.Engine) -> None:
    """The bench fills millions of rows as tuples (no dict each): the same rows result."""
    columns = ("id", "name", "blob", "n")
    with engine.begin() as conn:
        bulk_insert(conn, _things, [tuple(r[c] for c in columns) for r in _ROWS], columns=columns)
    with engine.connect() as conn:
        got = [dict(r._mapping) for r in conn.execute(sa.select(_things).order_by(_things.c.id))]
    assert [{**r, "blob": bytes(r["blob"])} for r in got] == _ROWS
    engine.dispose()
