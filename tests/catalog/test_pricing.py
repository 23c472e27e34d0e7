"""Pricing models against closed forms written here independently (unit by unit).

The models in :mod:`service.catalog.pricing` split usage into bands and allowances with
interval arithmetic; the references below walk the units one at a time, so a boundary
off by one shows up as a different total.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.catalog.pricing import (
    DAY,
    FreeTrial,
    PerUnit,
    RevenueShare,
    Subscription,
    Tier,
    Tiered,
    UsageWindow,
    bill_total,
    canonical_pricing_bytes,
    parse_pricing,
    pricing_document,
)

T0 = 1_700_000_000
PRICES = st.integers(min_value=0, max_value=10**18)


# --- independent references -----------------------------------------------------------------


def unit_price_at(index: int, tiers: list[tuple[int | None, int]]) -> int:
    """Price of the ``index``-th cumulative unit (0-based): the first band whose bound is
    above it."""
    for up_to, price in tiers:
        if up_to is None or index < up_to:
            return price
    raise AssertionError("the last tier is unbounded")


def tiered_reference(prior: int, units: int, tiers: list[tuple[int | None, int]]) -> int:
    return sum(unit_price_at(i, tiers) for i in range(prior, prior + units))


def trial_reference(
    receipts: list[tuple[int, int]],
    *,
    start: int,
    end: int,
    valid_from: int,
    free_units: int,
    free_days: int,
    price_of_billable: Any,
) -> int:
    """Walk every unit of every receipt in time order: free while both allowances last;
    the billable units of the period go to the base model after the billable ones before."""
    seen = billable_before = billable_now = 0
    for s, n in sorted(receipts):
        if s >= end:
            continue
        for _ in range(n):
            in_days = free_days == 0 or s < valid_from + free_days * DAY
            in_units = free_units == 0 or seen < free_units
            seen += 1
            if in_days and in_units:
                continue
            if start <= s:
                billable_now += 1
            else:
                billable_before += 1
    return int(price_of_billable(billable_before, billable_now))


# --- strategies ----------------------------------------------------------------------------


@st.composite
def tier_lists(draw: st.DrawFn) -> list[tuple[int | None, int]]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=400), max_size=5)))
    prices = draw(st.lists(PRICES, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    return [*zip(bounds, prices, strict=False), (None, prices[-1])]


def tiered_of(tiers: list[tuple[int | None, int]]) -> Tiered:
    return Tiered(tuple(Tier(b, p) for b, p in tiers))


@st.composite
def receipt_lists(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Receipts over 40 days from T0, some before the period, some after its end."""
    return draw(
        st.lists(
            st.tuples(
                st.integers(min_value=T0, max_value=T0 + 40 * DAY),
                st.integers(min_value=0, max_value=60),
            ),
            max_size=12,
        )
    )


def window(receipts: list[tuple[int, int]], start: int, end: int, **kw: Any) -> UsageWindow:
    return UsageWindow(
        period_start=start, period_end=end, valid_from=T0, receipts=tuple(receipts), **kw
    )


PERIOD = (T0 + 10 * DAY, T0 + 20 * DAY)


# --- properties --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(receipts=receipt_lists(), price=PRICES)
def test_per_unit_bill_is_units_times_price(receipts: list[tuple[int, int]], price: int) -> None:
    usage = window(receipts, *PERIOD)
    units = sum(n for s, n in receipts if PERIOD[0] <= s < PERIOD[1])
    assert bill_total(PerUnit(price), usage) == units * price


@settings(max_examples=300, deadline=None)
@given(tiers=tier_lists(), prior=st.integers(0, 500), units=st.integers(0, 500))
def test_tiered_bill_is_the_unit_by_unit_sum(
    tiers: list[tuple[int | None, int]], prior: int, units: int
) -> None:
    usage = window([(T0, prior), (PERIOD[0], units)], *PERIOD)
    model = tiered_of(tiers)
    lines = model.bill(usage)
    assert sum(line.amount for line in lines) == tiered_reference(prior, units, tiers)
    assert sum(line.units for line in lines) == units
    assert all(line.amount == line.units * (line.unit_price or 0) for line in lines)


@settings(max_examples=200, deadline=None)
@given(tiers=tier_lists())
def test_tier_boundaries_are_exact(tiers: list[tuple[int | None, int]]) -> None:
    """Unit number ``upTo`` (0-based) is the first one at the next band's price."""
    model = tiered_of(tiers)
    for k, (bound, price) in enumerate(tiers[:-1]):
        assert bound is not None
        last_in = model.lines_for(units=1, prior=bound - 1)
        first_out = model.lines_for(units=1, prior=bound)
        assert [(line.units, line.amount) for line in last_in] == [(1, price)]
        assert [(line.units, line.amount) for line in first_out] == [(1, tiers[k + 1][1])]


