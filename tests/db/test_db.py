from __future__ import annotations

import pytest
from sqlalchemy import Column, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from service.db import is_postgres, make_engine, session_scope
from service.db.types import UINT256_MAX, Uint256
from service.errors import ConfigError


class _Probe(SQLModel, table=True):
    __tablename__ = "test_probe"
    id: int | None = Field(default=None, primary_key=True)
    amount: int = Field(sa_column=Column(Uint256(), nullable=False))


def test_session_commits_and_rolls_back(db_url: str) -> None:
    engine = make_engine(db_url)
    _Probe.__table__.create(engine)  # type: ignore[attr-defined]
    with session_scope(engine) as s:
        s.add(_Probe(amount=UINT256_MAX))  # uint256 amounts survive exactly
        s.add(_Probe(amount=10**18 + 1))
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        s.add(_Probe(amount=1))
        raise RuntimeError("boom")
    with Session(engine) as s:
        got = [p.amount for p in s.exec(select(_Probe).order_by(_Probe.id))]  # type: ignore[arg-type]
        assert got == [UINT256_MAX, 10**18 + 1]
    engine.dispose()


def test_sqlite_runs_wal_with_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/sub/dir/x.db")  # folder is created
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_backends_are_what_they_say(engine: Engine, db_url: str) -> None:
    assert is_postgres(engine) == db_url.startswith("postgresql")
    assert isinstance(inspect(engine).get_table_names(), list)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/x", "unsupported"),
        ("postgresql+psycopg2://u@h/x", "psycopg"),
        ("not a url", "not valid"),
    ],
)
def test_bad_database_url(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_engine(url)


def test_bad_url_message_hides_password() -> None:
    with pytest.raises(ConfigError) as info:
        make_engine("mysql://root:hunter2@localhost/x")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("bad", [-1, UINT256_MAX + 1])
def test_uint256_refuses_out_of_range(db_url: str, bad: int) -> None:
    engine = make_engine(db_url)
    _Probe.__table__.create(engine)  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="out of range"), session_scope(engine) as s:
        s.add(_Probe(amount=bad))
    with Session(engine) as s:
        assert list(s.exec(select(_Probe))) == []
    engine.dispose()
