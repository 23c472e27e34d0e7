from __future__ import annotations

import pytest
from pydantic import SecretStr

from service.errors import ConfigError
from service.settings import PLACEHOLDER_SECRETS, Settings, load_settings


def test_defaults_are_dev_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TALLY_ENV", "TALLY_DATABASE_URL", "TALLY_JWT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.env == "dev" and s.database_url.startswith("sqlite:///")


def test_prod_refuses_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_ENV", "prod")
    monkeypatch.delenv("TALLY_JWT_SECRET", raising=False)
    with pytest.raises(ConfigError, match="TALLY_JWT_SECRET"):
        load_settings()
    monkeypatch.setenv("TALLY_JWT_SECRET", "change-me")
    with pytest.raises(ConfigError, match="real secret"):
        load_settings()


def test_prod_accepts_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_ENV", "prod")
    monkeypatch.setenv("TALLY_JWT_SECRET", "q" * 40)
    s = load_settings()
    assert s.jwt_secret.get_secret_value() == "q" * 40
    assert "q" * 40 not in repr(s)  # secrets never reach a log line


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_ENV", "staging")
    with pytest.raises(ConfigError, match="TALLY_ENV"):
        load_settings()


def test_placeholder_token_secret_is_refused_off_the_embedded_network() -> None:
    default = Settings.model_fields["jwt_secret"].default
    placeholder = Settings(env="dev", jwt_secret=default)  # dev: the validator lets it pass
    for network in ("anvil", "consortium"):
        with pytest.raises(ConfigError, match="TALLY_JWT_SECRET must be a real secret"):
            placeholder.check_token_secret(network=network, embedded=False)
    short = Settings(env="test", jwt_secret=SecretStr("x" * 31))
    with pytest.raises(ConfigError, match="at least 32 characters on network 'anvil'"):
        short.check_token_secret(network="anvil", embedded=False)
    for secret in PLACEHOLDER_SECRETS:
        with pytest.raises(ConfigError):
            Settings(jwt_secret=SecretStr(secret)).check_token_secret(
                network="anvil", embedded=False
            )
    placeholder.check_token_secret(network="embedded", embedded=True)  # dies with its process
    Settings(jwt_secret=SecretStr("k" * 32)).check_token_secret(network="anvil", embedded=False)


def test_refusal_does_not_print_the_secret() -> None:
    with pytest.raises(ConfigError) as err:
        Settings(jwt_secret=SecretStr("s3cr3t-but-short")).check_token_secret(
            network="anvil", embedded=False
        )
    assert "s3cr3t" not in str(err.value)
