"""The settlement engine: accepted evidence + a policy -> payouts, payout tree, statement, bills.

Two ways in, one way through, so the operator and the auditor cannot drift apart:

- :func:`compute_round` (the operator) reads the evidence log in SQL. Usage receipts are
  aggregated by the database (``GROUP BY agreement_id, provider`` over ``log_entries``:
  receipts and summed units); agreement terms come from ingest's ``agreements`` index
  (the first accepted entry of each id, with its leaf index); the period's other entries
  (quality attestations, contribution declarations, coalition values: few) are decoded
  from their canonical bytes. Signatures are not re-verified: ingest accepted only
  valid entries.
- :func:`settle_entries` (the auditor) takes the decoded entries of the log, leaf 0 first,
  and counts every receipt itself.

Both feed one :class:`FactsBuilder` (receipts through :meth:`FactsBuilder.add_usage`, in
bulk or one by one) and then the pure :func:`settle_facts`, which does the arithmetic.
``tests/settlement/test_engine.py`` requires both ways to give the same root.

Which evidence counts for round ``[period_start, period_end)`` at checkpoint size ``S``:

- only entries with leaf index ``< S`` (the anchored checkpoint the round names);
- a UsageReceipt, QualityAttestation, ContributionDeclaration or CoalitionValues entry
  counts when its ``periodStart`` lies in ``[period_start, period_end)``: consecutive
  rounds over adjacent periods count every entry exactly once, even one that straddles
  the boundary;
- an Agreement (any leaf below ``S``) gives terms: consumer, providers, unit price; the
  first Agreement entry of an id wins (as in ingest);
- QualityAttestations: all of a provider's in the period (their mean ``scoreBps``);
- ContributionDeclarations: input costs (kind 1) are summed; the risk tier (kind 2) is
  the one of the provider's last declaration in the period (highest leaf). With
  ``require_operator_countersign`` a declaration without a second (operator's)
  signature does not count and is listed under ``ignored``;
- CoalitionValues: the agreement's last one in the period signed by the policy's
  ``evaluator``; others are listed under ``ignored``.
- ValuationResult (T13): the same rule, the newest (highest leaf) in the period.

Arithmetic, per agreement with usage in the period (exact integers and Fractions):
revenue ``R`` = the agreement's bill: ``unitPrice x sum(units)`` for an Agreement (or an
AgreementV2 without an offer), else the offer's pricing model
(:mod:`service.catalog.pricing`: per unit, tiered, free trial, subscription, revenue
share) over the agreement's receipts up to the period's end (tiers and trials are
cumulative) and the period's RevenueDeclarations; the offer version is the Offer entry the
AgreementV2 names (in the log below ``S``). Fee ``floor(R x fee_bps / 10000)`` to the
policy's operator; the rest apportioned among the agreement's providers by the
weights of the agreement's method (:mod:`service.settlement.methods`) with the
largest-remainder rule. A zero revenue pays nobody and needs no weights. With a policy's
``[points]`` table, providers also get contribution points from the same weights and high
contributors a rebate of the fee (:mod:`service.settlement.points`; the operator's line
and ``fee`` are then the fee less the rebates).

Every agreement with receipts in the period must name the round's policy: its signed
``Agreement.policyHash`` must equal the policy's hash, else the round is refused with
:class:`~service.errors.PolicyMismatch` listing those agreements (no per-agreement
override: the parties signed for one policy, and the policy's own ``agreements`` table
only tunes parameters within it). Payouts are
summed per address over agreements; the round pool is the sum of revenues and equals
the sum of payouts; the payout tree holds the non-zero payouts
(:mod:`service.settlement.payout_tree`). A consumer's bill is the sum of its agreements'
revenues: the bills add up to the pool the vault must hold.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from service.catalog.pricing import PriceLine, PricingModel, UsageWindow, parse_pricing
from service.errors import InvalidPolicy, NothingToSettle, PolicyMismatch, SettlementError
from service.evidence.eip712 import to_checksum_address
from service.evidence.entries import (
    ZERO_BYTES32,
    Agreement,
    AgreementV2,
    CoalitionValues,
    ContributionDeclaration,
    ContributionKind,
    Offer,
    QualityAttestation,
    RevenueDeclaration,
    SignedEntry,
    UsageReceipt,
    ValuationResult,
    decode_entry,
)
from service.evidence.models import AgreementRow, LogEntry
from service.settlement.apportion import apportion, exact_shares
from service.settlement.methods import (
    BASIC_METHODS,
    CoalitionTable,
    ContributionInputs,
    MethodParams,
    ValuationValues,
    agreement_weights,
    operator_fee,
)
from service.settlement.payout_tree import PayoutTree, build_payout_tree
from service.settlement.points import agreement_points, fee_rebates
from service.settlement.policy import AgreementPolicy, Policy

__all__ = [
    "STATEMENT_FORMAT",
    "AgreementSettlement",
    "AgreementTerms",
    "Bill",
    "BillLine",
    "FactsBuilder",
    "PayoutLine",
    "RoundFacts",
    "RoundResult",
    "Usage",
    "agreement_bill",
    "bills_from_facts",
    "compute_bills",
    "compute_round",
    "facts_from_sql",
    "foreign_policy_agreements",
    "settle_entries",
    "settle_facts",
]

STATEMENT_FORMAT = "tally-statement-v1"
_PERIOD_TYPES = (
    "QualityAttestation",
    "ContributionDeclaration",
    "CoalitionValues",
    "RevenueDeclaration",
    "ValuationResult",
)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _offer_of(agreement: Agreement) -> tuple[str, int] | None:
    """``(offerId, offerVersion)`` of an AgreementV2 that takes up an offer."""
    if isinstance(agreement, AgreementV2) and agreement.offerId != ZERO_BYTES32:
        return _hex(agreement.offerId), agreement.offerVersion
    return None


def _frac(value: Fraction) -> str:
    """An exact number as text: ``"7"`` or ``"22/7"``."""
    return str(value)


def _decimal(value: Fraction, digits: int = 6) -> str:
    """``value`` truncated to ``digits`` decimals, for people (the exact form is beside it)."""
    scaled = value.numerator * 10**digits // value.denominator
    whole, part = divmod(scaled, 10**digits)
    return f"{whole}.{part:0{digits}d}"


# --- facts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgreementTerms:
    """What an Agreement entry fixes. Addresses lower-case; providers ascending."""

    agreement_id: str
    consumer: str
    providers: tuple[str, ...]
    unit_price: int
    leaf_index: int
    policy_hash: str = "0x" + "00" * 32
    """The policy the parties signed for (``Agreement.policyHash``), lower-case hex."""
    valid_from: int = 0
    offer: tuple[str, int] | None = None
    """``(offerId, offerVersion)`` of an AgreementV2 that takes up an offer, else None."""


@dataclass(slots=True)
class Usage:
    """Dual-signed receipts of one provider under one agreement in the period."""

    receipts: int = 0
    units: int = 0


@dataclass
class RoundFacts:
    """Everything the arithmetic needs, gathered from accepted evidence."""

    period_start: int
    period_end: int
    checkpoint_size: int
    agreements: dict[str, AgreementTerms] = field(default_factory=dict)
    usage: dict[tuple[str, str], Usage] = field(default_factory=dict)
    quality: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    costs: dict[tuple[str, str], int] = field(default_factory=dict)
    risk_tiers: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    coalitions: dict[str, tuple[int, CoalitionTable]] = field(default_factory=dict)
    valuations: dict[str, ValuationValues] = field(default_factory=dict)
    """Agreement -> its newest ValuationResult by the policy's evaluator in the period."""
    ignored: list[dict[str, Any]] = field(default_factory=list)
    offers: dict[tuple[str, int], str] = field(default_factory=dict)
    """``(offerId, version)`` -> the Offer's pricing document (canonical JSON text)."""
    history: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """Priced agreements only: ``(periodStart, units)`` of every receipt starting before
    the period's end (earlier periods too), in any order."""
    revenues: dict[str, list[int]] = field(default_factory=dict)
    """The period's RevenueDeclaration amounts per agreement, by leaf."""

    def pricing_of(self, terms: AgreementTerms) -> PricingModel | None:
        """The offer's pricing model of a priced agreement; None: ``unitPrice x units``."""
        if terms.offer is None:
            return None
        text = self.offers.get(terms.offer)
        if text is None:
            raise SettlementError(
                f"agreement {terms.agreement_id} takes up offer {terms.offer[0]} version "
                f"{terms.offer[1]}, which is not in the log below size {self.checkpoint_size}",
                agreement=terms.agreement_id,
            )
        try:
            return parse_pricing(text)
        except ValueError as err:  # ingest checked it; a bad log must not pay
            raise SettlementError(
                f"offer {terms.offer[0]} v{terms.offer[1]}: {err}", agreement=terms.agreement_id
            ) from None

    def usage_window(self, terms: AgreementTerms) -> UsageWindow:
        """What a pricing model sees of one agreement in this period."""
        aid = terms.agreement_id
        return UsageWindow(
            period_start=self.period_start,
            period_end=self.period_end,
            valid_from=terms.valid_from,
            receipts=tuple(self.history.get(aid, ())),
            revenues=tuple(self.revenues.get(aid, ())),
        )

    def usage_by_agreement(self) -> dict[str, dict[str, Usage]]:
        """``{agreement: {provider: usage}}``, agreements sorted by id."""
        out: dict[str, dict[str, Usage]] = defaultdict(dict)
        for (aid, provider), usage in self.usage.items():
            out[aid][provider] = usage
        return dict(sorted(out.items()))


