"""Ingest's cross-space hook: providers of another data space, checked in their home space.

A cross-space agreement is an ``AgreementV2`` whose ``homeChainId``/``homeRegistry``
name the providers' home space. Ingest then checks:

- the Agreement: its home space is one this space accepts (``home_space_unknown``
  otherwise), and every provider is an active provider in that home registry
  (``provider_not_active_in_home_space``); the consumer is checked in this space's
  registry as for any agreement;
- a UsageReceipt, QualityAttestation or ContributionDeclaration under such an
  agreement: its provider, the same way, in the agreement's home space.

The home registry is read through :class:`~service.chain.homespace.HomeSpaces` (cached
per home space for its ``cache_s``). When the home chain cannot be read the entry is
rejected with the retryable ``home_space_unreachable`` and nothing of it is stored.

One :class:`CrossSpaceCheck` serves one batch. :meth:`CrossSpaceCheck.prefetch` reads
every home standing the batch needs *before* the log lock is taken (a slow home chain
must not hold up other appenders); the checks inside the lock then reuse those answers,
errors included, so a dead home chain costs its retries once per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlmodel import Session, col, select

from service.chain.homespace import HomeSpace, HomeSpaces
from service.errors import HomeSpaceUnknown, TallyError
from service.evidence.entries import (
    Agreement,
    AgreementV2,
    ContributionDeclaration,
    QualityAttestation,
    SignedEntry,
    UsageReceipt,
    decode_entry,
)
from service.evidence.models import AgreementRow, LogEntry

__all__ = ["CrossSpaceCheck"]

AgreementLike = Agreement | AgreementRow
_V2 = AgreementV2.eip712_type.name


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


class CrossSpaceCheck:
    """The cross-space rules for one batch (see the module docstring)."""

    def __init__(self, spaces: HomeSpaces | None) -> None:
        self._spaces = spaces or HomeSpaces()
        self._homes: dict[str, HomeSpace | TallyError | None] = {}  # agreement id -> home
        self._standings: dict[tuple[int, str, str], TallyError | None] = {}
        self.rows: dict[str, AgreementRow] = {}
        """The log's agreement rows read on the way (id -> row): committed rows never
        change, so the checks inside the log lock reuse them instead of reading again."""
        self.v2: dict[str, AgreementV2 | None] = {}
        """For each of :attr:`rows`: its decoded entry if it is an AgreementV2, else None."""

    # --- which home ---------------------------------------------------------------------

    def home_of(self, agreement: Agreement) -> HomeSpace | None:
        """The home space an agreement names (None: this space's providers)."""
        if not isinstance(agreement, AgreementV2) or not agreement.cross_space:
            return None
        return self._spaces.get(agreement.homeChainId, agreement.homeRegistry)

    def home_of_id(
        self, session: Session, agreement_id: bytes, known: Mapping[str, AgreementLike]
    ) -> HomeSpace | None:
        """The home space of agreement ``agreement_id``: from ``known`` (the batch's and the
        checker's) or the log; None for an agreement of this space or one not in the log."""
        key = _hex(agreement_id)
        if key in self._homes:
            found = self._homes[key]
        else:
            in_log, found = self._lookup(session, key, known.get(key))
            if in_log:  # an agreement not in the log (yet) is looked up again next time
                self._homes[key] = found
        if isinstance(found, TallyError):
            raise found
        return found

    def _lookup(
        self, session: Session, key: str, known: AgreementLike | None
    ) -> tuple[bool, HomeSpace | TallyError | None]:
        """(whether the agreement is known, its home or the error naming it)."""
        agreement: Agreement | None = known if isinstance(known, Agreement) else None
        if agreement is None:
            kind: tuple[str | None, bytes | None] | None
            if isinstance(known, AgreementRow):
                kind = session.exec(
                    select(LogEntry.entry_type, LogEntry.data).where(
                        LogEntry.entry_id == known.entry_id
                    )
                ).first()
            else:  # the row and its entry in one query
                joined = session.exec(
                    select(AgreementRow, LogEntry.entry_type, LogEntry.data)
                    .outerjoin(LogEntry, col(LogEntry.entry_id) == col(AgreementRow.entry_id))
                    .where(AgreementRow.agreement_id == key)
                ).first()
                if joined is None:
                    return False, None
                self.rows[key], self.v2[key] = joined[0], None
                kind = (joined[1], joined[2])
            if kind is None or kind[0] != _V2 or kind[1] is None:
                return True, None
            entry = decode_entry(bytes(kind[1])).entry
            if key in self.v2 and isinstance(entry, AgreementV2):
                self.v2[key] = entry
            agreement = entry if isinstance(entry, Agreement) else None
        try:
            return True, None if agreement is None else self.home_of(agreement)
        except HomeSpaceUnknown as err:
            return True, err

    def known_home(self, agreement_id: bytes) -> HomeSpace | TallyError | None:
        """What this batch already found for ``agreement_id`` (None: this space's, or
        not looked up yet); reads nothing."""
        return self._homes.get(_hex(agreement_id))

    # --- standing -----------------------------------------------------------------------

    def require(self, home: HomeSpace, address: str, what: str = "provider") -> None:
        """``address`` is an active provider in ``home`` (answers memoized per batch)."""
        key = (home.chain_id, home.registry.lower(), address)
        if key not in self._standings:
            try:
                home.require_provider(address, what)
                self._standings[key] = None
            except TallyError as failed:
                self._standings[key] = failed
        known = self._standings[key]
        if known is not None:
            raise known

    # --- before the lock ----------------------------------------------------------------

    def prefetch(self, session: Session, entries: Sequence[SignedEntry]) -> None:
        """Read every home standing ``entries`` need, outside the log lock (errors are
        kept for the checks in the lock to report per entry)."""
        batch: dict[str, AgreementLike] = {}
        for signed in entries:
            e = signed.entry
            try:
                if isinstance(e, Agreement):
                    batch.setdefault(_hex(e.agreementId), e)
                    home = self.home_of(e)
                    for p in e.providers:
                        if home is not None:
                            self.require(home, p)
                elif isinstance(e, UsageReceipt | QualityAttestation | ContributionDeclaration):
                    home = self.home_of_id(session, e.agreementId, batch)
                    if home is not None:
                        self.require(home, e.provider)
            except TallyError:
                continue  # memoized: the check inside the lock reports it for this entry
