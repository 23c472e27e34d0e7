"""The demo talks to the HTTP API in-process: the same app `tally serve` runs, driven
through FastAPI's TestClient (real HTTP requests over ASGI, no socket), so the embedded
chain can be shared with the API without a second process."""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from service.api.context import make_context
from service.api.main import create_app
from service.chain.client import Chain
from service.chain.deploy import TallyContracts
from service.errors import TallyError
from service.evidence.entries import SignedEntry
from service.settings import Settings


class ApiError(TallyError):
    """The API answered a demo request with an error."""

    code = "demo_api_error"


class InProcessApi:
    """One API app over the demo's chain, contracts and database."""

    def __init__(
        self,
        *,
        chain: Chain,
        engine: Engine,
        contracts: TallyContracts,
        operator: LocalAccount,
        data_dir: Path,
    ) -> None:
        settings = Settings(
            env="dev",
            data_dir=data_dir,
            jwt_secret=SecretStr(secrets.token_hex(32)),  # this process only
            rate_limit_per_s=0.0,
        )
        ctx = make_context(
            settings=settings, engine=engine, chain=chain, contracts=contracts, operator=operator
        )
        with warnings.catch_warnings():  # imported here, not on every command's path
            warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
            from fastapi.testclient import TestClient
        self._client = TestClient(create_app(context=ctx))
        self._client.__enter__()
        self._headers: dict[str, str] = {}

    def close(self) -> None:
        self._client.__exit__(None, None, None)

    def _ok(self, response: Any) -> Any:
        if response.status_code >= 400:
            error = response.json().get("error", {})
            raise ApiError(
                f"API {response.status_code}: {error.get('code')}: {error.get('message')}"
            )
        return response.json()

    def sign_in(self, account: LocalAccount) -> None:
        """Sign-In with Ethereum: challenge, personal_sign, bearer token."""
        message = self._ok(
            self._client.post("/v1/auth/challenge", json={"address": account.address})
        )["message"]
        signed = Account.sign_message(encode_defunct(text=message), private_key=account.key)
        token = self._ok(
            self._client.post(
                "/v1/auth/token",
                json={"message": message, "signature": "0x" + bytes(signed.signature).hex()},
            )
        )["access_token"]
        self._headers = {"Authorization": f"Bearer {token}"}

    def post_evidence(self, batch: list[SignedEntry]) -> dict[str, Any]:
        """POST /v1/evidence; returns the batch result (per-item results)."""
        body = {"entries": [e.to_json() for e in batch]}
        result: dict[str, Any] = self._ok(
            self._client.post("/v1/evidence", json=body, headers=self._headers)
        )
        return result