class FactsBuilder:
    """Collects :class:`RoundFacts`: one entry at a time, or receipts in bulk."""

    def __init__(
        self,
        *,
        period_start: int,
        period_end: int,
        checkpoint_size: int,
        policy: Policy | None,
    ) -> None:
        if period_start >= period_end:
            raise SettlementError(
                f"the period must have start < end, got [{period_start}, {period_end})"
            )
        if checkpoint_size < 0:
            raise SettlementError(f"checkpoint size must be >= 0, got {checkpoint_size}")
        self._policy = policy
        self._facts = RoundFacts(period_start, period_end, checkpoint_size)

    def _in_period(self, start: int) -> bool:
        return self._facts.period_start <= start < self._facts.period_end

    def add_usage(self, *, agreement_id: str, provider: str, receipts: int, units: int) -> None:
        """Count ``receipts`` receipts of ``units`` in all (already filtered to the period)."""
        key = (agreement_id.lower(), provider.lower())
        usage = self._facts.usage.get(key)
        if usage is None:
            usage = self._facts.usage[key] = Usage()
        usage.receipts += receipts
        usage.units += units

    def add_agreement(
        self,
        *,
        agreement_id: str,
        consumer: str,
        providers: Sequence[str],
        unit_price: int,
        leaf_index: int,
        policy_hash: str,
        valid_from: int = 0,
        offer: tuple[str, int] | None = None,
    ) -> None:
        """An agreement's terms (the first entry of an id, by leaf index, wins)."""
        if leaf_index >= self._facts.checkpoint_size:
            return
        aid = agreement_id.lower()
        known = self._facts.agreements.get(aid)
        # <=: the SQL path adds an AgreementV2 twice (index row, then decoded with its offer)
        if known is None or leaf_index <= known.leaf_index:
            self._facts.agreements[aid] = AgreementTerms(
                agreement_id=aid,
                consumer=consumer.lower(),
                providers=tuple(p.lower() for p in providers),
                unit_price=unit_price,
                leaf_index=leaf_index,
                policy_hash=policy_hash.lower(),
                valid_from=valid_from,
                offer=None if offer is None else (offer[0].lower(), offer[1]),
            )

    def add_offer(self, *, offer_id: str, version: int, pricing: str, leaf_index: int) -> None:
        """An Offer version's pricing document (below the checkpoint; ids are unique)."""
        if leaf_index < self._facts.checkpoint_size:
            self._facts.offers.setdefault((offer_id.lower(), version), pricing)

    def add_history(self, *, agreement_id: str, period_start: int, units: int) -> None:
        """Receipts of a priced agreement starting at ``period_start`` (before the end)."""
        if period_start < self._facts.period_end:
            self._facts.history.setdefault(agreement_id.lower(), []).append((period_start, units))

    def priced(self, agreement_id: str) -> bool:
        """True when the agreement takes up an offer (its bill needs its history)."""
        terms = self._facts.agreements.get(agreement_id.lower())
        return terms is not None and terms.offer is not None

    def _ignore(self, leaf_index: int, signed: SignedEntry, reason: str) -> None:
        self._facts.ignored.append(
            {"leaf_index": leaf_index, "entry_type": signed.entry_type_name, "reason": reason}
        )

    def add(self, signed: SignedEntry, leaf_index: int) -> None:
        """Take one entry of the log at ``leaf_index`` (anything outside the round is skipped)."""
        if leaf_index >= self._facts.checkpoint_size:
            return
        facts = self._facts
        e = signed.entry
        if isinstance(e, Agreement):
            self.add_agreement(
                agreement_id=_hex(e.agreementId),
                consumer=e.consumer,
                providers=e.providers,
                unit_price=e.unitPrice,
                leaf_index=leaf_index,
                policy_hash=_hex(e.policyHash),
                valid_from=e.validFrom,
                offer=_offer_of(e),
            )
            return
        if isinstance(e, Offer):
            self.add_offer(
                offer_id=_hex(e.offerId),
                version=e.version,
                pricing=e.pricing,
                leaf_index=leaf_index,
            )
            return
        if not isinstance(
            e,
            UsageReceipt
            | QualityAttestation
            | ContributionDeclaration
            | CoalitionValues
            | RevenueDeclaration
            | ValuationResult,
        ):
            return  # other entries (offer withdrawals, …) do not enter the arithmetic
        aid = _hex(e.agreementId)
        if isinstance(e, UsageReceipt) and self.priced(aid):
            self.add_history(agreement_id=aid, period_start=e.periodStart, units=e.units)
        if not self._in_period(e.periodStart):
            return
        if isinstance(e, RevenueDeclaration):
            self._facts.revenues.setdefault(aid, []).append(e.revenue)
        elif isinstance(e, UsageReceipt):
            self.add_usage(agreement_id=aid, provider=e.provider, receipts=1, units=e.units)
        elif isinstance(e, QualityAttestation):
            facts.quality.setdefault((aid, e.provider.lower()), []).append(e.scoreBps)
        elif isinstance(e, ContributionDeclaration):
            policy = self._policy
            countersign = policy is not None and policy.require_operator_countersign
            if countersign and len(signed.signatures) < 2:
                self._ignore(leaf_index, signed, "not countersigned by an operator")
                return
            key = (aid, e.provider.lower())
            if e.kind == ContributionKind.INPUT_COST:
                facts.costs[key] = facts.costs.get(key, 0) + e.value
            else:
                last = facts.risk_tiers.get(key)
                if last is None or leaf_index > last[0]:
                    facts.risk_tiers[key] = (leaf_index, str(e.value))
        elif isinstance(e, ValuationResult):
            self._add_valuation(e, signed, leaf_index)
        elif isinstance(e, CoalitionValues):
            evaluator = None if self._policy is None else self._policy.evaluator
            signers = {s.lower() for s in signed.signatures}
            if evaluator is None:
                self._ignore(leaf_index, signed, "the policy names no evaluator")
                return
            if signers != {evaluator}:
                why = f"not signed by the policy's evaluator {to_checksum_address(evaluator)}"
                self._ignore(leaf_index, signed, why)
                return
            last_c = facts.coalitions.get(aid)
            if last_c is None or leaf_index > last_c[0]:
                table = CoalitionTable(
                    providers=tuple(p.lower() for p in e.providers), values=tuple(e.values)
                )
                facts.coalitions[aid] = (leaf_index, table)

    def _add_valuation(self, e: ValuationResult, signed: SignedEntry, leaf_index: int) -> None:
        """The evaluator's newest ValuationResult per agreement (others are ``ignored``)."""
        evaluator = None if self._policy is None else self._policy.evaluator
        if evaluator is None:
            self._ignore(leaf_index, signed, "the policy names no evaluator")
            return
        if {s.lower() for s in signed.signatures} != {evaluator}:
            why = f"not signed by the policy's evaluator {to_checksum_address(evaluator)}"
            self._ignore(leaf_index, signed, why)
            return
        aid = _hex(e.agreementId)
        last = self._facts.valuations.get(aid)
        if last is None or leaf_index > last.leaf_index:
            self._facts.valuations[aid] = ValuationValues(
                providers=tuple(p.lower() for p in e.providers),
                values=tuple(e.values),
                leaf_index=leaf_index,
            )

    def facts(self) -> RoundFacts:
        self._facts.ignored.sort(key=lambda item: int(item["leaf_index"]))
        return self._facts


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutLine:
    """One participant's part of one agreement."""

    agreement_id: str
    account: str
    """Lower-case hex."""
    role: Literal["provider", "operator"]
    receipts: int
    units: int
    factors: Mapping[str, Any]
    """The facts the method used for this provider, JSON-ready (exact numbers as text)."""
    weight: Fraction | None
    exact_share: Fraction
    payout: int


