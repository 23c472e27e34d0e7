"""The catalog's SQL index: write an offer version, search, read, rebuild from the log.

Search (:func:`search`) gives the same results on SQLite and PostgreSQL because both
see the same tokens: :func:`tokens` lower-cases the title, description and keywords and
splits them into runs of letters and digits; those tokens, joined by spaces, are the
``search_body`` that FTS5 (``unicode61``, diacritics kept) and ``to_tsvector('simple')``
index, and a query is tokenized the same way. Every query token must match (AND) as a
prefix of an indexed token (FTS5 ``"tok"*``, tsquery ``tok:*``). Results are the
offers' latest versions, not withdrawn, newest leaf first, 20 a page.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Session, col, select

from service.catalog.models import (
    AgreementTermsRow,
    OfferRow,
    OfferVersionRow,
    TermsRow,
    UsageCounterRow,
)
from service.errors import OfferNotFound
from service.evidence.entries import MAX_OFFER_DOCUMENT, Offer, decode_entry

__all__ = [
    "PAGE_SIZE",
    "SearchPage",
    "get_offer",
    "offer_row",
    "rebuild",
    "register_terms",
    "search",
    "tokens",
    "write_offer",
]

PAGE_SIZE: Final = 20
MAX_QUERY_TOKENS: Final = 16
_TOKEN: Final = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """Lower-case runs of letters and digits (the index's and the queries' tokens)."""
    return _TOKEN.findall(text.lower())


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def offer_row(
    offer: Offer, *, entry_id: str, leaf_index: int, terms_hash: str, withdrawn: bool = False
) -> OfferRow:
    """The ``catalog_offers`` row of an offer version."""
    body = " ".join(tokens(" ".join((offer.title, offer.description, offer.keywords))))
    return OfferRow(
        offer_id=_hex(offer.offerId),
        version=offer.version,
        providers=",".join(offer.providers),
        title=offer.title,
        description=offer.description,
        keywords=offer.keywords,
        theme=offer.theme,
        license=offer.license,
        formats=offer.formats,
        metadata_hash=_hex(offer.metadataHash),
        metadata_url=offer.metadataUrl,
        pricing=offer.pricing,
        terms=offer.terms,
        terms_hash=terms_hash,
        valid_from=offer.validFrom,
        valid_until=offer.validUntil,
        withdrawn=withdrawn,
        entry_id=entry_id,
        leaf_index=leaf_index,
        search_body=body,
    )


def write_offer(session: Session, row: OfferRow) -> None:
    """Insert or replace the latest-version row of an offer (and its FTS5 row)."""
    session.execute(sa.delete(OfferRow).where(col(OfferRow.offer_id) == row.offer_id))
    session.execute(sa.insert(OfferRow), [row.model_dump()])
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sa.text("DELETE FROM catalog_fts WHERE offer_id = :o"), {"o": row.offer_id})
        session.execute(
            sa.text("INSERT INTO catalog_fts (offer_id, body) VALUES (:o, :b)"),
            {"o": row.offer_id, "b": row.search_body},
        )


@dataclass(frozen=True)
class SearchPage:
    """One page of search results and the total number of matches."""

    offers: list[OfferRow]
    total: int
    page: int
    page_size: int


def search(
    *,
    session: Session,
    q: str | None = None,
    theme: str | None = None,
    provider: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> SearchPage:
    """Offers matching all of ``q``'s tokens, ``theme`` exactly, and ``provider``."""
    query = select(OfferRow).where(col(OfferRow.withdrawn).is_(False))
    words = tokens(q or "")[:MAX_QUERY_TOKENS]
    if words:
        if session.get_bind().dialect.name == "postgresql":
            tsquery = " & ".join(f"{w}:*" for w in words)
            query = query.where(
                sa.func.to_tsvector(sa.literal_column("'simple'"), col(OfferRow.search_body)).op(
                    "@@"
                )(sa.func.to_tsquery(sa.literal_column("'simple'"), tsquery))
            )
        else:
            match = " AND ".join(f'"{w}"*' for w in words)
            ids = sa.text("SELECT offer_id FROM catalog_fts WHERE catalog_fts MATCH :m").bindparams(
                m=match
            )
            query = query.where(col(OfferRow.offer_id).in_(ids.columns(sa.column("offer_id"))))
    if theme:
        query = query.where(col(OfferRow.theme) == theme)
    if provider:
        query = query.where(col(OfferRow.providers).contains(provider))
    total = session.exec(select(sa.func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(OfferRow.leaf_index).desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    return SearchPage(list(rows), int(total), page, page_size)


def get_offer(*, session: Session, offer_id: str) -> tuple[OfferRow, list[OfferVersionRow]]:
    """An offer's latest version and every version (and withdrawal), oldest first."""
    row = session.get(OfferRow, offer_id.lower())
    if row is None:
        raise OfferNotFound(f"the catalog has no offer {offer_id}")
    versions = session.exec(
        select(OfferVersionRow)
        .where(col(OfferVersionRow.offer_id) == row.offer_id)
        .order_by(col(OfferVersionRow.leaf_index).asc())
    ).all()
    return row, list(versions)


def all_offers(*, session: Session, include_withdrawn: bool = False) -> list[OfferRow]:
    """Every offer's latest version, newest first (the DCAT export's datasets)."""
    query = select(OfferRow)
    if not include_withdrawn:
        query = query.where(col(OfferRow.withdrawn).is_(False))
    return list(session.exec(query.order_by(col(OfferRow.leaf_index).desc())).all())


def rebuild(*, session: Session) -> int:
    """Recreate the catalog tables from the log (the log is the truth); returns the
    number of entries replayed. Registered narrowing documents in ``catalog_terms`` are
    kept (they are not log entries). The caller commits."""
    from service.catalog.gate import TermsGate  # the gate writes what ingest writes
    from service.evidence.models import LogEntry

    for table in (OfferRow, OfferVersionRow, AgreementTermsRow, UsageCounterRow):
        session.execute(sa.delete(table))
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sa.text("DELETE FROM catalog_fts"))
    kinds = ("Offer", "OfferWithdrawal", "AgreementV2", "UsageReceipt")
    rows = session.exec(
        select(LogEntry.leaf_index, LogEntry.entry_id, LogEntry.data)
        .where(col(LogEntry.entry_type).in_(kinds))
        .order_by(col(LogEntry.leaf_index).asc())
    ).all()
    gate = TermsGate(session, None, [])
    count = 0
    for index, eid, data in rows:
        signed = decode_entry(data)
        gate.prefetch([signed])
        gate.remember(signed, eid, int(index))
        count += 1
    gate.flush()
    return count


def terms_document(*, session: Session, terms_hash: str) -> str | None:
    """The canonical terms document with this SHA-256, if the catalog holds it."""
    row = session.get(TermsRow, terms_hash.lower())
    return None if row is None else row.document


def offer_json(row: OfferRow) -> dict[str, Any]:
    """An offer row as the API returns it."""
    return {
        "offerId": row.offer_id,
        "version": row.version,
        "providers": row.providers.split(","),
        "title": row.title,
        "description": row.description,
        "keywords": [k for k in row.keywords.split(",") if k],
        "theme": row.theme,
        "license": row.license,
        "formats": [f for f in row.formats.split(",") if f],
        "metadataHash": row.metadata_hash,
        "metadataUrl": row.metadata_url,
        "pricing": row.pricing,
        "terms": row.terms,
        "termsHash": row.terms_hash,
        "validFrom": row.valid_from,
        "validUntil": row.valid_until,
        "withdrawn": row.withdrawn,
        "entryId": row.entry_id,
        "leafIndex": row.leaf_index,
    }


def register_terms(*, session: Session, document: dict[str, Any]) -> tuple[str, str]:
    """Store a terms document by its SHA-256 after checking it against the profile;
    returns (``0x`` hash, canonical text). Idempotent; commits."""
    from service.catalog.canonical import canonical_text
    from service.catalog.terms import parse_terms
    from service.errors import TermsUnsupported

    try:
        text = canonical_text(document)
    except ValueError as exc:
        raise TermsUnsupported(f"terms: {exc}") from None
    if len(text.encode("utf-8")) > MAX_OFFER_DOCUMENT:
        raise TermsUnsupported(f"terms: at most {MAX_OFFER_DOCUMENT} bytes")
    parse_terms(text)
    digest = "0x" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    if session.get(TermsRow, digest) is None:
        session.add(TermsRow(terms_hash=digest, document=text))
        try:
            session.commit()
        except sa.exc.IntegrityError:  # registered concurrently: the same document
            session.rollback()
    return digest, text
