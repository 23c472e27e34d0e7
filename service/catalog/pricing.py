"""Pricing models of an Offer: pure functions from usage to bill lines (no I/O).

An Offer carries a ``pricing`` document (JSON). :func:`parse_pricing` validates it and
returns a :class:`PricingModel`; :meth:`PricingModel.bill` turns one agreement's usage in
one settlement period into :class:`PriceLine` items, one per rule applied. Settlement
(:mod:`service.settlement.engine`) bills an AgreementV2 whose offer has pricing with it;
an Agreement without an offer keeps ``units x unitPrice``.

Schema (version 1). Amounts and unit counts are non-negative integers in the token's
smallest unit, written as JSON integers or decimal strings (``"1000000000000000000"``:
RFC 8785 refuses integers beyond 2**53, so the canonical form writes them as strings);
``shareBps`` and ``freeDays`` are plain JSON integers. Unknown keys are errors.

=================  ==========================================================================
model              fields
=================  ==========================================================================
``per_unit``       ``unitPrice``
``tiered``         ``tiers``: ``[{"upTo": U1, "unitPrice": p1}, …, {"upTo": null, "unitPrice":
                   pk}]``, ``upTo`` strictly ascending, only the last one ``null`` (unbounded)
``free_trial``     ``freeUnits`` and/or ``freeDays`` (at least one > 0), ``then``: a
                   ``per_unit`` or ``tiered`` model (without ``version`` / ``payment``)
``subscription``   ``fee`` (per period), ``includedUnits``, ``overageUnitPrice``
``revenue_share``  ``shareBps`` in [1, 10000]
=================  ==========================================================================

Every document also has ``"version": 1`` and ``"payment"``: ``"postpaid"`` (pay as you
go, 先用后付: the bill is due at round end and taken from the vault then) or
``"prepaid"`` (usage must be covered by the consumer's vault balance before it is used:
ingest refuses a receipt whose cost would exceed it, ``prepaid_exhausted``; see
:mod:`service.catalog.billing`. Only for ``per_unit``, ``tiered`` and ``free_trial``: a
subscription's or a revenue share's bill is not known per receipt). Both default to those
values when absent; the canonical form writes them out. A free trial's allowance is
counted per agreement (one consumer under one offer version).

Formulas (``u`` = the agreement's units in the period, ``c`` = the agreement's
cumulative units before the period, all receipts counted by their ``periodStart``):

- per unit: ``u x unitPrice``;
- tiered: with the cumulative charge ``C(n) = sum_k p_k x |[0, n) ∩ [U_(k-1), U_k)|``
  (``U_0 = 0``; band k holds the cumulative units ``U_(k-1) <= i < U_k``, the ``i``-th unit
  counted from 0), the period's bill is ``C(c + u) - C(c)``: a band boundary is exact,
  unit number ``U_k`` is the first one at ``p_(k+1)``;
- free trial: a unit is free when it is among the agreement's first ``freeUnits``
  units (cumulative) *and*, if ``freeDays`` is set, its receipt starts before
  ``validFrom + freeDays x 86400`` (the trial ends at whichever limit comes first; a
  limit of 0 is no limit). The other units are billed by ``then`` as if they were its
  only units (its cumulative count ``c`` is the billable units before the period);
- subscription: one period is the settlement round: ``fee + overageUnitPrice x
  max(0, u - includedUnits)``, billed in a round in which the agreement has usage;
- revenue share: for each RevenueDeclaration of the period (signed by the consumer),
  ``floor(revenue x shareBps / 10000)``.

Rounding. Every line is an exact integer except a revenue share's, which is floored per
declaration: the remainder (below one smallest unit per declaration) stays with the
consumer, so the share never exceeds ``revenue x shareBps / 10000`` and never the declared
revenue. How a bill is then split among the providers (and the operator's fee) is the
settlement policy's largest-remainder rule, unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import rfc8785

__all__ = [
    "BPS",
    "DAY",
    "PRICING_VERSION",
    "FreeTrial",
    "PerUnit",
    "PriceLine",
    "PricingModel",
    "RevenueShare",
    "Subscription",
    "Tier",
    "Tiered",
    "UsageWindow",
    "canonical_pricing_bytes",
    "parse_pricing",
    "pricing_hash",
]

PRICING_VERSION: Final = 1
BPS: Final = 10_000
DAY: Final = 86_400
MAX_AMOUNT: Final = 2**256 - 1
MAX_TIERS: Final = 32
Payment = Literal["postpaid", "prepaid"]
_PAYMENTS: Final = ("postpaid", "prepaid")


# --- usage and lines --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """One agreement's usage as a pricing model sees it (built by settlement or ingest).

    ``receipts`` are ``(periodStart, units)`` of every receipt of the agreement that
    counts up to the end of the period (earlier periods too: tiers and trials are
    cumulative); those with ``period_start <= periodStart < period_end`` are the period's.
    ``revenues`` are the amounts of the period's RevenueDeclarations (revenue share).
    """

    period_start: int
    period_end: int
    valid_from: int
    receipts: tuple[tuple[int, int], ...] = ()
    revenues: tuple[int, ...] = ()

    def in_period(self, start: int) -> bool:
        return self.period_start <= start < self.period_end

    @property
    def units(self) -> int:
        """The period's units ``u``."""
        return sum(n for s, n in self.receipts if self.in_period(s))

    @property
    def prior_units(self) -> int:
        """The cumulative units before the period ``c``."""
        return sum(n for s, n in self.receipts if s < self.period_start)


