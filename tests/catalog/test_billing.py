"""Settlement bills an AgreementV2 under an offer with the offer's pricing model.

Each case: an Offer with one pricing model, an AgreementV2 taking it up, receipts before
and inside the round's period (tiers and trials are cumulative), and for revenue share a
RevenueDeclaration. Expected bills are worked out in the comments from the formulas in
the README ("Catalog and terms"), never copied from the program; the round's pool must
equal the sum of the bills. Both ways in (the decoded entries, the auditor's; SQL, the
operator's) must agree.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.catalog.pricing import canonical_pricing_bytes, parse_pricing
from service.evidence.entries import (
    Agreement,
    RevenueDeclaration,
    SignedEntry,
    decode_entry,
    sign_entry,
)
from service.evidence.models import LogEntry
from service.settlement.engine import RoundResult, compute_bills, compute_round, settle_entries
from service.settlement.policy import Policy, parse_policy
from tests.catalog.helpers import (
    ACCOUNTS,
    CONSUMER_ACCT,
    DAY,
    DOMAIN,
    PROVIDERS,
    T0,
    agreement,
    h,
    ingest,
    offer,
    receipt,
)

POLICY = parse_policy(
    {"version": 1, "operator": ACCOUNTS[0].address, "operator_fee_bps": 250, "method": "output"}
)
P0, P1 = T0 + 10 * DAY, T0 + 20 * DAY  # the round: days 10..20 of the agreement


def priced(model: dict[str, Any], name: str = "battery") -> list[SignedEntry]:
    """An offer with ``model`` as pricing and an agreement (a1) under the round's policy."""
    return [
        offer(name, pricing=canonical_pricing_bytes(parse_pricing(model)).decode()),
        agreement(name, policyHash=POLICY.hash),
    ]


def usage(*units_at: tuple[int, int]) -> list[SignedEntry]:
    """Receipts of a1 by provider 0: ``(day, units)``."""
    return [
        receipt(i, units=n, start=T0 + day * DAY + 60) for i, (day, n) in enumerate(units_at, 1)
    ]


def revenue(amount: int, nonce: int = 900) -> SignedEntry:
    entry = RevenueDeclaration(
        agreementId=h("agreement: a1"),
        consumer=CONSUMER_ACCT.address,
        periodStart=P0,
        periodEnd=P1,
        revenue=amount,
        reportHash=h(f"report {nonce}"),
        nonce=nonce,
    )
    return sign_entry(entry, DOMAIN, [bytes(CONSUMER_ACCT.key)])


def settle(entries: list[SignedEntry], policy: Policy = POLICY) -> RoundResult:
    return settle_entries(
        entries,
        round_id=1,
        period_start=P0,
        period_end=P1,
        checkpoint_size=len(entries),
        policy=policy,
    )


def only_bill(result: RoundResult) -> dict[str, Any]:
    (bill,) = result.statement()["bills"]
    (line,) = bill["agreements"]
    return dict(line)


# Receipts used below: day 2: 70 units, day 5: 20 (before the round: 90); day 12: 25,
# day 15: 30 (in the round: 55); day 25: 40 (after the round's end: never counts).
HISTORY = ((2, 70), (5, 20), (12, 25), (15, 30), (25, 40))

CASES: list[tuple[str, dict[str, Any], int, list[str]]] = [
    # per unit 7: 55 x 7 = 385
    ("per_unit", {"model": "per_unit", "unitPrice": 7}, 385, ["per_unit"]),
    # tiers [0,100) at 10, [100,200) at 6, above at 1; cumulative units 90..145:
    # 10 units in band 1 (90..99) = 100, 45 in band 2 (100..144) = 270; total 370
    (
        "tiered",
        {
            "model": "tiered",
            "tiers": [
                {"upTo": 100, "unitPrice": 10},
                {"upTo": 200, "unitPrice": 6},
                {"upTo": None, "unitPrice": 1},
            ],
        },
        370,
        ["tier", "tier"],
    ),
    # first 100 units free, then 9 per unit: 90 free before; in the round 10 free, 45 x 9
    (
        "free_trial",
        {"model": "free_trial", "freeUnits": 100, "then": {"model": "per_unit", "unitPrice": 9}},
        405,
        ["free_trial", "per_unit"],
    ),
    # 14 days from validFrom free: day 12 free (25), day 15 billed: 30 x 9 = 270
    (
        "free_days",
        {"model": "free_trial", "freeDays": 14, "then": {"model": "per_unit", "unitPrice": 9}},
        270,
        ["free_trial", "per_unit"],
    ),
    # fee 500 + (55 - 40) x 3 = 545
    (
        "subscription",
        {"model": "subscription", "fee": 500, "includedUnits": 40, "overageUnitPrice": 3},
        545,
        ["subscription_fee", "overage"],
    ),
    # 15% of 12345: floor(1851.75) = 1851
    ("revenue_share", {"model": "revenue_share", "shareBps": 1500}, 1851, ["revenue_share"]),
]