@settings(max_examples=200, deadline=None)
@given(
    receipts=receipt_lists(),
    free_units=st.integers(0, 150),
    free_days=st.integers(0, 30),
    price=PRICES,
    tiers=tier_lists(),
    tiered_base=st.booleans(),
)
def test_free_trial_bill_is_the_walked_closed_form(
    receipts: list[tuple[int, int]],
    free_units: int,
    free_days: int,
    price: int,
    tiers: list[tuple[int | None, int]],
    tiered_base: bool,
) -> None:
    if not free_units and not free_days:
        free_days = 1
    base = tiered_of(tiers) if tiered_base else PerUnit(price)

    def price_of(before: int, now: int) -> int:
        if tiered_base:
            return tiered_reference(before, now, tiers)
        return now * price

    model = FreeTrial(free_units, free_days, base)
    expected = trial_reference(
        receipts,
        start=PERIOD[0],
        end=PERIOD[1],
        valid_from=T0,
        free_units=free_units,
        free_days=free_days,
        price_of_billable=price_of,
    )
    assert bill_total(model, window(receipts, *PERIOD)) == expected


@settings(max_examples=200, deadline=None)
@given(receipts=receipt_lists(), free_units=st.integers(1, 2000), price=st.integers(1, 10**18))
def test_free_trial_never_charges_inside_its_allowance(
    receipts: list[tuple[int, int]], free_units: int, price: int
) -> None:
    """Every unit up to the period's end lies inside the unit allowance: nothing is owed,
    whatever the base price."""
    total = sum(n for s, n in receipts if s < PERIOD[1])
    model = FreeTrial(max(free_units, total), 0, PerUnit(price))
    lines = model.bill(window(receipts, *PERIOD))
    assert sum(line.amount for line in lines) == 0
    assert lines[0].rule == "free_trial"


@settings(max_examples=100, deadline=None)
@given(receipts=receipt_lists(), price=st.integers(1, 10**18))
def test_free_days_never_charge_inside_the_window(
    receipts: list[tuple[int, int]], price: int
) -> None:
    """A 45-day trial from T0 covers every receipt of the strategy (40 days)."""
    model = FreeTrial(0, 45, PerUnit(price))
    assert bill_total(model, window(receipts, *PERIOD)) == 0


@settings(max_examples=200, deadline=None)
@given(receipts=receipt_lists(), fee=PRICES, included=st.integers(0, 300), overage=PRICES)
def test_subscription_is_fee_plus_overage(
    receipts: list[tuple[int, int]], fee: int, included: int, overage: int
) -> None:
    units = sum(n for s, n in receipts if PERIOD[0] <= s < PERIOD[1])
    model = Subscription(fee, included, overage)
    assert bill_total(model, window(receipts, *PERIOD)) == fee + overage * max(0, units - included)