@dataclass(frozen=True, slots=True)
class PriceLine:
    """One rule applied: ``amount`` owed for ``units`` (``unit_price`` when per unit)."""

    rule: str
    """Stable rule name: ``per_unit``, ``tier``, ``free_trial``, ``subscription_fee``,
    ``overage``, ``revenue_share``."""
    detail: str
    """Human-readable: the band, the allowance, the declared revenue, …"""
    units: int
    unit_price: int | None
    amount: int

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "detail": self.detail,
            "units": self.units,
            "unit_price": None if self.unit_price is None else str(self.unit_price),
            "amount": str(self.amount),
        }


# --- the models -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PerUnit:
    unit_price: int
    payment: Payment = "postpaid"
    model: Literal["per_unit"] = "per_unit"

    def cumulative(self, units: int) -> int:
        """``C(n) = n x unitPrice``: the charge of the first ``n`` units."""
        return units * self.unit_price

    def lines_for(self, *, units: int, prior: int) -> tuple[PriceLine, ...]:
        del prior  # per unit does not depend on history
        return (
            PriceLine(
                "per_unit", "units x unitPrice", units, self.unit_price, self.cumulative(units)
            ),
        )

    def bill(self, usage: UsageWindow) -> tuple[PriceLine, ...]:
        return self.lines_for(units=usage.units, prior=usage.prior_units)

    def document(self) -> dict[str, Any]:
        return {"model": self.model, "unitPrice": str(self.unit_price)}


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: int | None
    """Exclusive upper bound of the band in cumulative units; ``None``: unbounded."""
    unit_price: int


@dataclass(frozen=True, slots=True)
class Tiered:
    tiers: tuple[Tier, ...]
    payment: Payment = "postpaid"
    model: Literal["tiered"] = "tiered"

    def bands(self) -> list[tuple[int, int | None, int]]:
        """``(low, high, price)`` per band; ``high`` exclusive, ``None`` unbounded."""
        out, low = [], 0
        for tier in self.tiers:
            out.append((low, tier.up_to, tier.unit_price))
            low = tier.up_to if tier.up_to is not None else low
        return out

    def cumulative(self, units: int) -> int:
        return sum(line.amount for line in self.lines_for(units=units, prior=0))

    def lines_for(self, *, units: int, prior: int) -> tuple[PriceLine, ...]:
        """Units ``[prior, prior + units)`` split over the bands (one line per band touched)."""
        lo, hi = prior, prior + units
        lines = []
        for k, (low, high, price) in enumerate(self.bands(), start=1):
            top = hi if high is None else min(hi, high)
            n = top - max(lo, low)
            if n <= 0:
                continue
            band = f"[{low}, {'inf' if high is None else high})"
            lines.append(
                PriceLine("tier", f"tier {k}: cumulative units {band}", n, price, n * price)
            )
        return tuple(lines)

    def bill(self, usage: UsageWindow) -> tuple[PriceLine, ...]:
        return self.lines_for(units=usage.units, prior=usage.prior_units)

    def document(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tiers": [
                {"upTo": None if t.up_to is None else str(t.up_to), "unitPrice": str(t.unit_price)}
                for t in self.tiers
            ],
        }


