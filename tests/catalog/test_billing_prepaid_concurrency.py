"""A prepaid balance is spent exactly once under concurrency: two processes appending
receipts of one prepaid agreement to one PostgreSQL log at the same time never accept a
unit the consumer's vault balance does not cover.

As in test_quota_concurrency: two engines (two API workers), released at once, small
batches interleaving on the log's state-row lock; the prepaid gate reads the outstanding
usage inside that transaction. Balance 600 at 10 a unit: exactly 60 units get through.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from service.catalog.pricing import canonical_pricing_bytes, parse_pricing
from service.evidence.models import LogEntry
from tests.catalog.helpers import (
    agreement,
    codes,
    empty_postgres_log,
    ingest,
    offer,
    race_two_processes,
)
from tests.catalog.test_billing_prepaid import set_balance

PRICE, BALANCE = 10, 600  # 60 units covered
PER_PROCESS = 48  # 2 x 48 = 96 units asked for
BATCH = 3


@pytest.mark.slow
def test_two_processes_never_overspend_a_prepaid_balance(_postgres_database: str) -> None:
    with empty_postgres_log(_postgres_database) as engine:
        set_balance(engine, BALANCE)
        model = {"model": "per_unit", "unitPrice": PRICE, "payment": "prepaid"}
        text = canonical_pricing_bytes(parse_pricing(model)).decode()
        assert codes(ingest(engine, [offer(pricing=text), agreement()])) == [
            "accepted",
            "accepted",
        ]
        results = race_two_processes(_postgres_database, per_process=PER_PROCESS, batch=BATCH)
        flat = [c for r in results for c in r]
        assert flat.count("accepted") == BALANCE // PRICE
        assert flat.count("prepaid_exhausted") == 2 * PER_PROCESS - BALANCE // PRICE
        assert all("accepted" in r for r in results)  # they really interleaved
        with Session(engine) as s:
            units = [
                e.units
                for e in s.exec(select(LogEntry).where(LogEntry.entry_type == "UsageReceipt"))
            ]
        assert sum(u or 0 for u in units) * PRICE == BALANCE
