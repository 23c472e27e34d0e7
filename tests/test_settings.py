from __future__ import annotations

import pytest

from service.errors import ConfigError
from service.settings import load_settings


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