@dataclass(frozen=True, slots=True)
class Subscription:
    fee: int
    included_units: int
    overage_unit_price: int
    payment: Payment = "postpaid"
    model: Literal["subscription"] = "subscription"

    def lines_for(self, *, units: int, prior: int) -> tuple[PriceLine, ...]:
        del prior  # one period is one round
        lines = [PriceLine("subscription_fee", "flat fee for the period", 0, None, self.fee)]
        over = max(0, units - self.included_units)
        if over:
            detail = f"units above the {self.included_units} included"
            lines.append(
                PriceLine(
                    "overage", detail, over, self.overage_unit_price, over * self.overage_unit_price
                )
            )
        return tuple(lines)

    def bill(self, usage: UsageWindow) -> tuple[PriceLine, ...]:
        return self.lines_for(units=usage.units, prior=usage.prior_units)

    def document(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fee": str(self.fee),
            "includedUnits": str(self.included_units),
            "overageUnitPrice": str(self.overage_unit_price),
        }


@dataclass(frozen=True, slots=True)
class FreeTrial:
    free_units: int
    """0: no unit limit (``free_days`` alone bounds the trial)."""
    free_days: int
    """0: no time limit."""
    then: PerUnit | Tiered
    payment: Payment = "postpaid"
    model: Literal["free_trial"] = "free_trial"

    def _free(self, usage: UsageWindow, start: int, before: int, units: int) -> int:
        """Units of one receipt that are free, given ``before`` cumulative units ahead of it."""
        if self.free_days and start >= usage.valid_from + self.free_days * DAY:
            return 0
        if not self.free_units:
            return units
        return max(0, min(units, self.free_units - before))

    def split(self, usage: UsageWindow) -> tuple[int, int, int]:
        """``(free in period, billable in period, billable before the period)``.

        Receipts are taken in ``periodStart`` order (ties by units, so the split does not
        depend on the order the caller lists them in); the unit allowance is cumulative.
        """
        free_now = bill_now = bill_before = 0
        seen = 0
        for start, units in sorted(usage.receipts):
            if start >= usage.period_end:
                continue
            free = self._free(usage, start, seen, units)
            seen += units
            if usage.in_period(start):
                free_now += free
                bill_now += units - free
            else:
                bill_before += units - free
        return free_now, bill_now, bill_before

    def bill(self, usage: UsageWindow) -> tuple[PriceLine, ...]:
        free, billable, before = self.split(usage)
        limits = []
        if self.free_units:
            limits.append(f"first {self.free_units} units")
        if self.free_days:
            limits.append(f"{self.free_days} days from validFrom")
        lines = [PriceLine("free_trial", " and ".join(limits) + " free", free, 0, 0)]
        if billable:
            lines.extend(self.then.lines_for(units=billable, prior=before))
        return tuple(lines)

    def document(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "freeUnits": str(self.free_units),
            "freeDays": self.free_days,
            "then": self.then.document(),
        }


@dataclass(frozen=True, slots=True)
class RevenueShare:
    share_bps: int
    payment: Payment = "postpaid"
    model: Literal["revenue_share"] = "revenue_share"

    def share(self, revenue: int) -> int:
        """``floor(revenue x shareBps / 10000)``: never more than ``revenue``."""
        return revenue * self.share_bps // BPS

    def bill(self, usage: UsageWindow) -> tuple[PriceLine, ...]:
        return tuple(
            PriceLine(
                "revenue_share",
                f"{self.share_bps} bps of declared revenue {revenue} (floored)",
                0,
                None,
                self.share(revenue),
            )
            for revenue in usage.revenues
        )

    def document(self) -> dict[str, Any]:
        return {"model": self.model, "shareBps": self.share_bps}