@pytest.mark.parametrize(("name", "model", "expected", "rules"), CASES, ids=[c[0] for c in CASES])
def test_offer_pricing_bills_the_closed_form_and_the_pool_is_the_bill(
    name: str, model: dict[str, Any], expected: int, rules: list[str]
) -> None:
    entries = [*priced(model), *usage(*HISTORY)]
    if model["model"] == "revenue_share":
        entries.append(revenue(12_345))
    result = settle(entries)
    line = only_bill(result)
    assert int(line["amount"]) == expected
    assert line["pricing"] == model["model"]
    assert [rule["rule"] for rule in line["lines"]] == rules
    assert sum(int(rule["amount"]) for rule in line["lines"]) == expected
    assert result.pool == expected == sum(b.total for b in result.bills)
    (settled,) = result.statement()["agreements"]
    assert settled["revenue"] == str(expected) and settled["pricing"] == model["model"]


def test_old_agreement_keeps_units_times_unit_price_next_to_a_priced_one() -> None:
    old = Agreement(
        agreementId=h("agreement: a1"),
        assetId=h("asset: old"),
        consumer=CONSUMER_ACCT.address,
        providers=tuple(a.address for a in PROVIDERS),
        unitPrice=1000,
        policyHash=POLICY.hash,
        validFrom=T0,
        validUntil=T0 + 400 * DAY,
    )
    signed = sign_entry(old, DOMAIN, [bytes(a.key) for a in (CONSUMER_ACCT, *PROVIDERS)])
    result = settle([signed, *usage(*HISTORY)])
    line = only_bill(result)
    assert line["pricing"] == "unit_price"
    assert int(line["amount"]) == 55 * 1000 == result.pool


def test_agreement_naming_an_offer_outside_the_checkpoint_is_an_error() -> None:
    from service.errors import SettlementError

    entries = [priced({"model": "per_unit", "unitPrice": 7})[1], *usage((12, 5))]
    with pytest.raises(SettlementError, match="not in the log below size"):
        settle(entries)


def test_free_trial_round_inside_the_allowance_owes_nothing() -> None:
    from service.errors import NothingToSettle

    model = {
        "model": "free_trial",
        "freeUnits": 1000,
        "then": {"model": "per_unit", "unitPrice": 9},
    }
    with pytest.raises(NothingToSettle):
        settle([*priced(model), *usage(*HISTORY)])


# --- the operator's way: SQL, on SQLite and PostgreSQL ---------------------------------------


def test_sql_and_decoded_entries_agree_on_priced_agreements(engine: Engine) -> None:
    model = {
        "model": "tiered",
        "tiers": [{"upTo": 100, "unitPrice": 10}, {"upTo": None, "unitPrice": 6}],
    }
    entries = [*priced(model), *usage(*HISTORY)]
    results = ingest(engine, entries)
    assert [r.status for r in results] == ["accepted"] * len(entries)
    with Session(engine) as s:
        rows = s.exec(select(LogEntry).order_by(LogEntry.leaf_index)).all()  # type: ignore[arg-type]
        logged = [decode_entry(r.data) for r in rows]
    by_sql = compute_round(
        session_or_engine=engine,
        round_id=1,
        period_start=P0,
        period_end=P1,
        checkpoint_size=len(logged),
        policy=POLICY,
    )
    by_entries = settle(logged)
    assert by_sql.statement() == by_entries.statement()
    # cumulative 90..145: 10 x 10 + 45 x 6 = 370
    assert by_sql.pool == 370
    bills = compute_bills(
        session_or_engine=engine, period_start=P0, period_end=P1, checkpoint_size=len(logged)
    )
    assert [b.total for b in bills] == [370]
    assert bills == by_sql.bills


