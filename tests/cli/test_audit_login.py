"""Sign-In with Ethereum from the CLI (service.audit.login): an auditor's key gets a token
that reads the full entries; any other key is one readable line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from service.audit.login import audit_key, sign_in
from service.audit.sources import ApiSource
from service.chain.config import save_deployment
from service.cli import app
from service.db import create_schema, make_engine
from service.errors import ConfigError, LogUnavailable, RoleRequired
from tests.audit.http import serve_api
from tests.evidence.test_log import agreement, ingest, receipt
from tests.space import Space, build_space

runner = CliRunner()
KEY_ENV = "TALLY_TEST_LOGIN_KEY"


def _log(space: Space, tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path}/login.db")
    create_schema(engine)
    assert all(r.ok for r in ingest(engine, space, [agreement(space), receipt(space, 1)]))  # type: ignore[attr-defined]
    return engine


def _hex_key(acct: object) -> str:
    return "0x" + bytes(acct.key).hex()  # type: ignore[attr-defined]


def test_auditor_and_operator_keys_read_full_entries(space: Space, tmp_path: Path) -> None:
    engine = _log(space, tmp_path)
    with serve_api(space, engine) as api:
        for who in (space.auditor, space.operator):
            token = sign_in(api, who)
            with ApiSource(api, token=token) as source:
                assert [i for i, _ in source.entries(size=2)] == [0, 1]
        r = httpx.get(f"{api}/v1/evidence")  # no token: the entries are not public
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthenticated")
        with ApiSource(api) as anonymous, pytest.raises(LogUnavailable) as refused:
            list(anonymous.entries(size=2))
        assert "HTTP 401 unauthenticated: sign in first" in refused.value.message
    engine.dispose()


def test_key_without_the_auditor_role_is_one_line(space: Space, tmp_path: Path) -> None:
    engine = _log(space, tmp_path)
    with serve_api(space, engine) as api:
        with pytest.raises(RoleRequired) as provider:
            sign_in(api, space.providers[0])
        assert "holds no auditor role" in provider.value.message
        assert space.providers[0].address in provider.value.message
        assert "provider" in provider.value.message  # the roles it does hold
        with pytest.raises(RoleRequired) as outsider:  # not even registered: refused sign-in
            sign_in(api, space.outsider)
        assert "not_a_participant" in outsider.value.message
        for err in (provider.value, outsider.value):
            assert "\n" not in err.message
    engine.dispose()


def test_audit_key_comes_from_the_env_var_or_the_network(
    space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, _hex_key(space.auditor))
    assert audit_key(None, KEY_ENV).address == space.auditor.address
    monkeypatch.setenv(KEY_ENV, "not a key")
    with pytest.raises(ConfigError, match="is not a valid private key"):
        audit_key(None, KEY_ENV)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match="holds no private key"):
        audit_key(None, KEY_ENV)
    assert audit_key(space.chain, None).address == space.operator.address  # the dev key


def test_cli_audit_log_with_a_provider_key_is_one_error_line(
    anvil_space: Space, tmp_path: Path
) -> None:
    space = build_space(anvil_space.chain)
    engine = _log(space, tmp_path)
    deployment = tmp_path / "deployment.json"
    save_deployment(space.contracts.deployment, deployment)
    rpc = space.chain.network.rpc_url or ""
    with serve_api(space, engine) as api:
        done = runner.invoke(
            app,
            ["audit", "log", "--rpc", rpc, "--deployment", str(deployment), "--api", api,
             "--key-env", KEY_ENV],
            env={"COLUMNS": "200", KEY_ENV: _hex_key(space.providers[2])},
        )  # fmt: skip
    assert done.exit_code == 1
    assert isinstance(done.exception, RoleRequired)
    assert "holds no auditor role" in done.exception.message
    engine.dispose()