@dataclass(frozen=True)
class AgreementSettlement:
    """One agreement's revenue and its split."""

    agreement_id: str
    consumer: str
    unit_price: int
    receipts: int
    units: int
    revenue: int
    fee: int
    method: str
    lines: tuple[PayoutLine, ...]
    pricing: str = "unit_price"
    """The pricing model that made ``revenue`` (``unit_price``: an Agreement's price)."""
    bill_lines: tuple[PriceLine, ...] = ()


@dataclass(frozen=True)
class BillLine:
    agreement_id: str
    receipts: int
    units: int
    unit_price: int
    amount: int
    pricing: str = "unit_price"
    """``unit_price`` (an Agreement: units x unitPrice) or the offer's pricing model."""
    rules: tuple[PriceLine, ...] = ()
    """One line per pricing rule applied; they sum to ``amount``."""
    payment: str = "postpaid"


@dataclass(frozen=True)
class Bill:
    """What one consumer owes for the period: its receipts x unit price."""

    consumer: str
    """Lower-case hex."""
    total: int
    lines: tuple[BillLine, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "consumer": to_checksum_address(self.consumer),
            "total": str(self.total),
            "agreements": [
                {
                    "agreement_id": line.agreement_id,
                    "receipts": line.receipts,
                    "units": line.units,
                    "unit_price": str(line.unit_price),
                    "amount": str(line.amount),
                    "pricing": line.pricing,
                    "payment": line.payment,
                    "lines": [rule.to_json() for rule in line.rules],
                }
                for line in self.lines
            ],
        }