PricingModel = PerUnit | Tiered | Subscription | FreeTrial | RevenueShare


def bill_total(model: PricingModel, usage: UsageWindow) -> int:
    """Sum of :meth:`bill`'s lines."""
    return sum(line.amount for line in model.bill(usage))


def pricing_document(model: PricingModel) -> dict[str, Any]:
    """The normalized document (what is canonicalized and hashed)."""
    return {"version": PRICING_VERSION, "payment": model.payment, **model.document()}


def canonical_pricing_bytes(model: PricingModel) -> bytes:
    """RFC 8785 canonical JSON of the normalized document."""
    out: bytes = rfc8785.dumps(pricing_document(model))
    return out


def pricing_hash(model: PricingModel) -> bytes:
    """SHA-256 of :func:`canonical_pricing_bytes`."""
    return hashlib.sha256(canonical_pricing_bytes(model)).digest()


# --- parsing ----------------------------------------------------------------------------------

_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "per_unit": frozenset({"unitPrice"}),
    "tiered": frozenset({"tiers"}),
    "free_trial": frozenset({"freeUnits", "freeDays", "then"}),
    "subscription": frozenset({"fee", "includedUnits", "overageUnitPrice"}),
    "revenue_share": frozenset({"shareBps"}),
}
_TOP: Final = frozenset({"version", "payment", "model"})


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"pricing.{where}: {message}")


def _amount(value: object, where: str) -> int:
    """A non-negative integer as a JSON integer or a decimal string (no sign, no leading 0)."""
    if type(value) is int:
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value) > 1 and value[0] == "0":
            raise _fail(where, f"a decimal string has no leading zeros, got {value!r}")
        number = int(value)
    else:
        raise _fail(where, f"must be a non-negative integer or decimal string, got {value!r}")
    if not 0 <= number <= MAX_AMOUNT:
        raise _fail(where, f"must be in [0, 2**256 - 1], got {number}")
    return number