def test_tally_bill_shows_each_pricing_model_with_a_line_per_rule(
    engine: Engine, db_url: str, space: Any
) -> None:
    """`tally bill --json` over the anchored log: the tiered, free-trial and revenue-share
    agreements of one consumer, each with its rule lines, and the human table too."""
    import json

    from typer.testing import CliRunner

    from service.cli import app
    from service.evidence.anchor import anchor_once

    tiered = {
        "model": "tiered",
        "tiers": [{"upTo": 100, "unitPrice": 10}, {"upTo": None, "unitPrice": 6}],
    }
    trial = {"model": "free_trial", "freeUnits": 100, "then": {"model": "per_unit", "unitPrice": 9}}
    entries: list[SignedEntry] = []
    for name, model in (("battery", tiered), ("charging", trial)):
        text = canonical_pricing_bytes(parse_pricing(model)).decode()
        entries += [offer(name, pricing=text), agreement(name, agreement=name)]
        entries += [
            receipt(100 * len(entries) + i, units=n, agreement=name, start=T0 + day * DAY + 60)
            for i, (day, n) in enumerate(HISTORY)
        ]
    assert {r.status for r in ingest(engine, entries)} == {"accepted"}
    anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    args = ["bill", "--from", str(P0), "--to", str(P1), "--db", db_url]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    (bill,) = json.loads(result.output)["bills"]
    lines = {line["pricing"]: line for line in bill["agreements"]}
    # tiered: cumulative 90..145 -> 10 x 10 + 45 x 6 = 370; trial: 90 free before, then
    # 10 free and 45 x 9 = 405
    assert {k: v["amount"] for k, v in lines.items()} == {"tiered": "370", "free_trial": "405"}
    assert [r["rule"] for r in lines["tiered"]["lines"]] == ["tier", "tier"]
    assert [(r["rule"], r["units"]) for r in lines["free_trial"]["lines"]] == [
        ("free_trial", 10),
        ("per_unit", 45),
    ]
    assert bill["total"] == "775"
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.output
    for shown in ("tiered", "free_trial", "tier", "per_unit", "total owed: 775"):
        assert shown in table.output, shown


@settings(max_examples=60, deadline=None)
@given(
    days=st.lists(st.tuples(st.integers(0, 29), st.integers(1, 80)), min_size=1, max_size=8),
    which=st.sampled_from(["per_unit", "tiered", "free_trial", "subscription"]),
)
def test_pool_is_the_sum_of_bills_and_the_unit_walk_for_random_usage(
    days: list[tuple[int, int]], which: str
) -> None:
    """Random receipts over 30 days, billed for days 10..20; the reference walks units."""
    models: dict[str, dict[str, Any]] = {
        "per_unit": {"model": "per_unit", "unitPrice": 7},
        "tiered": {
            "model": "tiered",
            "tiers": [{"upTo": 50, "unitPrice": 9}, {"upTo": None, "unitPrice": 4}],
        },
        "free_trial": {
            "model": "free_trial",
            "freeUnits": 60,
            "freeDays": 12,
            "then": {"model": "per_unit", "unitPrice": 5},
        },
        "subscription": {
            "model": "subscription",
            "fee": 300,
            "includedUnits": 40,
            "overageUnitPrice": 2,
        },
    }
    starts = [(T0 + d * DAY + 60, n) for d, n in days]
    seen = 0
    expected = 0
    in_round = 0
    for start, n in sorted(starts):
        for _ in range(n):
            free = seen < 60 and start < T0 + 12 * DAY
            if P0 <= start < P1:
                in_round += 1
                if which == "per_unit":
                    expected += 7
                elif which == "tiered":
                    expected += 9 if seen < 50 else 4
                elif which == "free_trial" and not free:
                    expected += 5
            seen += 1
    if which == "subscription":
        expected = 300 + 2 * max(0, in_round - 40)
    entries = [*priced(models[which]), *usage(*days)]
    if not in_round:
        return  # no receipts in the round: nothing to bill
    if not expected:  # every unit of the round inside the free trial
        from service.errors import NothingToSettle

        with pytest.raises(NothingToSettle):
            settle(entries)
        return
    result = settle(entries)
    assert result.pool == sum(b.total for b in result.bills) == expected