@dataclass(frozen=True)
class RoundResult:
    """A settled round: payouts, their tree, the per-agreement detail and the bills."""

    round_id: int
    period_start: int
    period_end: int
    checkpoint_size: int
    checkpoint_seq: int | None
    policy: Policy
    agreements: tuple[AgreementSettlement, ...]
    payouts: Mapping[str, int]
    """Lower-case address -> amount, non-zero payouts only (the tree's leaves)."""
    tree: PayoutTree
    bills: tuple[Bill, ...]
    ignored: tuple[Mapping[str, Any], ...] = ()

    @property
    def pool(self) -> int:
        """Sum of the agreements' revenues = sum of payouts = the round's on-chain total."""
        return self.tree.total

    @property
    def root(self) -> bytes:
        return self.tree.root

    @property
    def policy_hash(self) -> bytes:
        return self.policy.hash

    @property
    def debits(self) -> tuple[tuple[str, int], ...]:
        """What the round takes from each funding consumer's vault balance: its bill,
        ``(checksummed address, amount)`` by ascending address, zero bills left out. They
        sum to :attr:`pool` (``SettlementVault.propose`` requires it too)."""
        return tuple(
            (to_checksum_address(bill.consumer), bill.total) for bill in self.bills if bill.total
        )

    def lines_by_account(self) -> dict[str, list[PayoutLine]]:
        out: dict[str, list[PayoutLine]] = defaultdict(list)
        for agreement in self.agreements:
            for line in agreement.lines:
                out[line.account].append(line)
        return dict(sorted(out.items()))

    def statement(self) -> dict[str, Any]:
        """The round's statement (JSON-ready; amounts as decimal strings)."""
        participants = []
        for account, lines in self.lines_by_account().items():
            amount = self.payouts.get(account, 0)
            index = self.tree.index_of(account) if amount else None
            participants.append(
                {
                    "account": to_checksum_address(account),
                    "payout": str(amount),
                    "index": index,
                    "proof": [] if index is None else [_hex(p) for p in self.tree.proof(index)],
                    "receipts": sum(line.receipts for line in lines),
                    "units": sum(line.units for line in lines),
                    "lines": [_line_json(line) for line in lines],
                }
                | (
                    {"points": sum(int(line.factors.get("points", 0)) for line in lines)}
                    if self.policy.points is not None
                    else {}
                )
            )
        return {
            "format": STATEMENT_FORMAT,
            "round_id": self.round_id,
            "period": {"start": self.period_start, "end": self.period_end},
            "checkpoint": {"seq": self.checkpoint_seq, "size": self.checkpoint_size},
            "policy_hash": self.policy.hash_hex,
            "operator": to_checksum_address(self.policy.operator),
            "operator_fee_bps": self.policy.operator_fee_bps,
            "payout_root": _hex(self.tree.root),
            "total": str(self.pool),
            "payees": len(self.tree),
            "agreements": [
                {
                    "agreement_id": a.agreement_id,
                    "consumer": to_checksum_address(a.consumer),
                    "method": a.method,
                    "unit_price": str(a.unit_price),
                    "receipts": a.receipts,
                    "units": a.units,
                    "revenue": str(a.revenue),
                    "fee": str(a.fee),
                    "pricing": a.pricing,
                    "bill_lines": [rule.to_json() for rule in a.bill_lines],
                }
                for a in self.agreements
            ],
            "participants": participants,
            "bills": [bill.to_json() for bill in self.bills],
            "ignored": [dict(item) for item in self.ignored],
        }

    def statement_csv(self) -> str:
        """One row per participant and agreement (the operator's fee is a row too)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                "round_id",
                "account",
                "index",
                "role",
                "agreement_id",
                "method",
                "receipts",
                "units",
                "factors",
                "weight",
                "exact_share",
                "exact_share_decimal",
                "line_payout",
                "account_payout",
                "proof",
            ]
        )
        methods = {a.agreement_id: a.method for a in self.agreements}
        for account, lines in self.lines_by_account().items():
            amount = self.payouts.get(account, 0)
            index = self.tree.index_of(account) if amount else None
            proof = "" if index is None else " ".join(_hex(p) for p in self.tree.proof(index))
            for line in lines:
                writer.writerow(
                    [
                        self.round_id,
                        to_checksum_address(account),
                        "" if index is None else index,
                        line.role,
                        line.agreement_id,
                        methods[line.agreement_id] if line.role == "provider" else "fee",
                        line.receipts,
                        line.units,
                        json.dumps(line.factors, sort_keys=True, separators=(",", ":")),
                        "" if line.weight is None else _frac(line.weight),
                        _frac(line.exact_share),
                        _decimal(line.exact_share),
                        line.payout,
                        amount,
                        proof,
                    ]
                )
        return out.getvalue()

    def bills_csv(self) -> str:
        return bills_csv(self.bills)

    def payouts_document(self) -> dict[str, Any]:
        """The claim file: every payout with its proof, and OpenZeppelin's tree dump."""
        return {
            "format": "tally-payouts-v1",
            "round_id": self.round_id,
            "period": {"start": self.period_start, "end": self.period_end},
            "checkpoint": {"seq": self.checkpoint_seq, "size": self.checkpoint_size},
            "policy_hash": self.policy.hash_hex,
            "payout_root": _hex(self.tree.root),
            "total": str(self.pool),
            "claims": [
                {
                    "index": e.index,
                    "account": e.account,
                    "amount": str(e.amount),
                    "proof": [_hex(p) for p in e.proof],
                }
                for e in self.tree.entries
            ],
            "tree": self.tree.dump(),
        }


