"""The prepaid gate: usage under a prepaid offer must be covered by a deposit before use.

An Offer whose pricing says ``"payment": "prepaid"`` bills like any other (settlement,
:mod:`service.catalog.pricing`), but ingest refuses a UsageReceipt whose cost would take
the consumer's outstanding prepaid usage beyond its vault balance, with
``prepaid_exhausted`` (used / balance in the message). :func:`service.evidence.log.append_entries`
runs the gate inside the log's append transaction, after the terms gate, so two workers
never spend one balance twice (the log's state-row lock serializes them).

Definitions (all integers):

- balance ``B``: the consumer's free balance on the space's SettlementVault as the indexer
  mirrors it (``chain_vault_balances.balance`` on the log's chain; with several vaults
  mirrored, the one with the latest event). No row: 0. A round's proposal debits the
  vault balance, so ``B`` already excludes what earlier rounds took.
- settled-until ``S``: the latest ``period_end`` of the vault's rounds that were not
  cancelled (0 when none). Receipts starting before ``S`` were in a round: debited.
- outstanding ``O``: over the consumer's prepaid agreements, the bill of their receipts
  that start at or after ``S``: the pricing model over a period ``[S, 2**64)`` with the
  agreement's whole history (tiers and trials stay cumulative).
- a receipt is accepted when ``O`` with it ``<= B``.

Prepaid is defined for ``per_unit``, ``tiered`` and ``free_trial`` (the pricing parser
refuses it for a subscription or a revenue share, whose cost is not known per receipt).
Postpaid (pay as you go, 先用后付) usage is not checked here: its bill is due at round end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlmodel import Session, col, select

from service.catalog.models import OfferVersionRow
from service.catalog.pricing import DAY, FreeTrial, PricingModel, UsageWindow, parse_pricing
from service.errors import PrepaidExhausted
from service.evidence.entries import (
    ZERO_BYTES32,
    AgreementV2,
    Offer,
    SignedEntry,
    UsageReceipt,
    decode_entry,
)
from service.evidence.models import AgreementRow, LogEntry
from service.indexer.models import Round, VaultBalance

__all__ = ["FOREVER", "PrepaidGate", "outstanding"]

FOREVER = 2**64
"""End of the open period over which outstanding prepaid usage is priced."""


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def outstanding(
    model: PricingModel, *, receipts: Sequence[tuple[int, int]], settled_until: int, valid_from: int
) -> int:
    """The bill of the receipts starting at or after ``settled_until`` (pure)."""
    window = UsageWindow(
        period_start=settled_until,
        period_end=FOREVER,
        valid_from=valid_from,
        receipts=tuple(receipts),
    )
    return sum(line.amount for line in model.bill(window))


class _Prepaid:
    """One prepaid agreement: its model, consumer, start and receipt history, folded into
    segments.

    A model's bill over ``[S, FOREVER)`` depends on a receipt's start only through two
    flags: before ``S`` or not, and (a free trial with days) before the trial's end or
    not. So the history is kept as units per segment between those boundaries, each
    segment's units placed at its lower bound: the bill is the same as over the
    receipts one by one (within a segment the free-unit allowance is used up in any order
    to the same total), and a check costs O(1) however long the agreement has run.
    """

    __slots__ = ("boundaries", "consumer", "history", "model", "valid_from")

    def __init__(self, model: PricingModel, consumer: str, valid_from: int) -> None:
        self.model = model
        self.consumer = consumer
        self.valid_from = valid_from
        self.boundaries: tuple[int, ...] = ()
        self.history: dict[int, int] | None = None  # segment lower bound -> units; lazy

    def bind(self, settled_until: int) -> None:
        """Fix the segment boundaries for this batch (``S`` and the trial's end)."""
        bounds = {settled_until}
        if isinstance(self.model, FreeTrial) and self.model.free_days:
            bounds.add(self.valid_from + self.model.free_days * DAY)
        self.boundaries = tuple(sorted(b for b in bounds if b > 0))

    def segment(self, start: int) -> int:
        """The lower bound of the segment holding ``start`` (0 below every boundary)."""
        low = 0
        for bound in self.boundaries:
            if start >= bound:
                low = bound
        return low

    def receipts(self, extra: tuple[int, int] | None = None) -> list[tuple[int, int]]:
        held = dict(self.history or {})
        if extra is not None:
            key = self.segment(extra[0])
            held[key] = held.get(key, 0) + extra[1]
        return sorted(held.items())


class PrepaidGate:
    """Prepaid balance checks of one append batch (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        chain_id: int,
        known: Mapping[str, AgreementV2 | None] | None = None,
    ) -> None:
        """``known``: agreements of the log already read (id -> its entry if an
        AgreementV2, else None), so that they are not read again."""
        self._session = session
        self._chain_id = chain_id
        self._known = known or {}
        self._agreements: dict[str, _Prepaid | None] = {}  # None: not prepaid
        self._batch_offers: dict[tuple[str, int], str] = {}  # offers earlier in the batch
        self._consumers: dict[str, list[str]] = {}  # consumer -> its prepaid agreements
        self._balances: dict[str, int] = {}
        self._settled: int | None = None
        self._owed_now: dict[str, int] = {}  # consumer -> outstanding, kept up to date
        self._if_accepted: tuple[str, int] | None = None  # the last check's (consumer, O)

    # --- reads ------------------------------------------------------------------------

    def _pricing(self, offer_id: str, version: int) -> PricingModel | None:
        text = self._batch_offers.get((offer_id, version))
        if text is None:
            row = self._session.get(OfferVersionRow, (offer_id, version, False))
            if row is None:
                return None
            data = self._session.exec(
                select(LogEntry.data).where(LogEntry.entry_id == row.entry_id)
            ).first()
            if data is None:
                return None
            offer = decode_entry(data).entry
            if not isinstance(offer, Offer):
                return None
            text = offer.pricing
        return parse_pricing(text)

    def _of_entry(self, e: AgreementV2) -> _Prepaid | None:
        if e.offerId == ZERO_BYTES32:
            return None
        model = self._pricing(_hex(e.offerId), e.offerVersion)
        if model is None or model.payment != "prepaid":
            return None
        return _Prepaid(model, e.consumer, e.validFrom)

    def _agreement(self, aid: str) -> _Prepaid | None:
        if aid not in self._agreements and aid in self._known:
            known = self._known[aid]
            self._agreements[aid] = None if known is None else self._of_entry(known)
        if aid not in self._agreements:
            found = None
            row = self._session.get(AgreementRow, aid)
            if row is not None:
                data = self._session.exec(  # only an AgreementV2 can name an offer
                    select(LogEntry.data).where(
                        LogEntry.entry_id == row.entry_id, LogEntry.entry_type == "AgreementV2"
                    )
                ).first()
                entry = None if data is None else decode_entry(data).entry
                if isinstance(entry, AgreementV2):
                    found = self._of_entry(entry)
            self._agreements[aid] = found
        return self._agreements[aid]

    def _consumer_agreements(self, consumer: str) -> list[str]:
        if consumer not in self._consumers:
            rows = self._session.exec(
                select(AgreementRow.agreement_id, LogEntry.entry_type)
                .join(LogEntry, col(LogEntry.entry_id) == col(AgreementRow.entry_id))
                .where(AgreementRow.consumer == consumer, LogEntry.entry_type == "AgreementV2")
            ).all()
            self._consumers[consumer] = [
                str(aid) for aid, _ in rows if self._agreement(str(aid)) is not None
            ]
        return self._consumers[consumer]

    def _history(self, aid: str, prepaid: _Prepaid) -> dict[int, int]:
        """The agreement's receipts folded into segments, summed by the database."""
        if prepaid.history is None:
            prepaid.bind(self._settled_until())
            start = col(LogEntry.period_start)
            segment: Any = sa.literal(0)
            for bound in prepaid.boundaries:  # ascending: the last match is the segment
                segment = sa.case((start >= bound, sa.literal(bound)), else_=segment)
            rows = self._session.execute(
                select(segment, func.sum(col(LogEntry.units)))
                .where(LogEntry.entry_type == "UsageReceipt", LogEntry.agreement_id == aid)
                .group_by(segment)
            ).all()
            prepaid.history = {int(low): int(n) for low, n in rows}
        return prepaid.history

    def _balance(self, consumer: str) -> int:
        if consumer not in self._balances:
            row = self._session.exec(
                select(VaultBalance)
                .where(
                    VaultBalance.chain_id == self._chain_id,
                    col(VaultBalance.account).in_({consumer, consumer.lower()}),
                )
                .order_by(col(VaultBalance.block_number).desc())
            ).first()
            self._balances[consumer] = 0 if row is None else int(row.balance)
        return self._balances[consumer]

    def _settled_until(self) -> int:
        if self._settled is None:
            last = self._session.execute(
                select(func.max(col(Round.period_end))).where(
                    Round.chain_id == self._chain_id,
                    func.lower(col(Round.status)) != "cancelled",
                )
            ).scalar()
            self._settled = 0 if last is None else int(last)
        return self._settled

    def _owed(self, consumer: str, extra: tuple[str, tuple[int, int]] | None = None) -> int:
        total = 0
        settled = self._settled_until()
        for aid in self._consumer_agreements(consumer):
            prepaid = self._agreements[aid]
            assert prepaid is not None
            self._history(aid, prepaid)
            receipts = prepaid.receipts(extra[1] if extra is not None and extra[0] == aid else None)
            total += outstanding(
                prepaid.model,
                receipts=receipts,
                settled_until=settled,
                valid_from=prepaid.valid_from,
            )
        return total

    def _marginal(self, aid: str, prepaid: _Prepaid, receipt: tuple[int, int]) -> int:
        """What ``receipt`` adds to the agreement's outstanding bill."""
        self._history(aid, prepaid)
        settled = self._settled_until()

        def owed(extra: tuple[int, int] | None) -> int:
            return outstanding(
                prepaid.model,
                receipts=prepaid.receipts(extra),
                settled_until=settled,
                valid_from=prepaid.valid_from,
            )

        return owed(receipt) - owed(None)

    # --- the hook ---------------------------------------------------------------------

    def check(self, signed: SignedEntry) -> None:
        """Raise :class:`PrepaidExhausted` for a prepaid receipt the balance cannot cover."""
        e = signed.entry
        if not isinstance(e, UsageReceipt):
            return
        aid = _hex(e.agreementId)
        prepaid = self._agreement(aid)
        if prepaid is None:
            return
        balance = self._balance(e.consumer)
        before = self._owed_now.get(e.consumer)
        if before is None:
            before = self._owed_now[e.consumer] = self._owed(e.consumer)
        after = before + self._marginal(aid, prepaid, (e.periodStart, e.units))
        self._if_accepted = (e.consumer, after)
        if after > balance:
            raise PrepaidExhausted(
                f"prepaid balance exhausted: outstanding prepaid usage {before} + this "
                f"receipt's {after - before} > the vault balance {balance} of {e.consumer}",
                used=str(before),
                cost=str(after - before),
                balance=str(balance),
            )

    def remember(self, signed: SignedEntry) -> None:
        """An accepted entry: offers and agreements of the batch, prepaid receipts."""
        e = signed.entry
        if isinstance(e, Offer):
            self._batch_offers[(_hex(e.offerId), e.version)] = e.pricing
        elif isinstance(e, AgreementV2):
            aid = _hex(e.agreementId)
            prepaid = self._of_entry(e)
            self._agreements[aid] = prepaid
            if prepaid is not None:
                prepaid.bind(self._settled_until())
                prepaid.history = {}
                self._consumer_agreements(e.consumer)
                if aid not in self._consumers[e.consumer]:
                    self._consumers[e.consumer].append(aid)
        elif isinstance(e, UsageReceipt):
            prepaid = self._agreements.get(_hex(e.agreementId))
            if prepaid is not None:
                if self._if_accepted is not None and self._if_accepted[0] == e.consumer:
                    self._owed_now[e.consumer] = self._if_accepted[1]
                else:  # pragma: no cover - remember always follows its check
                    self._owed_now.pop(e.consumer, None)
                held = self._history(_hex(e.agreementId), prepaid)
                key = prepaid.segment(e.periodStart)
                held[key] = held.get(key, 0) + e.units
