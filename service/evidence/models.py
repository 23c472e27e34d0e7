"""SQL tables of the evidence log.

``log_entries`` holds every accepted entry (its canonical bytes) at its leaf index, with
a few columns copied out of the message so settlement can query them. The Merkle leaf
hashes the entry's leaf data: its commitment (``entry_commitments``, since T15) or, for
a legacy leaf without a commitment row, the canonical bytes themselves. ``agreements``
indexes Agreement entries by id. ``anchors`` records each checkpoint this service
anchored on chain. The tree itself lives in the tile tables of
:mod:`service.evidence.tiles`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db.types import Uint256


class LogEntry(SQLModel, table=True):
    """One leaf of the evidence log."""

    __tablename__ = "log_entries"
    __table_args__ = (
        # a consumer's nonce is used once per agreement (UsageReceipts only; NULLs differ)
        UniqueConstraint("agreement_id", "consumer", "nonce", name="uq_receipt_nonce"),
        Index("ix_log_entries_type_agreement", "entry_type", "agreement_id"),
    )

    leaf_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    entry_id: str = Field(sa_column=Column(String(66), nullable=False, unique=True))
    entry_type: str = Field(sa_column=Column(String(32), nullable=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    agreement_id: str | None = Field(default=None, sa_column=Column(String(66)))
    consumer: str | None = Field(default=None, sa_column=Column(String(42)))
    provider: str | None = Field(default=None, sa_column=Column(String(42)))
    units: int | None = Field(default=None, sa_column=Column(BigInteger))
    period_start: int | None = Field(default=None, sa_column=Column(BigInteger))
    period_end: int | None = Field(default=None, sa_column=Column(BigInteger))
    nonce: int | None = Field(default=None, sa_column=Column(BigInteger))


class EntryCommitment(SQLModel, table=True):
    """The salt and commitment leaf of an entry appended since T15 (no row: a legacy
    leaf, the canonical bytes; see :mod:`service.evidence.commitment`). A table of its
    own, so that an existing database gains it with ``create_all`` and keeps its rows."""

    __tablename__ = "entry_commitments"

    leaf_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AgreementRow(SQLModel, table=True):
    """An accepted Agreement, by id (an id is accepted once)."""

    __tablename__ = "agreements"

    agreement_id: str = Field(sa_column=Column(String(66), primary_key=True))
    asset_id: str = Field(sa_column=Column(String(66), nullable=False))
    consumer: str = Field(sa_column=Column(String(42), nullable=False, index=True))
    providers: str = Field(sa_column=Column(Text, nullable=False))  # comma-separated, ascending
    unit_price: int = Field(sa_column=Column(Uint256(), nullable=False))
    policy_hash: str = Field(sa_column=Column(String(66), nullable=False))
    valid_from: int = Field(sa_column=Column(BigInteger, nullable=False))
    valid_until: int = Field(sa_column=Column(BigInteger, nullable=False))
    entry_id: str = Field(sa_column=Column(String(66), nullable=False))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))

    @property
    def provider_list(self) -> list[str]:
        return self.providers.split(",")


class AnchorRow(SQLModel, table=True):
    """A checkpoint of the log anchored on the EvidenceLedger."""

    __tablename__ = "anchors"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root: str = Field(sa_column=Column(String(66), nullable=False))
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    contract: str = Field(sa_column=Column(String(42), nullable=False))
    tx_hash: str = Field(sa_column=Column(String(66), nullable=False))
    block_number: int = Field(sa_column=Column(BigInteger, nullable=False))


class LogBinding(SQLModel, table=True):
    """The one deployment (chain id + EvidenceLedger) this log database belongs to.

    Written once, by the first writer that knows the deployment (see
    :mod:`service.evidence.binding`); a single row, ``id`` = 1.
    """

    __tablename__ = "log_binding"

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    ledger: str = Field(sa_column=Column(String(42), nullable=False))