def _line_json(line: PayoutLine) -> dict[str, Any]:
    return {
        "agreement_id": line.agreement_id,
        "role": line.role,
        "receipts": line.receipts,
        "units": line.units,
        "factors": dict(line.factors),
        "weight": None if line.weight is None else _frac(line.weight),
        "exact_share": _frac(line.exact_share),
        "exact_share_decimal": _decimal(line.exact_share),
        "payout": str(line.payout),
    }


def bills_csv(bills: Sequence[Bill]) -> str:
    """One row per consumer and agreement (``rules``: its bill lines as compact JSON)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "consumer",
            "agreement_id",
            "receipts",
            "units",
            "unit_price",
            "amount",
            "consumer_total",
            "pricing",
            "payment",
            "rules",
        ]
    )
    for bill in bills:
        for line in bill.lines:
            writer.writerow(
                [
                    to_checksum_address(bill.consumer),
                    line.agreement_id,
                    line.receipts,
                    line.units,
                    line.unit_price,
                    line.amount,
                    bill.total,
                    line.pricing,
                    line.payment,
                    json.dumps([rule.to_json() for rule in line.rules], separators=(",", ":")),
                ]
            )
    return out.getvalue()


# --- the arithmetic -------------------------------------------------------------------------


def _inputs(
    facts: RoundFacts, terms: AgreementTerms, served: Mapping[str, Usage]
) -> ContributionInputs:
    aid = terms.agreement_id
    providers = terms.providers
    coalition = facts.coalitions.get(aid)
    return ContributionInputs(
        providers=providers,
        units={p: u.units for p, u in served.items()},
        quality_scores={p: facts.quality[(aid, p)] for p in providers if (aid, p) in facts.quality},
        costs={p: facts.costs[(aid, p)] for p in providers if (aid, p) in facts.costs},
        risk_tiers={
            p: facts.risk_tiers[(aid, p)][1] for p in providers if (aid, p) in facts.risk_tiers
        },
        coalition=None if coalition is None else coalition[1],
        valuation=facts.valuations.get(aid),
    )


def _basic_factors(
    method: str,
    provider: str,
    inputs: ContributionInputs,
    params: MethodParams,
    coalition_leaf: int | None,
) -> dict[str, Any]:
    if method == "output":
        scores = inputs.quality_scores.get(provider, ())
        mean = (
            Fraction(sum(scores), len(scores)) if scores else Fraction(params.default_quality_bps)
        )
        return {
            "units": inputs.units.get(provider, 0),
            "quality_attestations": len(scores),
            "quality_bps": _frac(mean),
            "quality_default": not scores,
        }
    if method == "cost":
        return {"declared_cost": str(inputs.costs.get(provider, 0))}
    if method == "risk":
        tier = inputs.risk_tiers.get(provider)
        used = tier if tier is not None else params.default_risk_tier
        multiplier = params.risk_multipliers.get(used) if used is not None else None
        return {
            "risk_tier": used,
            "tier_default": tier is None,
            "multiplier": None if multiplier is None else _frac(Fraction(multiplier)),
        }
    if method == "valuation":  # the weight is the value clipped at 0
        found = inputs.valuation
        if found is None:
            return {"valuation_leaf": None}
        value = dict(zip(found.providers, found.values, strict=True)).get(provider)
        return {"valuation_leaf": found.leaf_index, "value_bps": value}
    return {"coalition_leaf": coalition_leaf}  # shapley: the weight is the clipped value


def _settle_agreement(
    facts: RoundFacts,
    used: Mapping[str, Mapping[str, Usage]],
    terms: AgreementTerms,
    rule: AgreementPolicy,
    policy: Policy,
) -> AgreementSettlement:
    aid = terms.agreement_id
    served = used[aid]
    usage = {p: served.get(p, Usage()) for p in terms.providers}
    strangers = sorted(p for p in served if p not in usage)
    if strangers:
        raise SettlementError(
            f"agreement {aid}: receipts name {to_checksum_address(strangers[0])}, "
            "who is not one of its providers",
            agreement=aid,
        )
    receipts = sum(u.receipts for u in usage.values())
    units = sum(u.units for u in usage.values())
    bill = agreement_bill(facts, terms, receipts=receipts, units=units)
    revenue = bill.amount
    fee = operator_fee(revenue=revenue, fee_bps=policy.operator_fee_bps)
    rest = revenue - fee
    inputs = _inputs(facts, terms, served)
    coalition = facts.coalitions.get(aid)
    coalition_leaf = None if coalition is None else coalition[0]
    weights: dict[str, Fraction] | None = None
    amounts: dict[str, int]
    shares: dict[str, Fraction]
    if rest:
        try:
            weights = agreement_weights(method=rule.method, inputs=inputs, params=rule.params)
            amounts = apportion(total=rest, weights=weights)
            shares = exact_shares(total=rest, weights=weights)
        except (SettlementError, InvalidPolicy) as err:
            detail = {**err.detail, "agreement": aid}
            raise type(err)(f"agreement {aid} ({rule.method}): {err.message}", **detail) from None
    else:
        amounts = dict.fromkeys(terms.providers, 0)
        shares = dict.fromkeys(terms.providers, Fraction(0))
    points: dict[str, int] = {}
    rebates: dict[str, int] = {}
    if policy.points is not None and weights is not None:
        points = agreement_points(policy.points, revenue=revenue, weights=weights)
        rebates = fee_rebates(policy.points, fee=fee, points=points, weights=weights)
        amounts = {p: v + rebates.get(p, 0) for p, v in amounts.items()}
    net_fee = fee - sum(rebates.values())

    lines: list[PayoutLine] = []
    for p in terms.providers:
        if rule.method == "mix":
            factors: dict[str, Any] = {"mix": {}}
            for name in BASIC_METHODS:
                coefficient = rule.params.mix.get(name)
                if not coefficient:
                    continue
                component: dict[str, Any] = {"coefficient": _frac(Fraction(coefficient))}
                component.update(_basic_factors(name, p, inputs, rule.params, coalition_leaf))
                if rest:
                    w = agreement_weights(method=name, inputs=inputs, params=rule.params)  # type: ignore[arg-type]
                    total = sum(w.values(), Fraction(0))
                    component["share"] = _frac(w[p] / total) if total else "0"
                factors["mix"][name] = component
        else:
            factors = _basic_factors(rule.method, p, inputs, rule.params, coalition_leaf)
        if policy.points is not None:
            factors["points"] = points.get(p, 0)
            factors["fee_rebate"] = str(rebates.get(p, 0))
        lines.append(
            PayoutLine(
                agreement_id=aid,
                account=p,
                role="provider",
                receipts=usage[p].receipts,
                units=usage[p].units,
                factors=factors,
                weight=None if weights is None else weights[p],
                exact_share=shares[p],
                payout=amounts[p],
            )
        )
    lines.append(
        PayoutLine(
            agreement_id=aid,
            account=policy.operator,
            role="operator",
            receipts=0,
            units=0,
            factors={"fee_bps": policy.operator_fee_bps, "revenue": str(revenue)}
            | ({"rebated": str(fee - net_fee)} if policy.points is not None else {}),
            weight=None,
            exact_share=Fraction(revenue * policy.operator_fee_bps, 10_000),
            payout=net_fee,
        )
    )
    return AgreementSettlement(
        agreement_id=aid,
        consumer=terms.consumer,
        unit_price=terms.unit_price,
        receipts=receipts,
        units=units,
        revenue=revenue,
        fee=net_fee,
        method=rule.method,
        lines=tuple(lines),
        pricing=bill.pricing,
        bill_lines=bill.rules,
    )


def _terms_of_usage(
    facts: RoundFacts, used: Mapping[str, Mapping[str, Usage]]
) -> list[AgreementTerms]:
    """The agreements with receipts in the period, by id."""
    out = []
    for aid in used:
        terms = facts.agreements.get(aid)
        if terms is None:
            raise SettlementError(
                f"receipts name agreement {aid}, which is not in the log below size "
                f"{facts.checkpoint_size}",
                agreement=aid,
            )
        out.append(terms)
    return out


def agreement_bill(
    facts: RoundFacts, terms: AgreementTerms, *, receipts: int, units: int
) -> BillLine:
    """One agreement's bill for the period: ``unitPrice x units`` for an agreement
    without an offer, else its offer's pricing model (one rule line per rule applied).
    The one place a bill is computed: the statement's revenue and ``tally bill`` agree."""
    model = facts.pricing_of(terms)
    aid, price = terms.agreement_id, terms.unit_price
    if model is None:
        rule = PriceLine(
            "unit_price", "units x the Agreement's unitPrice", units, price, price * units
        )
        return BillLine(aid, receipts, units, price, price * units, "unit_price", (rule,))
    rules = model.bill(facts.usage_window(terms))
    amount = sum(r.amount for r in rules)
    return BillLine(aid, receipts, units, price, amount, model.model, rules, model.payment)