@settings(max_examples=300, deadline=None)
@given(revenues=st.lists(st.integers(0, 2**200), max_size=5), bps=st.integers(1, 10_000))
def test_revenue_share_is_floored_and_never_exceeds_the_declared_revenue(
    revenues: list[int], bps: int
) -> None:
    model = RevenueShare(bps)
    lines = model.bill(window([], *PERIOD, revenues=tuple(revenues)))
    assert [line.amount for line in lines] == [r * bps // 10_000 for r in revenues]
    for line, revenue in zip(lines, revenues, strict=True):
        assert line.amount <= revenue
        assert line.amount * 10_000 <= revenue * bps < (line.amount + 1) * 10_000
    assert sum(line.amount for line in lines) <= sum(revenues)


def test_full_share_is_the_whole_revenue_and_tiny_revenue_rounds_to_zero() -> None:
    full = RevenueShare(10_000).bill(window([], *PERIOD, revenues=(12_345,)))
    tiny = RevenueShare(1).bill(window([], *PERIOD, revenues=(9_999,)))
    assert [line.amount for line in full] == [12_345]
    assert [line.amount for line in tiny] == [0]  # 9999 x 1 / 10000 = 0.9999, floored


# --- the document ----------------------------------------------------------------------------

MODELS: list[dict[str, Any]] = [
    {"model": "per_unit", "unitPrice": 5},
    {"model": "tiered", "tiers": [{"upTo": 100, "unitPrice": 10}, {"upTo": None, "unitPrice": 6}]},
    {
        "model": "free_trial",
        "freeUnits": "1000",
        "freeDays": 30,
        "then": {"model": "per_unit", "unitPrice": "2000000000000000000"},
    },
    {"model": "subscription", "fee": 900, "includedUnits": 50, "overageUnitPrice": 4},
    {"model": "revenue_share", "shareBps": 1500},
    {"model": "per_unit", "unitPrice": 5, "payment": "prepaid"},
]


@pytest.mark.parametrize("doc", MODELS, ids=lambda d: d["model"] + "-" + d.get("payment", ""))
def test_canonical_form_round_trips_and_is_plain_sorted_json(doc: dict[str, Any]) -> None:
    model = parse_pricing(doc)
    canonical = canonical_pricing_bytes(model)
    # independent serializer: every value is a string, small int, bool-free or null, so
    # RFC 8785 is sorted keys without whitespace
    plain = json.dumps(pricing_document(model), sort_keys=True, separators=(",", ":"))
    assert canonical == plain.encode()
    assert parse_pricing(canonical) == model
    assert parse_pricing(json.dumps(doc)) == model


def test_integers_and_decimal_strings_give_one_canonical_form() -> None:
    a = parse_pricing({"model": "per_unit", "unitPrice": 5, "version": 1})
    b = parse_pricing({"unitPrice": "5", "model": "per_unit", "payment": "postpaid"})
    assert canonical_pricing_bytes(a) == canonical_pricing_bytes(b)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"model": "flat"}, "pricing.model: must be one of"),
        ({"model": "per_unit"}, "pricing.unitPrice: is required"),
        ({"model": "per_unit", "unitPrice": 1.5}, "pricing.unitPrice: must be a non-negative"),
        ({"model": "per_unit", "unitPrice": "-1"}, "pricing.unitPrice"),
        ({"model": "per_unit", "unitPrice": "01"}, "no leading zeros"),
        ({"model": "per_unit", "unitPrice": True}, "pricing.unitPrice"),
        ({"model": "per_unit", "unitPrice": 1, "colour": "red"}, "pricing.colour: unknown"),
        ({"model": "per_unit", "unitPrice": 1, "payment": "later"}, "pricing.payment"),
        ({"model": "per_unit", "unitPrice": 1, "version": 2}, "pricing.version"),
        ({"model": "tiered", "tiers": []}, "pricing.tiers: must be a list"),
        (
            {"model": "tiered", "tiers": [{"upTo": 5, "unitPrice": 1}]},
            "pricing.tiers.0.upTo: the last tier must be unbounded",
        ),
        (
            {
                "model": "tiered",
                "tiers": [
                    {"upTo": 5, "unitPrice": 1},
                    {"upTo": 5, "unitPrice": 1},
                    {"upTo": None, "unitPrice": 1},
                ],
            },
            "pricing.tiers.1.upTo: bounds must be strictly ascending",
        ),
        (
            {
                "model": "tiered",
                "tiers": [{"upTo": None, "unitPrice": 1}, {"upTo": None, "unitPrice": 1}],
            },
            "pricing.tiers.0.upTo: only the last tier is unbounded",
        ),
        (
            {"model": "free_trial", "then": {"model": "per_unit", "unitPrice": 1}},
            "freeUnits or freeDays above 0",
        ),
        (
            {
                "model": "free_trial",
                "freeUnits": 1,
                "then": {"model": "revenue_share", "shareBps": 1},
            },
            "pricing.then.model: a free trial is followed by per_unit or tiered",
        ),
        (
            {
                "model": "free_trial",
                "freeUnits": 1,
                "then": {"model": "per_unit", "unitPrice": 1, "payment": "prepaid"},
            },
            "pricing.then.payment: unknown field",
        ),
        (
            {"model": "revenue_share", "shareBps": 0},
            "pricing.shareBps: must be an integer in [1, 10000]",
        ),
        ({"model": "revenue_share", "shareBps": 10_001}, "pricing.shareBps"),
        (
            {"model": "revenue_share", "shareBps": 100, "payment": "prepaid"},
            "pricing.payment: prepaid is for per_unit, tiered and free_trial",
        ),
        (
            {
                "model": "subscription",
                "fee": 1,
                "includedUnits": 0,
                "overageUnitPrice": 1,
                "payment": "prepaid",
            },
            "pricing.payment: prepaid is for",
        ),
        ([1, 2], "pricing.(document): must be an object"),
        ("{not json", "pricing: not JSON"),
    ],
)
def test_bad_documents_are_refused_naming_the_field(doc: Any, message: str) -> None:
    with pytest.raises(ValueError, match=None) as err:
        parse_pricing(doc)
    assert message in str(err.value)
