"""SQL tables of the catalog: an index of the log's Offer entries, rebuilt from the log.

The log is the truth; these tables are derived and :func:`service.catalog.index.rebuild`
recreates them from ``log_entries`` (except ``catalog_terms`` rows of narrowed terms
documents, which are content-addressed documents clients register, not log entries).
They are written in the log's append transaction (:mod:`service.catalog.gate`), so the
catalog and the usage counters never lag the log.

- ``catalog_offers``: the latest version of each offer (what search returns), with
  ``search_body``: its title, description and keywords as lower-case tokens. On SQLite
  the FTS5 table ``catalog_fts`` indexes it; on PostgreSQL a GIN index on
  ``to_tsvector('simple', search_body)``.
- ``catalog_offer_versions``: every version (offer id, version, leaf).
- ``catalog_terms``: terms documents by SHA-256 (the offers' own and registered ones).
- ``catalog_agreement_terms``: the terms hash each AgreementV2 is under.
- ``catalog_usage``: units accepted per (agreement, quota window, window index);
  window 0 is the total.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import BigInteger, Boolean, Column, String, Text
from sqlmodel import Field, SQLModel

from service.db import table_of

__all__ = [
    "AgreementTermsRow",
    "OfferRow",
    "OfferVersionRow",
    "TermsRow",
    "UsageCounterRow",
]


class OfferRow(SQLModel, table=True):
    """The latest version of an offer."""

    __tablename__ = "catalog_offers"

    offer_id: str = Field(sa_column=Column(String(66), primary_key=True))
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    providers: str = Field(sa_column=Column(Text, nullable=False))  # comma-separated
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(sa_column=Column(Text, nullable=False))
    keywords: str = Field(sa_column=Column(Text, nullable=False))
    theme: str = Field(sa_column=Column(Text, nullable=False, index=True))
    license: str = Field(sa_column=Column(Text, nullable=False))
    formats: str = Field(sa_column=Column(Text, nullable=False))
    metadata_hash: str = Field(sa_column=Column(String(66), nullable=False))
    metadata_url: str = Field(sa_column=Column(Text, nullable=False))
    pricing: str = Field(sa_column=Column(Text, nullable=False))
    terms: str = Field(sa_column=Column(Text, nullable=False))
    terms_hash: str = Field(sa_column=Column(String(66), nullable=False))
    valid_from: int = Field(sa_column=Column(BigInteger, nullable=False))
    valid_until: int = Field(sa_column=Column(BigInteger, nullable=False))
    withdrawn: bool = Field(sa_column=Column(Boolean, nullable=False))
    entry_id: str = Field(sa_column=Column(String(66), nullable=False))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    search_body: str = Field(sa_column=Column(Text, nullable=False))


class OfferVersionRow(SQLModel, table=True):
    """One version of an offer (or its withdrawal, ``withdrawal`` true)."""

    __tablename__ = "catalog_offer_versions"

    offer_id: str = Field(sa_column=Column(String(66), primary_key=True))
    version: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    withdrawal: bool = Field(sa_column=Column(Boolean, primary_key=True))
    entry_id: str = Field(sa_column=Column(String(66), nullable=False))
    leaf_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    terms_hash: str | None = Field(default=None, sa_column=Column(String(66)))
    valid_from: int | None = Field(default=None, sa_column=Column(BigInteger))
    valid_until: int | None = Field(default=None, sa_column=Column(BigInteger))


class TermsRow(SQLModel, table=True):
    """A canonical terms document by its SHA-256."""

    __tablename__ = "catalog_terms"

    terms_hash: str = Field(sa_column=Column(String(66), primary_key=True))
    document: str = Field(sa_column=Column(Text, nullable=False))


class AgreementTermsRow(SQLModel, table=True):
    """The terms an AgreementV2 is under."""

    __tablename__ = "catalog_agreement_terms"

    agreement_id: str = Field(sa_column=Column(String(66), primary_key=True))
    terms_hash: str = Field(sa_column=Column(String(66), nullable=False))


class UsageCounterRow(SQLModel, table=True):
    """Units accepted under an agreement in one quota window (window 0: in total)."""

    __tablename__ = "catalog_usage"

    agreement_id: str = Field(sa_column=Column(String(66), primary_key=True))
    window: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    units: int = Field(sa_column=Column(BigInteger, nullable=False))


_offers = table_of(OfferRow)


def _ddl(statement: str, dialect: str) -> Any:
    return sa.DDL(statement).execute_if(dialect=dialect)  # type: ignore[no-untyped-call]


sa.event.listen(
    _offers,
    "after_create",
    _ddl(
        "CREATE VIRTUAL TABLE IF NOT EXISTS catalog_fts USING fts5("
        "offer_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 0')",
        "sqlite",
    ),
)
sa.event.listen(
    _offers,
    "after_create",
    _ddl(
        "CREATE INDEX IF NOT EXISTS ix_catalog_offers_search ON catalog_offers "
        "USING gin (to_tsvector('simple', search_body))",
        "postgresql",
    ),
)
sa.event.listen(_offers, "before_drop", _ddl("DROP TABLE IF EXISTS catalog_fts", "sqlite"))
