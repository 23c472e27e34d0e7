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
MIN_SECRET_CHARS = 32


class Settings(BaseSettings):
    """Everything a Tally process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="TALLY_", extra="ignore", frozen=True)

    env: Literal["dev", "test", "prod"] = "dev"
    data_dir: Path = Path(".tally")
    database_url: str = "sqlite:///.tally/tally.db"
    network: str = "embedded"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Signs API bearer tokens. The default is a placeholder: `tally serve` refuses it on
    # every network but the embedded one, and TALLY_ENV=prod refuses it everywhere.
    jwt_secret: SecretStr = SecretStr("dev-secret-not-for-production")
    token_ttl_s: int = Field(default=900, gt=0, le=86_400)

    # --- HTTP API (tally serve) ---
    # Deployment file of the network; default chain-config/deployments/<network>.json.
    # The embedded network deploys a fresh contract set at every start instead.
    deployment_file: Path | None = None
    # Sign-In with Ethereum (EIP-4361): the domain and URI the signed message must name.
    siwe_domain: str = Field(default="localhost", min_length=1, max_length=255)
    siwe_uri: str = Field(default="http://localhost", min_length=1, max_length=2048)
    nonce_ttl_s: int = Field(default=300, gt=0, le=3_600)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_batch: int = Field(default=1_000, ge=1, le=100_000)
    # Batches a worker process appends at once; the rest wait their turn without a thread
    # (service.api.ingest.IngestGate).
    ingest_concurrency: int = Field(default=2, ge=1, le=64)
    page_max: int = Field(default=1_000, ge=1, le=100_000)
    # Per caller (token address, API key's address, else client IP), per worker process.
    rate_limit_per_s: float = Field(default=50.0, ge=0)  # 0 turns the limit off
    rate_limit_burst: int = Field(default=100, ge=1)
    # Seconds a looked-up role/status is reused before the registry is asked again.
    role_cache_s: float = Field(default=5.0, ge=0, le=3_600)
    # Background loops of `tally serve` (the CLI flags set these for the workers).
    anchor_every_s: float = Field(default=0.0, ge=0)  # 0: no anchoring loop
    index_follow: bool = False  # follow the chain into the SQL mirror

    # --- interconnection: witnessed checkpoints (T10) ---
    # The space's name in its checkpoint origin ``<space>/tally/<chain id>/<ledger>``
    # (a host name; default TALLY_SIWE_DOMAIN). Changing it changes the origin and the
    # note key's name: witnesses pin both.
    space_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9.:_-]*$"
    )
    # Witnesses whose cosignatures POST /v1/log/cosignatures accepts: tlog-cosignature/v1
    # vkeys (``name+keyid+base64``) separated by spaces, commas or newlines.
    witnesses: str = Field(default="", max_length=65_536)

    @model_validator(mode="after")
    def _no_placeholders_in_prod(self) -> Settings:
        if self.env == "prod" and self.jwt_secret.get_secret_value() in PLACEHOLDER_SECRETS:
            raise ValueError("TALLY_JWT_SECRET must be set to a real secret when TALLY_ENV=prod")
        if self.env == "prod" and len(self.jwt_secret.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(
                f"TALLY_JWT_SECRET must be at least {MIN_SECRET_CHARS} characters "
                "when TALLY_ENV=prod"
            )
        return self

    def check_token_secret(self, *, network: str, embedded: bool) -> None:
        """:class:`ConfigError` unless ``TALLY_JWT_SECRET`` is a real secret, on every
        network but the embedded one.

        Whoever knows the key can mint a token for any address, the operator's included.
        The embedded chain lives and dies with its process and its keys are the public dev
        mnemonic, so the placeholder is harmless there; anvil and consortium deployments
        (whatever ``TALLY_ENV`` says) need a key of their own. The CLI commands that sign
        no tokens do not call this.
        """
        if embedded:
            return
        secret = self.jwt_secret.get_secret_value()
        if secret in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"TALLY_JWT_SECRET must be a real secret of at least {MIN_SECRET_CHARS} "
                f"characters on network {network!r} (the placeholder lets anyone mint "
                "operator tokens), e.g. export TALLY_JWT_SECRET=$(python3 -c "
                "'import secrets; print(secrets.token_urlsafe(32))')"
            )


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
