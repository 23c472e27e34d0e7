"""Fixtures for the API: the real app over the embedded chain's data space and a real DB.

``client`` is FastAPI's TestClient (httpx) on ``create_app(context=...)``: the context
holds the ``space`` deployment (operator, auditor, providers, consumers registered) and
the ``engine`` database (SQLite, and PostgreSQL when configured). Nothing is mocked.
``sign_in`` runs the whole EIP-4361 flow with the account's key and returns headers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from service.api.context import ServiceContext, make_context
from service.api.main import create_app
from service.settings import Settings
from tests.space import Space

with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what is installed
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

SECRET = "test-secret-" + "x" * 40


def api_settings(**over: Any) -> Settings:
    base: dict[str, Any] = dict(
        env="test",
        jwt_secret=SecretStr(SECRET),
        rate_limit_per_s=0.0,
        role_cache_s=0.0,
        siwe_domain="tally.test",
        siwe_uri="https://tally.test",
    )
    base.update(over)
    return Settings(**base)


def make_client(space: Space, engine: Engine, **over: Any) -> tuple[TestClient, ServiceContext]:
    ctx = make_context(
        settings=api_settings(**over),
        engine=engine,
        chain=space.chain,
        contracts=space.contracts,
        operator=space.operator,
    )
    return TestClient(create_app(context=ctx)), ctx


@pytest.fixture
def ctx_client(
    space: Space, engine: Engine, tmp_path: Path
) -> Iterator[tuple[TestClient, ServiceContext]]:
    client, ctx = make_client(space, engine, data_dir=tmp_path)  # round files go there
    with client:
        yield client, ctx


@pytest.fixture
def client(ctx_client: tuple[TestClient, ServiceContext]) -> TestClient:
    return ctx_client[0]


@pytest.fixture
def ctx(ctx_client: tuple[TestClient, ServiceContext]) -> ServiceContext:
    return ctx_client[1]


def sign_message(account: LocalAccount, text: str) -> str:
    signed = Account.sign_message(encode_defunct(text=text), private_key=account.key)
    return "0x" + bytes(signed.signature).hex()


def get_token(client: TestClient, account: LocalAccount) -> str:
    r = client.post("/v1/auth/challenge", json={"address": account.address})
    assert r.status_code == 200, r.text
    message = r.json()["message"]
    r = client.post(
        "/v1/auth/token", json={"message": message, "signature": sign_message(account, message)}
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SignIn = Callable[[LocalAccount], dict[str, str]]


@pytest.fixture
def sign_in(client: TestClient) -> SignIn:
    def _sign_in(account: LocalAccount) -> dict[str, str]:
        return bearer(get_token(client, account))

    return _sign_in
