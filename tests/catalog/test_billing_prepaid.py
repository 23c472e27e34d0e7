"""Prepaid offers: ingest refuses usage beyond the consumer's vault balance.

The balance is the indexer's mirror of the vault (``chain_vault_balances``), written
here as the indexer writes it; the settled-until bound comes from the mirror's rounds.
Expected costs are worked out in the comments from the pricing formulas.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from service.catalog.pricing import canonical_pricing_bytes, parse_pricing
from service.evidence.models import LogEntry
from service.indexer.models import Round, VaultBalance
from tests.catalog.helpers import (
    CONSUMER_ACCT,
    DAY,
    DOMAIN,
    T0,
    agreement,
    codes,
    ingest,
    offer,
    receipt,
)

VAULT = "0x" + "ab" * 20


def prepaid(model: dict[str, Any]) -> list[Any]:
    text = canonical_pricing_bytes(parse_pricing({**model, "payment": "prepaid"})).decode()
    return [offer(pricing=text), agreement()]


def set_balance(engine: Engine, amount: int) -> None:
    with Session(engine) as s:
        row = s.get(VaultBalance, (DOMAIN.chain_id, VAULT, CONSUMER_ACCT.address))
        if row is None:
            row = VaultBalance(
                chain_id=DOMAIN.chain_id,
                contract=VAULT,
                account=CONSUMER_ACCT.address,
                balance=amount,
                deposited=amount,
                withdrawal_amount=0,
                withdrawal_available_at=0,
                block_number=1,
            )
        row.balance = amount
        s.add(row)
        s.commit()


def log_size(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(LogEntry)).one())


def test_receipt_beyond_the_prepaid_balance_is_refused_and_changes_nothing(
    engine: Engine,
) -> None:
    set_balance(engine, 1000)
    assert codes(ingest(engine, prepaid({"model": "per_unit", "unitPrice": 10}))) == [
        "accepted",
        "accepted",
    ]
    # 50 x 10 = 500, then 1000 in all: exactly the balance
    assert codes(ingest(engine, [receipt(1, units=50), receipt(2, units=50)])) == [
        "accepted",
        "accepted",
    ]
    size = log_size(engine)
    (refused,) = ingest(engine, [receipt(3, units=1)])  # 1010 > 1000
    assert refused.code == "prepaid_exhausted"
    assert (
        refused.message is not None
        and "1000 + this receipt's 10 > the vault balance 1000" in refused.message
    )
    assert log_size(engine) == size
    set_balance(engine, 1010)  # the consumer deposits 10 more
    assert codes(ingest(engine, [receipt(3, units=1)])) == ["accepted"]


def test_tiered_prepaid_cost_is_the_marginal_band_price(engine: Engine) -> None:
    """Tiers [0, 100) at 10, then 1: 100 units cost 1000, the next 100 cost 100."""
    set_balance(engine, 1099)
    model = {
        "model": "tiered",
        "tiers": [{"upTo": 100, "unitPrice": 10}, {"upTo": None, "unitPrice": 1}],
    }
    ingest(engine, prepaid(model))
    assert codes(ingest(engine, [receipt(1, units=100)])) == ["accepted"]  # 1000
    assert codes(ingest(engine, [receipt(2, units=100)])) == ["prepaid_exhausted"]  # 1100
    assert codes(ingest(engine, [receipt(3, units=99)])) == ["accepted"]  # 1099


def test_free_trial_units_need_no_deposit(engine: Engine) -> None:
    set_balance(engine, 0)
    model = {"model": "free_trial", "freeUnits": 30, "then": {"model": "per_unit", "unitPrice": 5}}
    ingest(engine, prepaid(model))
    assert codes(ingest(engine, [receipt(1, units=20), receipt(2, units=10)])) == [
        "accepted",
        "accepted",
    ]
    assert codes(ingest(engine, [receipt(3, units=1)])) == ["prepaid_exhausted"]  # 5 > 0


def test_usage_of_settled_rounds_no_longer_holds_the_balance(engine: Engine) -> None:
    """Receipts before a (not cancelled) round's period end were debited by that round:
    only later usage counts against what is left."""
    set_balance(engine, 100)
    ingest(engine, prepaid({"model": "per_unit", "unitPrice": 10}))
    assert codes(ingest(engine, [receipt(1, units=10)])) == ["accepted"]  # 100
    assert codes(ingest(engine, [receipt(2, units=1, start=T0 + 3 * DAY)])) == ["prepaid_exhausted"]
    with Session(engine) as s:  # the round over [T0, T0 + 2 days) was proposed: debited
        s.add(
            Round(
                chain_id=DOMAIN.chain_id, contract=VAULT, round_id=1, payout_root="0x" + "00" * 32,
                total=100, evidence_seq=0, policy_hash="0x" + "00" * 32, period_start=T0,
                period_end=T0 + 2 * DAY, challenge_deadline=0, status="proposed",
                claimed_total=0, swept_total=0,
                proposed_block=1, proposed_tx="0x" + "00" * 32, block_number=1,
            )
        )  # fmt: skip
        s.commit()
    assert codes(ingest(engine, [receipt(2, units=1, start=T0 + 3 * DAY)])) == ["accepted"]


def test_postpaid_offer_is_not_checked_against_the_balance(engine: Engine) -> None:
    set_balance(engine, 0)
    text = canonical_pricing_bytes(parse_pricing({"model": "per_unit", "unitPrice": 10})).decode()
    ingest(engine, [offer(pricing=text), agreement()])
    assert codes(ingest(engine, [receipt(1, units=500)])) == ["accepted"]  # due at round end


@settings(max_examples=300, deadline=None)
@given(
    receipts=st.lists(st.tuples(st.integers(T0, T0 + 40 * DAY), st.integers(0, 50)), max_size=15),
    settled=st.sampled_from([0, T0 + 5 * DAY, T0 + 20 * DAY]),
    free_units=st.integers(0, 300),
    free_days=st.integers(0, 30),
    tiered=st.booleans(),
)
def test_folded_history_bills_like_the_receipts_one_by_one(
    receipts: list[tuple[int, int]], settled: int, free_units: int, free_days: int, tiered: bool
) -> None:
    """The gate keeps units per segment (before / after the settled bound and the trial's
    end); the outstanding bill must equal the one over every receipt."""
    from service.catalog.billing import _Prepaid, outstanding
    from service.catalog.pricing import FreeTrial, PerUnit, Tier, Tiered

    base: Any = Tiered((Tier(70, 9), Tier(None, 2))) if tiered else PerUnit(7)
    model = FreeTrial(free_units, free_days, base) if free_units or free_days else base
    folded = _Prepaid(model, CONSUMER_ACCT.address, T0)
    folded.bind(settled)
    folded.history = {}
    for start, units in receipts[:-1] if receipts else []:
        key = folded.segment(start)
        folded.history[key] = folded.history.get(key, 0) + units
    extra = receipts[-1] if receipts else None
    raw = outstanding(model, receipts=receipts, settled_until=settled, valid_from=T0)
    assert (
        outstanding(model, receipts=folded.receipts(extra), settled_until=settled, valid_from=T0)
        == raw
    )