def bills_from_facts(facts: RoundFacts) -> tuple[Bill, ...]:
    """Each consumer's bill: one line per agreement (:func:`agreement_bill`), by consumer."""
    used = facts.usage_by_agreement()
    by_consumer: dict[str, list[BillLine]] = defaultdict(list)
    for terms in _terms_of_usage(facts, used):
        served = used[terms.agreement_id].values()
        receipts = sum(u.receipts for u in served)
        units = sum(u.units for u in served)
        by_consumer[terms.consumer].append(
            agreement_bill(facts, terms, receipts=receipts, units=units)
        )
    return tuple(
        Bill(consumer=c, total=sum(line.amount for line in lines), lines=tuple(lines))
        for c, lines in sorted(by_consumer.items())
    )


def foreign_policy_agreements(facts: RoundFacts, policy_hash: bytes) -> list[AgreementTerms]:
    """The agreements with receipts in the period that name another policy hash than
    ``policy_hash`` (by id); empty when every settled agreement names it."""
    want = _hex(policy_hash)
    used = facts.usage_by_agreement()
    return [t for t in _terms_of_usage(facts, used) if t.policy_hash != want]


def settle_facts(
    facts: RoundFacts, *, round_id: int, policy: Policy, checkpoint_seq: int | None = None
) -> RoundResult:
    """The arithmetic of a round (pure). Raises :class:`NothingToSettle` when the period has
    no revenue, :class:`PolicyMismatch` when a settled agreement names another policy,
    :class:`SettlementError` / :class:`InvalidPolicy` naming the agreement when one cannot
    be split (for example a method with no facts to weigh)."""
    foreign = foreign_policy_agreements(facts, policy.hash)
    if foreign:
        listed = ", ".join(f"{t.agreement_id} (names {t.policy_hash})" for t in foreign)
        raise PolicyMismatch(
            f"{len(foreign)} agreement(s) with usage in the period do not name the round's "
            f"policy {policy.hash_hex}: {listed}",
            agreements=[t.agreement_id for t in foreign],
        )
    used = facts.usage_by_agreement()
    settled = tuple(
        _settle_agreement(facts, used, terms, policy.for_agreement(terms.agreement_id), policy)
        for terms in _terms_of_usage(facts, used)
    )
    payouts: dict[str, int] = defaultdict(int)
    for agreement in settled:
        for line in agreement.lines:
            payouts[line.account] += line.payout
    nonzero = {a: v for a, v in sorted(payouts.items()) if v}
    pool = sum(a.revenue for a in settled)
    if not nonzero:
        raise NothingToSettle(
            f"nothing to settle: no revenue in [{facts.period_start}, {facts.period_end}) "
            f"below checkpoint size {facts.checkpoint_size}"
        )
    tree = build_payout_tree(round_id=round_id, payouts=nonzero)
    if tree.total != pool:  # the apportionment guarantees it; a broken invariant must not pay
        raise SettlementError(f"payouts sum to {tree.total}, the pool is {pool}")
    return RoundResult(
        round_id=round_id,
        period_start=facts.period_start,
        period_end=facts.period_end,
        checkpoint_size=facts.checkpoint_size,
        checkpoint_seq=checkpoint_seq,
        policy=policy,
        agreements=settled,
        payouts=nonzero,
        tree=tree,
        bills=bills_from_facts(facts),
        ignored=tuple(facts.ignored),
    )


