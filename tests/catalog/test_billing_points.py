"""Contribution points (积分) and the operator-fee rebate of high contributors.

Expected numbers are worked out in the comments from the rules in
:mod:`service.settlement.points` (points pool = floor(R / unit), split by the method's
weights with the largest remainder; rebate = floor(fee x discount x w / W) for providers
with at least ``threshold`` points).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import InvalidPolicy
from service.evidence.entries import Agreement, SignedEntry, UsageReceipt, sign_entry
from service.settlement.engine import RoundResult, settle_entries
from service.settlement.policy import Policy, parse_policy
from tests.catalog.helpers import ACCOUNTS, CONSUMER_ACCT, DAY, DOMAIN, PROVIDERS, T0, h

BASE: dict[str, Any] = {
    "version": 1,
    "operator": ACCOUNTS[0].address,
    "operator_fee_bps": 250,
    "method": "output",
}


def policy(**points: Any) -> Policy:
    return parse_policy({**BASE, "points": points} if points else BASE)


def entries(p: Policy, units: tuple[int, int], price: int = 1000) -> list[SignedEntry]:
    a = Agreement(
        agreementId=h("agreement: points"),
        assetId=h("asset: points"),
        consumer=CONSUMER_ACCT.address,
        providers=tuple(x.address for x in PROVIDERS),
        unitPrice=price,
        policyHash=p.hash,
        validFrom=T0,
        validUntil=T0 + 30 * DAY,
    )
    out = [sign_entry(a, DOMAIN, [bytes(x.key) for x in (CONSUMER_ACCT, *PROVIDERS)])]
    for i, (provider, n) in enumerate(zip(PROVIDERS, units, strict=True), start=1):
        if not n:
            continue
        r = UsageReceipt(
            agreementId=a.agreementId,
            consumer=CONSUMER_ACCT.address,
            provider=provider.address,
            units=n,
            periodStart=T0 + DAY,
            periodEnd=T0 + DAY + 60,
            detailHash=h(f"points {i}"),
            nonce=i,
        )
        out.append(sign_entry(r, DOMAIN, [bytes(CONSUMER_ACCT.key), bytes(provider.key)]))
    return out


def settle(p: Policy, units: tuple[int, int], price: int = 1000) -> RoundResult:
    signed = entries(p, units, price)
    return settle_entries(
        signed,
        round_id=1,
        period_start=T0,
        period_end=T0 + 30 * DAY,
        checkpoint_size=len(signed),
        policy=p,
    )


def by_name(result: RoundResult) -> dict[str, dict[str, Any]]:
    names = {PROVIDERS[0].address: "p0", PROVIDERS[1].address: "p1", ACCOUNTS[0].address: "op"}
    return {names[x["account"]]: x for x in result.statement()["participants"]}


def test_points_follow_the_weights_and_high_contributors_get_a_fee_rebate() -> None:
    # units 30 / 10 at 1000: R = 40000, fee = 1000, rest 39000 -> 29250 / 9750 (output, equal
    # default quality); points pool 40000 // 100 = 400 -> 300 / 100; threshold 150: p0 only;
    # rebate p0 = floor(1000 x 5000 / 10000 x 30 / 40) = 375; the operator keeps 625
    result = settle(policy(unit=100, threshold=150, fee_discount_bps=5000), (30, 10))
    who = by_name(result)
    assert (who["p0"]["points"], who["p1"]["points"]) == (300, 100)
    assert who["p0"]["lines"][0]["factors"]["fee_rebate"] == "375"
    assert who["p1"]["lines"][0]["factors"]["fee_rebate"] == "0"
    assert {k: int(v["payout"]) for k, v in who.items()} == {
        "p0": 29_250 + 375,
        "p1": 9_750,
        "op": 625,
    }
    assert result.pool == 40_000 == sum(b.total for b in result.bills)
    (agreement,) = result.statement()["agreements"]
    assert agreement["fee"] == "625"


def test_a_policy_without_points_keeps_its_document_and_statement() -> None:
    plain = policy()
    assert "points" not in plain.document and plain.points is None
    result = settle(plain, (30, 10))
    assert "points" not in by_name(result)["p0"]
    assert int(by_name(result)["op"]["payout"]) == 1000  # the whole fee


@settings(max_examples=150, deadline=None)
@given(
    units=st.tuples(st.integers(0, 500), st.integers(0, 500)).filter(lambda u: sum(u) > 0),
    price=st.integers(1, 10**6),
    unit=st.integers(1, 10**6),
    threshold=st.integers(0, 10**5),
    discount=st.integers(0, 10_000),
)
def test_points_and_rebates_never_change_the_total(
    units: tuple[int, int], price: int, unit: int, threshold: int, discount: int
) -> None:
    p = policy(unit=str(unit), threshold=threshold, fee_discount_bps=discount)
    result = settle(p, units, price)
    who = by_name(result)
    revenue = price * sum(units)
    fee = revenue * 250 // 10_000
    assert sum(result.payouts.values()) == result.pool == revenue
    assert sum(who[k].get("points", 0) for k in ("p0", "p1")) == revenue // unit
    rebates = sum(int(who[k]["lines"][0]["factors"]["fee_rebate"]) for k in ("p0", "p1"))
    assert 0 <= rebates <= fee * discount // 10_000
    assert int(who.get("op", {"payout": "0"})["payout"]) == fee - rebates


@pytest.mark.parametrize(
    ("points", "field"),
    [
        ({"threshold": 1}, "points.unit"),
        ({"unit": 0}, "points.unit"),
        ({"unit": "1.5"}, "points.unit"),
        ({"unit": 1, "fee_discount_bps": 10_001}, "points.fee_discount_bps"),
        ({"unit": 1, "bonus": 1}, "points.bonus"),
    ],
)
def test_bad_points_tables_are_refused_naming_the_field(points: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPolicy) as err:
        parse_policy({**BASE, "points": points})
    assert field in str(err.value)
