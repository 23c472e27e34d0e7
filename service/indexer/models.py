"""Tables of the chain mirror: raw events, cursor, block hashes, reorgs, derived state.

Conventions: every hash and address is lower-case ``0x`` hex text; token amounts are
:class:`~service.db.types.Uint256`; chain ids and block numbers are 64-bit.

``chain_events`` is the mirror itself (one row per log of a deployment's contracts); the
derived tables are named ``chain_*`` too, so they never clash with the off-chain tables of
the evidence log or the settlement engine (``chain_rounds`` is what the vault says, not
what the engine computed).
Every derived table is a pure function of it: the handlers in
:mod:`service.indexer.handlers` fold raw events into them, and a reorg rollback (or
``tally index rebuild``) recomputes them from the raw rows that remain. Each derived
row names the emitting contract (``contract``) and the block of the event that last
wrote it (``block_number``), which is what a rollback uses to find what to undo.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from service.db.types import Uint256

HASH = 66  # 0x + 64 hex
ADDR = 42  # 0x + 40 hex


def _utcnow() -> datetime:
    return datetime.now(UTC)


# SQLite only auto-numbers an INTEGER PRIMARY KEY (a BIGINT one stays NULL).
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


def _uint(*, primary_key: bool = False, nullable: bool = False) -> Any:
    """A uint256 the contract does not bound (operator-chosen ids, sizes, deadlines)."""
    return Field(
        sa_column=Column(Uint256, primary_key=primary_key, nullable=nullable),
        default=None if nullable else ...,
    )


def _big(*, primary_key: bool = False, index: bool = False, nullable: bool = False) -> Any:
    return Field(
        sa_column=Column(BigInteger, primary_key=primary_key, index=index, nullable=nullable),
        default=None if nullable else ...,
    )


# --- the mirror and its bookkeeping -------------------------------------------------------


class ChainEvent(SQLModel, table=True):
    """One log of one of a deployment's contracts, decoded (``args``) from the ABI."""

    __tablename__ = "chain_events"
    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index", name="uq_chain_events_log"),
        Index("ix_chain_events_block", "chain_id", "block_number"),
        Index("ix_chain_events_subject", "chain_id", "address", "topic1"),
    )

    id: int | None = Field(default=None, sa_column=Column(_SERIAL, primary_key=True))
    chain_id: int = _big()
    block_number: int = _big()
    block_hash: str = Field(max_length=HASH)
    tx_hash: str = Field(max_length=HASH)
    tx_index: int
    log_index: int
    address: str = Field(max_length=ADDR)
    contract: str = Field(max_length=64)  # artifact name, e.g. SettlementVault
    event: str = Field(max_length=64)  # event name; "(unknown)" for a topic0 not in the ABI
    topic1: str | None = Field(default=None, max_length=HASH)  # first indexed topic, raw
    args: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class IndexerCursor(SQLModel, table=True):
    """The last block fully indexed, per (chain, deployment): number AND hash."""

    __tablename__ = "indexer_cursors"

    chain_id: int = _big(primary_key=True)
    deployment: str = Field(primary_key=True, max_length=64)
    network: str = Field(max_length=64)
    addresses: list[str] = Field(sa_column=Column(JSON, nullable=False))
    block_number: int = _big()
    block_hash: str = Field(max_length=HASH)
    updated_at: datetime = Field(
        default_factory=_utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class IndexedBlock(SQLModel, table=True):
    """Hashes of recently indexed blocks (range ends; every block near the head), kept so
    a reorg can be walked back to the exact common ancestor."""

    __tablename__ = "indexer_blocks"

    chain_id: int = _big(primary_key=True)
    deployment: str = Field(primary_key=True, max_length=64)
    block_number: int = _big(primary_key=True)
    block_hash: str = Field(max_length=HASH)


class IndexerReorg(SQLModel, table=True):
    """One reorg the indexer detected and rolled back."""

    __tablename__ = "indexer_reorgs"

    id: int | None = Field(default=None, sa_column=Column(_SERIAL, primary_key=True))
    chain_id: int = _big(index=True)
    deployment: str = Field(max_length=64)
    detected_at: datetime = Field(
        default_factory=_utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    old_block_number: int = _big()  # the cursor when the reorg was seen
    old_block_hash: str = Field(max_length=HASH)
    ancestor_block_number: int = _big()  # rolled back to here (-1: nothing survived)
    ancestor_block_hash: str | None = Field(default=None, max_length=HASH)
    depth: int  # blocks rolled back: old_block_number - ancestor_block_number
    events_removed: int
    # [[number, old hash], ...] of the orphaned blocks the indexer knew, ascending
    orphaned_blocks: list[list[Any]] = Field(sa_column=Column(JSON, nullable=False))


# --- derived state (ParticipantRegistry) --------------------------------------------------


class Participant(SQLModel, table=True):
    """A participant as the registry's events say (registered, updated, suspended, ...)."""

    __tablename__ = "chain_participants"

    chain_id: int = _big(primary_key=True)
    contract: str = Field(primary_key=True, max_length=ADDR)  # the registry
    account: str = Field(primary_key=True, max_length=ADDR)
    roles: int  # bitmask: 1 provider, 2 consumer, 4 service
    identity_hash: str = Field(max_length=HASH)
    metadata_uri: str = Field(sa_column=Column(Text, nullable=False))
    suspended: bool = False
    registered_block: int = _big()
    block_number: int = _big(index=True)  # block of the last event applied


class RoleMember(SQLModel, table=True):
    """A current AccessControl role holder (a row exists while the role is held)."""

    __tablename__ = "chain_role_members"

    chain_id: int = _big(primary_key=True)
    contract: str = Field(primary_key=True, max_length=ADDR)
    role: str = Field(primary_key=True, max_length=HASH)
    account: str = Field(primary_key=True, max_length=ADDR)
    role_name: str | None = Field(default=None, max_length=64)  # when the hash is a known role
    granted_by: str = Field(max_length=ADDR)
    tx_hash: str = Field(max_length=HASH)
    block_number: int = _big(index=True)


# --- derived state (EvidenceLedger) -------------------------------------------------------


class Checkpoint(SQLModel, table=True):
    """An anchored evidence-log checkpoint."""

    __tablename__ = "chain_checkpoints"

    chain_id: int = _big(primary_key=True)
    contract: str = Field(primary_key=True, max_length=ADDR)  # the ledger
    seq: int = _big(primary_key=True)
    tree_size: int = _uint()
    root_hash: str = Field(max_length=HASH)
    block_number: int = _big(index=True)
    block_hash: str = Field(max_length=HASH)
    tx_hash: str = Field(max_length=HASH)
    log_index: int


# --- derived state (SettlementVault) ------------------------------------------------------


class Deposit(SQLModel, table=True):
    """A deposit: ``payer`` paid ``amount`` into ``account``'s free balance."""

    __tablename__ = "chain_deposits"

    chain_id: int = _big(primary_key=True)
    tx_hash: str = Field(primary_key=True, max_length=HASH)
    log_index: int = Field(primary_key=True)
    contract: str = Field(max_length=ADDR, index=True)  # the vault
    account: str = Field(max_length=ADDR, index=True)  # credited
    payer: str = Field(max_length=ADDR, index=True)
    amount: int = _uint()
    block_number: int = _big(index=True)


class BalanceChange(SQLModel, table=True):
    """Every other vault event that moves (or reserves) an account's free balance:
    ``RoundDebited`` (a round took it), ``RoundRefunded`` (a cancel or sweep gave it back),
    ``WithdrawalRequested`` (``available_at`` set; amount 0 cancels), ``Withdrawn``."""

    __tablename__ = "chain_balance_changes"
    __table_args__ = (Index("ix_chain_balance_changes_account", "chain_id", "contract", "account"),)

    chain_id: int = _big(primary_key=True)
    tx_hash: str = Field(primary_key=True, max_length=HASH)
    log_index: int = Field(primary_key=True)
    contract: str = Field(max_length=ADDR)  # the vault
    event: str = Field(max_length=32)
    account: str = Field(max_length=ADDR)
    round_id: int | None = _uint(nullable=True)  # debits and refunds
    amount: int = _uint()
    available_at: int | None = _uint(nullable=True)  # withdrawal requests
    block_number: int = _big(index=True)


class VaultBalance(SQLModel, table=True):
    """An account's free balance on the vault (``balanceOf``) and its withdrawal request
    (``pendingWithdrawal``), folded from the deposit, debit, refund and withdrawal events."""

    __tablename__ = "chain_vault_balances"

    chain_id: int = _big(primary_key=True)
    contract: str = Field(primary_key=True, max_length=ADDR)  # the vault
    account: str = Field(primary_key=True, max_length=ADDR)
    balance: int = _uint()
    deposited: int = _uint()  # in all, by anyone for the account
    withdrawal_amount: int = _uint()  # 0: no request
    withdrawal_available_at: int = _uint()
    block_number: int = _big(index=True)  # block of the last event applied


class Round(SQLModel, table=True):
    """A settlement round's current state (status: proposed, disputed, cancelled, finalized,
    closed)."""

    __tablename__ = "chain_rounds"

    chain_id: int = _big(primary_key=True)
    contract: str = Field(primary_key=True, max_length=ADDR)  # the vault
    round_id: int = _uint(primary_key=True)
    payout_root: str = Field(max_length=HASH)
    total: int = _uint()
    evidence_seq: int = _big()
    policy_hash: str = Field(max_length=HASH)
    period_start: int = _uint()
    period_end: int = _uint()
    challenge_deadline: int = _uint()
    status: str = Field(max_length=16)
    challenger: str | None = Field(default=None, max_length=ADDR)  # the last one
    finding_hash: str | None = Field(default=None, max_length=HASH)  # its finding
    arbiter: str | None = Field(default=None, max_length=ADDR)  # who ruled last
    ruling_hash: str | None = Field(default=None, max_length=HASH)
    upheld: bool | None = None
    claimed_total: int = _uint()
    claim_count: int = 0
    swept_total: int = _uint()
    proposed_block: int = _big()
    proposed_tx: str = Field(max_length=HASH)
    block_number: int = _big(index=True)  # block of the last event applied


class RoundStatusChange(SQLModel, table=True):
    """Every round event that is a step of its life (proposed, disputed, ..., swept)."""

    __tablename__ = "chain_round_status_history"
    __table_args__ = (
        Index("ix_chain_round_status_history_round", "chain_id", "contract", "round_id"),
    )

    chain_id: int = _big(primary_key=True)
    tx_hash: str = Field(primary_key=True, max_length=HASH)
    log_index: int = Field(primary_key=True)
    contract: str = Field(max_length=ADDR)
    round_id: int = _uint()
    event: str = Field(max_length=32)
    status: str = Field(max_length=16)  # the round's status after the event
    actor: str | None = Field(default=None, max_length=ADDR)  # challenger / arbiter
    detail: str | None = Field(default=None, max_length=HASH)  # finding / ruling hash
    amount: int | None = _uint(nullable=True)  # swept
    block_number: int = _big(index=True)


class Claim(SQLModel, table=True):
    __tablename__ = "chain_claims"
    __table_args__ = (Index("ix_chain_claims_round", "chain_id", "contract", "round_id"),)

    chain_id: int = _big(primary_key=True)
    tx_hash: str = Field(primary_key=True, max_length=HASH)
    log_index: int = Field(primary_key=True)
    contract: str = Field(max_length=ADDR)  # the vault
    round_id: int = _uint()
    account: str = Field(max_length=ADDR, index=True)
    amount: int = _uint()
    block_number: int = _big(index=True)


INDEXER_TABLES: tuple[type[SQLModel], ...] = (
    ChainEvent,
    IndexerCursor,
    IndexedBlock,
    IndexerReorg,
    Participant,
    RoleMember,
    Checkpoint,
    Deposit,
    BalanceChange,
    VaultBalance,
    Round,
    RoundStatusChange,
    Claim,
)


def create_indexer_tables(engine: Engine) -> None:
    """Create the indexer's tables only (``service.db.create_schema`` creates them all,
    but imports every package of the service to find them)."""
    SQLModel.metadata.create_all(engine, tables=[m.__table__ for m in INDEXER_TABLES])  # type: ignore[attr-defined]


# Derived tables whose rows are one per event (deleted by block on rollback) and those
# that hold folded state (rebuilt per key from the remaining raw rows on rollback).
EVENT_TABLES: tuple[type[SQLModel], ...] = (
    Checkpoint,
    Deposit,
    BalanceChange,
    RoundStatusChange,
    Claim,
)
STATE_TABLES: tuple[type[SQLModel], ...] = (Participant, RoleMember, Round, VaultBalance)
__all__ = [
    "ADDR",
    "EVENT_TABLES",
    "HASH",
    "INDEXER_TABLES",
    "STATE_TABLES",
    "BalanceChange",
    "ChainEvent",
    "Checkpoint",
    "Claim",
    "Deposit",
    "IndexedBlock",
    "IndexerCursor",
    "IndexerReorg",
    "Participant",
    "RoleMember",
    "Round",
    "RoundStatusChange",
    "VaultBalance",
    "create_indexer_tables",
]