def _small(value: object, where: str, *, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _fail(where, f"must be an integer in [{low}, {high}], got {value!r}")
    return value


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _fail(where, f"must be an object, got {type(value).__name__}")
    return value


def _model(doc: Mapping[str, Any], where: str, payment: Payment, *, nested: bool) -> PricingModel:
    model = doc.get("model")
    if not isinstance(model, str) or model not in _FIELDS:
        raise _fail(f"{where}model", f"must be one of {', '.join(_FIELDS)}, got {model!r}")
    allowed = _FIELDS[model] | ({"model"} if nested else _TOP)
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise _fail(
            f"{where}{unknown[0]}",
            f"unknown field for model {model} (known: {', '.join(sorted(allowed))})",
        )
    missing = sorted(f for f in _FIELDS[model] - {"freeUnits", "freeDays"} if f not in doc)
    if missing:
        raise _fail(f"{where}{missing[0]}", f"is required for model {model}")
    if model == "per_unit":
        return PerUnit(_amount(doc["unitPrice"], f"{where}unitPrice"), payment)
    if model == "tiered":
        return Tiered(_tiers(doc["tiers"], f"{where}tiers"), payment)
    if model == "subscription":
        return Subscription(
            _amount(doc["fee"], f"{where}fee"),
            _amount(doc["includedUnits"], f"{where}includedUnits"),
            _amount(doc["overageUnitPrice"], f"{where}overageUnitPrice"),
            payment,
        )
    if model == "revenue_share":
        return RevenueShare(_small(doc["shareBps"], f"{where}shareBps", low=1, high=BPS), payment)
    if nested:
        raise _fail(f"{where}model", "a free trial's base model cannot be another free trial")
    free_units = _amount(doc.get("freeUnits", 0), f"{where}freeUnits")
    free_days = _small(doc.get("freeDays", 0), f"{where}freeDays", low=0, high=36_500)
    if not free_units and not free_days:
        raise _fail(f"{where}freeUnits", "a free trial needs freeUnits or freeDays above 0")
    then = _model(_table(doc["then"], f"{where}then"), f"{where}then.", payment, nested=True)
    if not isinstance(then, PerUnit | Tiered):
        raise _fail(f"{where}then.model", "a free trial is followed by per_unit or tiered")
    return FreeTrial(free_units, free_days, then, payment)


def _tiers(value: object, where: str) -> tuple[Tier, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TIERS:
        raise _fail(where, f"must be a list of 1 to {MAX_TIERS} tiers")
    tiers: list[Tier] = []
    low = 0
    for i, raw in enumerate(value):
        at = f"{where}.{i}"
        tier = _table(raw, at)
        unknown = sorted(set(tier) - {"upTo", "unitPrice"})
        if unknown:
            raise _fail(f"{at}.{unknown[0]}", "unknown field (known: unitPrice, upTo)")
        if "upTo" not in tier or "unitPrice" not in tier:
            raise _fail(at, "a tier has upTo (null for the last) and unitPrice")
        last = i == len(value) - 1
        if tier["upTo"] is None:
            if not last:
                raise _fail(f"{at}.upTo", "only the last tier is unbounded (null)")
            up_to = None
        else:
            if last:
                raise _fail(f"{at}.upTo", "the last tier must be unbounded (null)")
            up_to = _amount(tier["upTo"], f"{at}.upTo")
            if up_to <= low:
                raise _fail(
                    f"{at}.upTo",
                    f"bounds must be strictly ascending from 0, got {up_to} after {low}",
                )
            low = up_to
        tiers.append(Tier(up_to, _amount(tier["unitPrice"], f"{at}.unitPrice")))
    return tuple(tiers)


def parse_pricing(doc: Mapping[str, Any] | str | bytes) -> PricingModel:
    """Validate a pricing document (a parsed JSON object, or its JSON text).

    Raises :class:`ValueError` naming the field (``pricing.tiers.1.upTo: …``).
    :func:`canonical_pricing_bytes` of the result is the document's canonical form.
    """
    if isinstance(doc, str | bytes):
        try:
            doc = json.loads(doc)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"pricing: not JSON: {err}") from None
    table = _table(doc, "(document)")
    version = table.get("version", PRICING_VERSION)
    if type(version) is not int or version != PRICING_VERSION:
        raise _fail("version", f"must be {PRICING_VERSION}, got {version!r}")
    payment = table.get("payment", "postpaid")
    if payment not in _PAYMENTS:
        raise _fail("payment", f"must be postpaid or prepaid, got {payment!r}")
    model = _model(table, "", payment, nested=False)
    if payment == "prepaid" and isinstance(model, Subscription | RevenueShare):
        raise _fail(
            "payment",
            f"prepaid is for per_unit, tiered and free_trial: a {model.model} bill is not "
            "known per receipt (use postpaid)",
        )
    return model


def describe(model: PricingModel, fmt: Callable[[int], str] = str) -> str:
    """One line for the demo and the CLI: the model and its numbers (amounts by ``fmt``)."""
    if isinstance(model, PerUnit):
        return f"per unit {fmt(model.unit_price)}"
    if isinstance(model, Tiered):
        parts = [
            f"{'below ' + str(t.up_to) if t.up_to is not None else 'above'}: {fmt(t.unit_price)}"
            for t in model.tiers
        ]
        return "tiered per unit (" + ", ".join(parts) + ")"
    if isinstance(model, Subscription):
        return (
            f"subscription {fmt(model.fee)}/period, {model.included_units} included, "
            f"overage {fmt(model.overage_unit_price)}"
        )
    if isinstance(model, RevenueShare):
        return f"revenue share {model.share_bps} bps of declared revenue"
    trial = []
    if model.free_units:
        trial.append(f"first {model.free_units} units")
    if model.free_days:
        trial.append(f"{model.free_days} days")
    return f"free trial ({' / '.join(trial)}) then {describe(model.then, fmt)}"


def total_of(lines: Sequence[PriceLine]) -> int:
    return sum(line.amount for line in lines)
