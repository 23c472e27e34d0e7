"""Process settings: one pydantic-settings class, environment prefix ``TALLY_``.

Per-network facts (RPC URL, chain id, confirmations, …) are not here: they live in
``chain-config/<network>.toml`` (see :mod:`service.chain.config`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import ConfigError

PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "dev-secret-not-for-production"}
)


class Settings(BaseSettings):
    """Everything a Tally process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="TALLY_", extra="ignore", frozen=True)

    env: Literal["dev", "test", "prod"] = "dev"
    data_dir: Path = Path(".tally")
    database_url: str = "sqlite:///.tally/tally.db"
    network: str = "embedded"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Signs API bearer tokens. The default is a placeholder, refused outside dev/test.
    jwt_secret: SecretStr = SecretStr("dev-secret-not-for-production")
    token_ttl_s: int = Field(default=900, gt=0, le=86_400)

    @model_validator(mode="after")
    def _no_placeholders_in_prod(self) -> Settings:
        if self.env == "prod" and self.jwt_secret.get_secret_value() in PLACEHOLDER_SECRETS:
            raise ValueError("TALLY_JWT_SECRET must be set to a real secret when TALLY_ENV=prod")
        if self.env == "prod" and len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("TALLY_JWT_SECRET must be at least 32 characters when TALLY_ENV=prod")
        return self


def load_settings() -> Settings:
    """Read settings from the environment; a bad value is a one-line ConfigError."""
    try:
        return Settings()
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        where = f"TALLY_{field.upper()}: " if field else ""
        raise ConfigError(f"{where}{msg}") from None


@cache
def get_settings() -> Settings:
    return load_settings()
