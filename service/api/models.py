"""SQL tables of the API: sign-in nonces, operator API keys, rate-limit buckets, rounds.

They live in the shared database, so every API worker sees the same nonces (a nonce
redeemed on one worker is spent for all of them), the same keys, the same rate-limit
buckets (on PostgreSQL) and the same rounds.
"""

from __future__ import annotations

from sqlalchemy import DDL, BigInteger, Column, Double, String, Text, event
from sqlmodel import Field, SQLModel


class AuthNonce(SQLModel, table=True):
    """A Sign-In with Ethereum challenge: single use, expiring, bound to one address."""

    __tablename__ = "api_auth_nonces"

    nonce: str = Field(sa_column=Column(String(64), primary_key=True))
    address: str = Field(sa_column=Column(String(42), nullable=False))
    issued_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    used_at: int | None = Field(default=None, sa_column=Column(BigInteger))


class ApiKey(SQLModel, table=True):
    """An operator's API key for machine-to-machine use; only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    key_id: str = Field(sa_column=Column(String(32), primary_key=True))
    key_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    address: str = Field(sa_column=Column(String(42), nullable=False, index=True))
    label: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked_at: int | None = Field(default=None, sa_column=Column(BigInteger))


class RateBucket(SQLModel, table=True):
    """One caller's token bucket, shared by every worker (PostgreSQL; see
    :class:`service.api.limits.SqlRateLimiter`). ``at`` is the database clock's epoch."""

    __tablename__ = "api_rate_buckets"

    key: str = Field(sa_column=Column(String(128), primary_key=True))
    tokens: float = Field(sa_column=Column(Double, nullable=False))
    at: float = Field(sa_column=Column(Double, nullable=False, index=True))


# UNLOGGED on PostgreSQL: no WAL, so a take's commit waits for no disk flush (measured
# 0.4 ms a take instead of 2.6 ms). After a database crash the table comes back empty,
# which only means every bucket starts full again.
event.listen(
    SQLModel.metadata.tables["api_rate_buckets"],
    "after_create",
    DDL("ALTER TABLE api_rate_buckets SET UNLOGGED").execute_if(  # type: ignore[no-untyped-call]
        dialect="postgresql"
    ),
)


class RoundDraft(SQLModel, table=True):
    """A round computed through the API (``POST /v1/rounds``): its inputs and its result.

    The inputs (period, checkpoint, canonical policy) determine the result exactly, so
    the statement, the claims and the proposal are recomputed from them on demand; the
    root and total are kept to check that recomputation and to list rounds cheaply.
    """

    __tablename__ = "api_round_drafts"

    round_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    period_start: int = Field(sa_column=Column(BigInteger, nullable=False))
    period_end: int = Field(sa_column=Column(BigInteger, nullable=False))
    checkpoint_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    checkpoint_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    policy: str = Field(sa_column=Column(Text, nullable=False))  # the document as posted (JSON)
    policy_hash: str = Field(sa_column=Column(String(66), nullable=False))
    payout_root: str = Field(sa_column=Column(String(66), nullable=False))
    total: str = Field(sa_column=Column(String(80), nullable=False))  # uint256, decimal
    payees: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_by: str = Field(sa_column=Column(String(42), nullable=False))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    proposed_tx: str | None = Field(default=None, sa_column=Column(String(66)))