# --- the two ways in ------------------------------------------------------------------------


def settle_entries(
    entries: Iterable[SignedEntry],
    *,
    round_id: int,
    period_start: int,
    period_end: int,
    checkpoint_size: int,
    policy: Policy,
    checkpoint_seq: int | None = None,
) -> RoundResult:
    """Settle from decoded log entries: ``entries`` is the log from leaf 0, in order (the
    ``i``-th item is leaf ``i``); items from ``checkpoint_size`` on are not read."""
    builder = FactsBuilder(
        period_start=period_start,
        period_end=period_end,
        checkpoint_size=checkpoint_size,
        policy=policy,
    )
    for leaf_index, signed in enumerate(entries):
        if leaf_index >= checkpoint_size:
            break
        builder.add(signed, leaf_index)
    return settle_facts(
        builder.facts(), round_id=round_id, policy=policy, checkpoint_seq=checkpoint_seq
    )


def facts_from_sql(
    session: Session,
    *,
    period_start: int,
    period_end: int,
    checkpoint_size: int,
    policy: Policy | None,
) -> RoundFacts:
    """The round's facts from the SQL log: receipts aggregated by the database."""
    builder = FactsBuilder(
        period_start=period_start,
        period_end=period_end,
        checkpoint_size=checkpoint_size,
        policy=policy,
    )
    last = session.execute(select(func.max(col(LogEntry.leaf_index)))).scalar()
    have = 0 if last is None else int(last) + 1
    if have < checkpoint_size:
        raise SettlementError(
            f"checkpoint size {checkpoint_size} is beyond the log ({have} entries)"
        )
    leaf, etype = col(LogEntry.leaf_index), col(LogEntry.entry_type)
    start = col(LogEntry.period_start)
    # Agreements: ingest's index of accepted agreements holds, per id, the first entry
    # (its leaf index too): the same terms decoding every Agreement entry would give.
    for row in session.exec(
        select(AgreementRow).where(col(AgreementRow.leaf_index) < checkpoint_size)
    ):
        builder.add_agreement(
            agreement_id=row.agreement_id,
            consumer=row.consumer,
            providers=row.provider_list,
            unit_price=row.unit_price,
            leaf_index=row.leaf_index,
            policy_hash=row.policy_hash,
        )
    # AgreementV2 and Offer entries (few: the catalog) are decoded for offer and pricing.
    for leaf_index, data in session.execute(
        select(leaf, col(LogEntry.data))
        .where(leaf < checkpoint_size, etype.in_(("AgreementV2", "Offer")))
        .order_by(leaf)
    ):
        builder.add(decode_entry(data), int(leaf_index))
    priced = [aid for aid, t in builder.facts().agreements.items() if t.offer is not None]
    if priced:
        history = (
            select(col(LogEntry.agreement_id), start, func.sum(col(LogEntry.units)))
            .where(
                etype == "UsageReceipt",
                leaf < checkpoint_size,
                start < period_end,
                col(LogEntry.agreement_id).in_(priced),
            )
            .group_by(col(LogEntry.agreement_id), start)
        )
        for agreement_id, period_start_, units in session.execute(history):
            builder.add_history(
                agreement_id=str(agreement_id), period_start=int(period_start_), units=int(units)
            )
    decoded = (
        select(leaf, col(LogEntry.data))
        .where(
            leaf < checkpoint_size,
            etype.in_(_PERIOD_TYPES),
            start >= period_start,
            start < period_end,
        )
        .order_by(leaf)
    )
    for leaf_index, data in session.execute(decoded):
        builder.add(decode_entry(data), int(leaf_index))
    receipts = (
        select(
            col(LogEntry.agreement_id),
            col(LogEntry.provider),
            func.count(),
            func.sum(col(LogEntry.units)),
        )
        .where(
            etype == "UsageReceipt",
            leaf < checkpoint_size,
            start >= period_start,
            start < period_end,
        )
        .group_by(col(LogEntry.agreement_id), col(LogEntry.provider))
    )
    for agreement_id, provider, count, units in session.execute(receipts):
        builder.add_usage(
            agreement_id=str(agreement_id),
            provider=str(provider),
            receipts=int(count),
            units=int(units),
        )
    return builder.facts()


