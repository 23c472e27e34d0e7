"""The terms gate: the catalog's ingest hook, run inside the log's append transaction.

:func:`service.evidence.log.append_entries` calls it for every entry that passed the
log's own checks, while it holds the log's state-row lock (``SELECT … FOR UPDATE`` on
PostgreSQL, the write lock on SQLite), so every appender, in every worker process, sees
the counters the previous one committed: quota accounting is exact under concurrency.

- ``Offer``: providers active with the provider role; a new version must be higher than
  the latest of its offer id and keep its providers; terms must parse
  (:func:`service.catalog.terms.parse_terms`) and pricing too (``parse_pricing`` of
  :mod:`service.catalog.pricing` where that module exists).
- ``OfferWithdrawal``: names the offer's latest version and its providers.
- ``AgreementV2`` naming an offer: the version exists, the offer is not withdrawn, the
  providers are the offer's, the validity lies in the offer's period; ``termsHash`` is
  the offer's terms or a registered document that narrows them
  (:func:`service.catalog.terms.check_narrows`). Without an offer, a non-zero
  ``termsHash`` must name a registered document.
- ``UsageReceipt`` under an agreement with terms: :func:`service.catalog.terms.evaluate`
  against the counters (``quota_exceeded`` / ``agreement_not_valid`` /
  ``purpose_not_permitted``); accepted receipts add their units.

A rejected entry changes nothing: counters and catalog rows change only in
:meth:`TermsGate.remember` (called for accepted entries) and reach the database in
:meth:`TermsGate.flush`, in the same transaction as the leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from service.catalog.index import offer_row, write_offer
from service.catalog.models import (
    AgreementTermsRow,
    OfferRow,
    OfferVersionRow,
    TermsRow,
    UsageCounterRow,
)
from service.catalog.pricing import canonical_pricing_bytes, parse_pricing
from service.catalog.terms import (
    Terms,
    check_narrows,
    evaluate_receipt,
    parse_terms,
    window_index,
    windows,
)
from service.db import table_of
from service.errors import (
    OfferInvalid,
    ParticipantSuspended,
    TermsNotNarrower,
    UnknownOffer,
    UnknownParticipant,
    UnknownTerms,
    WrongRole,
)
from service.evidence.directory import PROVIDER, Directory
from service.evidence.entries import (
    ZERO_BYTES32,
    AgreementV2,
    Offer,
    OfferWithdrawal,
    SignedEntry,
    UsageReceipt,
)

__all__ = ["TermsGate", "terms_hash_of"]

_Key = tuple[str, int, int]  # agreement id, window, window index


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def terms_hash_of(text: str) -> str:
    """``0x`` SHA-256 of a canonical terms document's UTF-8 bytes."""
    return _hex(hashlib.sha256(text.encode("utf-8")).digest())


@lru_cache(maxsize=1024)
def _parsed(text: str) -> Terms:
    return parse_terms(text)


def _check_pricing(text: str) -> None:
    """The billing model's parser accepts the pricing and it is in its canonical form."""
    try:
        model = parse_pricing(text)
    except ValueError as exc:
        raise OfferInvalid(str(exc)) from None
    canonical = canonical_pricing_bytes(model).decode("utf-8")
    if canonical != text:
        raise OfferInvalid(f"pricing is not in its canonical form: {canonical}")


