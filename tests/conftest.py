"""Shared fixtures: the embedded chain (snapshot per test), anvil, and both databases.

Databases: every DB-touching test runs on SQLite (a file in the test's tmp dir) and,
when ``TALLY_TEST_POSTGRES_URL`` is set, on PostgreSQL in a database created for this
run and dropped at its end (``TALLY_REQUIRE_POSTGRES=1`` turns "unreachable" into a
failure instead of a skip: CI sets both).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.devnode import Anvil
from service.db import create_schema, make_engine
from tests.nodes import running_anvil

# --- chains -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _embedded() -> Chain:
    return Chain.embedded()


@pytest.fixture
def chain(_embedded: Chain) -> Iterator[Chain]:
    """The embedded chain, rolled back to its state before the test when it ends."""
    snap = _embedded.snapshot()
    yield _embedded
    _embedded.revert(snap)


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    """A real anvil node on a free port for this test session, stopped at the end."""
    yield from running_anvil()


@pytest.fixture
def anvil_chain(anvil: Anvil) -> Iterator[Chain]:
    c = Chain.connect(rpc_network(anvil.url, chain_id=31337))
    snap = c.snapshot()
    yield c
    c.revert(snap)


# --- databases --------------------------------------------------------------------------


def _postgres_admin_url() -> str | None:
    return os.environ.get("TALLY_TEST_POSTGRES_URL") or None


@pytest.fixture(scope="session")
def _postgres_database() -> Iterator[str]:
    """A database of its own for this test run; dropped at the end."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        pytest.skip("TALLY_TEST_POSTGRES_URL not set")
    name = f"tally_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url, pool=False).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as err:  # unreachable server: skip locally, fail where it is required
        if os.environ.get("TALLY_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL unreachable: {type(err).__name__}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A database URL with an empty schema, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tally.db"
        return
    url: str = request.getfixturevalue("_postgres_database")
    yield url
    cleaner = make_engine(url, pool=False)
    with cleaner.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    cleaner.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url`` with every Tally table created."""
    eng = make_engine(db_url)
    create_schema(eng)
    yield eng
    eng.dispose()


# --- a deployed data space --------------------------------------------------------------


@pytest.fixture(scope="session")
def _space(_embedded: Chain) -> object:
    from tests.space import build_space

    return build_space(_embedded)


@pytest.fixture(scope="module")
def anvil_space(anvil: Anvil) -> Iterator[object]:
    """A data space deployed on the session's anvil (other processes can reach it), one per
    test module; the chain is reverted when the module ends."""
    from tests.space import build_space

    chain = Chain.connect(rpc_network(anvil.url, chain_id=31337))
    snap = chain.snapshot()
    yield build_space(chain)
    chain.revert(snap)


@pytest.fixture
def space(_space: object, _embedded: Chain) -> Iterator[object]:
    """Contracts deployed, operator/auditor/providers/consumers registered; reverted after."""
    snap = _embedded.snapshot()
    yield _space
    _embedded.revert(snap)