def _with_session(session_or_engine: Session | Engine) -> tuple[Session, bool]:
    if isinstance(session_or_engine, Session):
        return session_or_engine, False
    return Session(session_or_engine), True


def compute_round(
    *,
    session_or_engine: Session | Engine,
    round_id: int,
    period_start: int,
    period_end: int,
    checkpoint_size: int,
    policy: Policy,
    checkpoint_seq: int | None = None,
) -> RoundResult:
    """Settle round ``round_id`` from the operator's SQL log (see the module doc).

    ``checkpoint_size`` is the tree size of the anchored checkpoint the round is computed
    from (``checkpoint_seq``, when given, is recorded in the statement and checked at
    propose). Raises :class:`NothingToSettle`, :class:`SettlementError` or
    :class:`InvalidPolicy`.
    """
    session, owned = _with_session(session_or_engine)
    try:
        facts = facts_from_sql(
            session,
            period_start=period_start,
            period_end=period_end,
            checkpoint_size=checkpoint_size,
            policy=policy,
        )
    finally:
        if owned:
            session.close()
    return settle_facts(facts, round_id=round_id, policy=policy, checkpoint_seq=checkpoint_seq)


def compute_bills(
    *,
    session_or_engine: Session | Engine,
    period_start: int,
    period_end: int,
    checkpoint_size: int,
) -> tuple[Bill, ...]:
    """Each consumer's bill for the period (no policy needed: receipts x unit price)."""
    session, owned = _with_session(session_or_engine)
    try:
        facts = facts_from_sql(
            session,
            period_start=period_start,
            period_end=period_end,
            checkpoint_size=checkpoint_size,
            policy=None,
        )
    finally:
        if owned:
            session.close()
    return bills_from_facts(facts)