class TermsGate:
    """Catalog and usage-terms checks of one append batch (see the module docstring)."""

    def __init__(
        self, session: Session, directory: Directory | None, pending: Sequence[SignedEntry]
    ) -> None:
        self._session = session
        self._directory = directory
        self._offers: dict[str, OfferRow | None] = {}  # offer id -> latest (None: unknown)
        self._versions: dict[tuple[str, int], OfferVersionRow | None] = {}
        self._agreement_terms: dict[str, str | None] = {}  # agreement id -> terms hash
        self._documents: dict[str, str | None] = {}  # terms hash -> document
        self._counters: dict[_Key, int] = {}
        self._stored: set[_Key] = set()
        self._dirty: set[_Key] = set()
        self._new_offers: dict[str, OfferRow] = {}
        self._new_versions: list[OfferVersionRow] = []
        self._new_agreements: list[AgreementTermsRow] = []
        self._new_documents: dict[str, str] = {}
        self.prefetch(pending)

    # --- reads (cached for the batch) --------------------------------------------------

    def prefetch(self, pending: Sequence[SignedEntry]) -> None:
        """Read the terms and counters of ``pending``'s receipts in a few queries."""
        ids = {
            _hex(s.entry.agreementId)
            for s in pending
            if isinstance(s.entry, UsageReceipt)
            and _hex(s.entry.agreementId) not in self._agreement_terms
        }
        if not ids:
            return
        found = dict(
            self._session.exec(
                select(AgreementTermsRow.agreement_id, AgreementTermsRow.terms_hash).where(
                    col(AgreementTermsRow.agreement_id).in_(ids)
                )
            ).all()
        )
        for aid in ids:
            self._agreement_terms.setdefault(aid, found.get(aid))
        with_terms = {aid for aid in ids if found.get(aid)}
        if not with_terms:
            return
        for row in self._session.exec(
            select(UsageCounterRow).where(col(UsageCounterRow.agreement_id).in_(with_terms))
        ):
            key = (row.agreement_id, row.window, row.idx)
            self._counters[key] = row.units
            self._stored.add(key)

    def _offer(self, offer_id: str) -> OfferRow | None:
        if offer_id not in self._offers:
            self._offers[offer_id] = self._session.get(OfferRow, offer_id)
        return self._offers[offer_id]

    def _version(self, offer_id: str, version: int) -> OfferVersionRow | None:
        key = (offer_id, version)
        if key not in self._versions:
            self._versions[key] = self._session.get(OfferVersionRow, (offer_id, version, False))
        return self._versions[key]

    def _document(self, terms_hash: str) -> str | None:
        if terms_hash not in self._documents:
            row = self._session.get(TermsRow, terms_hash)
            self._documents[terms_hash] = None if row is None else row.document
        return self._documents[terms_hash]

    def _terms_of(self, agreement_id: str) -> Terms | None:
        if agreement_id not in self._agreement_terms:
            row = self._session.get(AgreementTermsRow, agreement_id)
            self._agreement_terms[agreement_id] = None if row is None else row.terms_hash
        terms_hash = self._agreement_terms[agreement_id]
        if terms_hash is None:
            return None
        document = self._document(terms_hash)
        if document is None:  # cannot happen: the gate stored it with the agreement
            raise UnknownTerms(f"terms {terms_hash} of agreement {agreement_id} are missing")
        return _parsed(document)

    def _counter(self, key: _Key) -> int:
        if key not in self._counters:
            row = self._session.get(UsageCounterRow, key)
            if row is not None:
                self._stored.add(key)
            self._counters[key] = 0 if row is None else row.units
        return self._counters[key]

    # --- checks ------------------------------------------------------------------------

    def _provider(self, address: str) -> None:
        if self._directory is None:
            return
        party = self._directory.party(address)
        if not party.registered:
            raise UnknownParticipant(f"provider {address} is not registered")
        if not party.active:
            raise ParticipantSuspended(f"provider {address} is suspended")
        if not party.roles & PROVIDER:
            raise WrongRole(f"provider {address} lacks the provider role")

    def check(self, signed: SignedEntry) -> None:
        """Raise an :class:`~service.errors.InvalidInput` if ``signed`` breaks the
        catalog or its terms; change nothing."""
        e = signed.entry
        if isinstance(e, Offer):
            self._check_offer(e)
        elif isinstance(e, OfferWithdrawal):
            self._check_withdrawal(e)
        elif isinstance(e, AgreementV2):
            self._agreement_terms_hash(e)
        elif isinstance(e, UsageReceipt):
            self._check_receipt(e)

    def _check_offer(self, e: Offer) -> None:
        for p in e.providers:
            self._provider(p)
        latest = self._offer(_hex(e.offerId))
        if latest is not None:
            if e.version <= latest.version:
                raise OfferInvalid(
                    f"offer {_hex(e.offerId)} is at version {latest.version}: a new version "
                    f"must be higher, got {e.version}"
                )
            if latest.providers != ",".join(e.providers):
                raise OfferInvalid("a new version of an offer keeps its providers")
        parse_terms(e.terms)
        _check_pricing(e.pricing)

    def _check_withdrawal(self, e: OfferWithdrawal) -> None:
        latest = self._offer(_hex(e.offerId))
        if latest is None:
            raise UnknownOffer(f"offer {_hex(e.offerId)} is not in the catalog")
        if latest.withdrawn:
            raise OfferInvalid(f"offer {latest.offer_id} is already withdrawn")
        if e.version != latest.version:
            raise OfferInvalid(
                f"a withdrawal names the offer's latest version {latest.version}, not {e.version}"
            )
        if latest.providers != ",".join(e.providers):
            raise OfferInvalid("a withdrawal is signed by the offer's providers")

    def _agreement_terms_hash(self, e: AgreementV2) -> str | None:
        """The terms hash the agreement is under (None: no terms), checked."""
        terms_hash = _hex(e.termsHash)
        if e.offerId == ZERO_BYTES32:
            if e.termsHash == ZERO_BYTES32:
                return None
            document = self._document(terms_hash)
            if document is None:
                raise UnknownTerms(
                    f"terms {terms_hash} are not registered (POST /v1/catalog/terms first)"
                )
            _parsed(document)
            return terms_hash
        offer_id = _hex(e.offerId)
        version = self._version(offer_id, e.offerVersion)
        latest = self._offer(offer_id)
        if version is None or latest is None:
            raise UnknownOffer(f"offer {offer_id} version {e.offerVersion} is not in the log")
        if latest.withdrawn:
            raise UnknownOffer(f"offer {offer_id} is withdrawn")
        if latest.providers != ",".join(e.providers):
            raise OfferInvalid("an agreement under an offer has the offer's providers")
        assert version.valid_from is not None and version.valid_until is not None
        if e.validFrom < version.valid_from or e.validUntil > version.valid_until:
            raise OfferInvalid(
                f"the agreement's validity [{e.validFrom}, {e.validUntil}) lies outside the "
                f"offer's [{version.valid_from}, {version.valid_until})"
            )
        if e.termsHash == ZERO_BYTES32:
            raise TermsNotNarrower("an agreement under an offer names its terms (termsHash)")
        if terms_hash == version.terms_hash:
            return terms_hash
        document = self._document(terms_hash)
        if document is None:
            raise UnknownTerms(
                f"termsHash {terms_hash} is neither the offer's terms nor a registered "
                "narrowing (POST /v1/catalog/terms first)"
            )
        assert version.terms_hash is not None
        offer_document = self._document(version.terms_hash)
        assert offer_document is not None
        check_narrows(_parsed(offer_document), _parsed(document))
        return terms_hash

    def _keys(self, terms: Terms, e: UsageReceipt) -> list[tuple[int, _Key]]:
        aid = _hex(e.agreementId)
        return [(w, (aid, w, window_index(w, e.periodStart))) for w in windows(terms)]

    def _check_receipt(self, e: UsageReceipt) -> None:
        terms = self._terms_of(_hex(e.agreementId))
        if terms is None:
            return
        used = {w: self._counter(key) for w, key in self._keys(terms, e)}
        evaluate_receipt(terms, e, used)

    # --- effects -----------------------------------------------------------------------

    def remember(self, signed: SignedEntry, entry_id: str, leaf_index: int) -> None:
        """Record an accepted entry's effect on the catalog and the counters."""
        e = signed.entry
        if isinstance(e, Offer):
            terms_hash = terms_hash_of(e.terms)
            row = offer_row(e, entry_id=entry_id, leaf_index=leaf_index, terms_hash=terms_hash)
            self._offers[row.offer_id] = row
            self._new_offers[row.offer_id] = row
            version = OfferVersionRow(
                offer_id=row.offer_id,
                version=e.version,
                withdrawal=False,
                entry_id=entry_id,
                leaf_index=leaf_index,
                terms_hash=terms_hash,
                valid_from=e.validFrom,
                valid_until=e.validUntil,
            )
            self._versions[(row.offer_id, e.version)] = version
            self._new_versions.append(version)
            if self._document(terms_hash) is None:
                self._documents[terms_hash] = e.terms
                self._new_documents[terms_hash] = e.terms
        elif isinstance(e, OfferWithdrawal):
            latest = self._offer(_hex(e.offerId))
            if latest is not None:
                latest = latest.model_copy(update={"withdrawn": True})
                self._offers[latest.offer_id] = latest
                self._new_offers[latest.offer_id] = latest
            self._new_versions.append(
                OfferVersionRow(
                    offer_id=_hex(e.offerId),
                    version=e.version,
                    withdrawal=True,
                    entry_id=entry_id,
                    leaf_index=leaf_index,
                )
            )
        elif isinstance(e, AgreementV2):
            # check() passed: a non-zero termsHash is the terms the agreement is under
            under = None if e.termsHash == ZERO_BYTES32 else _hex(e.termsHash)
            aid = _hex(e.agreementId)
            self._agreement_terms[aid] = under
            if under is not None:
                self._new_agreements.append(AgreementTermsRow(agreement_id=aid, terms_hash=under))
        elif isinstance(e, UsageReceipt):
            terms = self._terms_of(_hex(e.agreementId))
            if terms is None:
                return
            for _, key in self._keys(terms, e):
                self._counters[key] = self._counter(key) + e.units
                self._dirty.add(key)

    def flush(self) -> None:
        """Write what :meth:`remember` recorded (in the caller's transaction)."""
        s = self._session
        if self._new_documents:
            s.execute(
                sa.insert(TermsRow),
                [{"terms_hash": h, "document": d} for h, d in self._new_documents.items()],
            )
        for row in self._new_offers.values():
            write_offer(s, row)
        if self._new_versions:
            s.execute(sa.insert(OfferVersionRow), [v.model_dump() for v in self._new_versions])
        if self._new_agreements:
            s.execute(sa.insert(AgreementTermsRow), [a.model_dump() for a in self._new_agreements])
        inserts: list[dict[str, Any]] = []
        table = table_of(UsageCounterRow)
        for key in sorted(self._dirty):
            aid, window, idx = key
            if key in self._stored:
                s.execute(
                    sa.update(table)
                    .where(
                        table.c.agreement_id == aid, table.c.window == window, table.c.idx == idx
                    )
                    .values(units=self._counters[key])
                )
            else:
                inserts.append(
                    {
                        "agreement_id": aid,
                        "window": window,
                        "idx": idx,
                        "units": self._counters[key],
                    }
                )
                self._stored.add(key)
        if inserts:
            s.execute(sa.insert(UsageCounterRow), inserts)
        self._new_documents.clear()
        self._new_offers.clear()
        self._new_versions.clear()
        self._new_agreements.clear()
        self._dirty.clear()
