"""Re-evaluate usage terms from the log: name an accepted receipt that broke its terms.

Ingest refuses a receipt its agreement's terms forbid (:mod:`service.catalog.gate`); an
operator that let one through anyway (a patched gate, a hand-inserted row) is caught
here, from the log's entries alone: Offers carry their terms documents, AgreementV2s
name them by hash, and the receipts carry units, periods and purposes. The walk keeps
the same counters as the gate, with the same pure evaluator
(:func:`service.catalog.terms.evaluate`), in leaf order.

An AgreementV2 under a *narrowed* terms document names a document that is not in the
log (clients register it with ``POST /v1/catalog/terms``); ``documents`` supplies such
documents by hash (each is checked against its hash before use). Receipts under a
document the auditor does not have are counted as unchecked, not as broken.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from service.catalog.terms import Terms, evaluate_receipt, parse_terms, window_index, windows
from service.errors import InvalidEntry, InvalidInput
from service.evidence.entries import (
    ZERO_BYTES32,
    AgreementV2,
    Offer,
    SignedEntry,
    UsageReceipt,
    decode_entry,
)

__all__ = ["TermsAudit"]


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


@dataclass
class TermsAudit:
    """Feed entries in leaf order (:meth:`feed`); then read :attr:`problems`."""

    documents: Callable[[str], str | None] | None = None
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    unchecked: set[str] = field(default_factory=set)  # terms hashes the auditor lacks
    _texts: dict[str, str] = field(default_factory=dict)  # terms hash -> document
    _under: dict[bytes, str] = field(default_factory=dict)  # agreement id -> terms hash
    _parsed: dict[str, Terms | None] = field(default_factory=dict)
    _used: dict[tuple[bytes, int, int], int] = field(default_factory=dict)

    def feed(self, index: int, data: bytes) -> None:
        """One log entry (canonical bytes); undecodable ones are the log audit's business."""
        try:
            signed = decode_entry(data)
        except InvalidEntry:
            return
        self.feed_entry(index, signed)

    def feed_entry(self, index: int, signed: SignedEntry) -> None:
        e = signed.entry
        if isinstance(e, Offer):
            text = e.terms
            self._texts.setdefault(_hex(hashlib.sha256(text.encode()).digest()), text)
        elif isinstance(e, AgreementV2) and e.termsHash != ZERO_BYTES32:
            self._under[e.agreementId] = _hex(e.termsHash)
        elif isinstance(e, UsageReceipt) and e.agreementId in self._under:
            self._receipt(index, signed, e)

    def _terms(self, terms_hash: str) -> Terms | None:
        if terms_hash not in self._parsed:
            text = self._texts.get(terms_hash)
            if text is None and self.documents is not None:
                fetched = self.documents(terms_hash)
                ok = fetched is not None and (
                    _hex(hashlib.sha256(fetched.encode()).digest()) == terms_hash
                )
                text = fetched if ok else None
            try:
                self._parsed[terms_hash] = None if text is None else parse_terms(text)
            except InvalidInput as err:
                self.problems.append(f"terms {terms_hash} do not parse: {err.message}")
                self._parsed[terms_hash] = None
        return self._parsed[terms_hash]

    def _receipt(self, index: int, signed: SignedEntry, e: UsageReceipt) -> None:
        terms_hash = self._under[e.agreementId]
        terms = self._terms(terms_hash)
        if terms is None:
            self.unchecked.add(terms_hash)
            return
        keys = {w: (e.agreementId, w, window_index(w, e.periodStart)) for w in windows(terms)}
        used = {w: self._used.get(k, 0) for w, k in keys.items()}
        self.checked += 1
        try:
            evaluate_receipt(terms, e, used)
        except InvalidInput as err:
            self.problems.append(
                f"leaf {index} (UsageReceipt {_hex(signed.id())}, agreement "
                f"{_hex(e.agreementId)}) broke its terms: {err.code}: {err.message}"
            )
        # the log accepted it: it counts, as it did for the operator's counters
        for k in keys.values():
            self._used[k] = self._used.get(k, 0) + e.units

    @property
    def applies(self) -> bool:
        """True when some receipt was under usage terms (checked or not)."""
        return bool(self.checked or self.problems or self.unchecked)

    def summary(self) -> str:
        """One line for the report."""
        if self.problems:
            return f"{len(self.problems)} problem(s); first: {self.problems[0]}"
        text = f"{self.checked} receipt(s) under usage terms re-evaluated: none broke them"
        if self.unchecked:
            text += f"; {len(self.unchecked)} narrowed terms document(s) unavailable, unchecked"
        return text
