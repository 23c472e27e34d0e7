"""A prepaid balance is spent exactly once under concurrency: two processes appending
receipts of one prepaid agreement to one PostgreSQL log at the same time never accept a
unit the consumer's vault balance does not cover.

As in test_quota_concurrency: two engines (two API workers), released at once, small
batches interleaving on the log's state-row lock; the prepaid gate reads the outstanding
usage inside that transaction. Balance 600 at 10 a unit: exactly 60 units get through.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.catalog.pricing import canonical_pricing_bytes, parse_pricing
from service.db import create_schema, make_engine
from service.evidence.models import LogEntry
from tests.catalog.helpers import agreement, codes, ingest, offer, receipt
from tests.catalog.test_billing_prepaid import set_balance

PRICE, BALANCE = 10, 600  # 60 units covered
PER_PROCESS = 48  # 2 x 48 = 96 units asked for
BATCH = 3


def _worker(url: str, first: int, start: Any, out: Any) -> None:
    engine = make_engine(url)
    receipts = [receipt(first + i, units=1) for i in range(PER_PROCESS)]
    start.wait()
    results: list[str] = []
    for i in range(0, len(receipts), BATCH):
        results.extend(codes(ingest(engine, receipts[i : i + BATCH])))
    engine.dispose()
    out.put(results)


@pytest.mark.slow
def test_two_processes_never_overspend_a_prepaid_balance(_postgres_database: str) -> None:
    url = _postgres_database
    engine = make_engine(url)
    create_schema(engine)
    try:
        _race(url, engine)
    finally:  # the run's database is shared: leave an empty schema, as db_url does
        engine.dispose()
        with make_engine(url, pool=False).begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))


def _race(url: str, engine: Engine) -> None:
    with engine.begin() as conn:  # start from an empty log
        for table in reversed(LogEntry.metadata.sorted_tables):
            conn.execute(table.delete())
    set_balance(engine, BALANCE)
    model = {"model": "per_unit", "unitPrice": PRICE, "payment": "prepaid"}
    text = canonical_pricing_bytes(parse_pricing(model)).decode()
    assert codes(ingest(engine, [offer(pricing=text), agreement()])) == ["accepted", "accepted"]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, 1 + k * 1000, start, out)) for k in range(2)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    flat = [c for r in results for c in r]
    assert flat.count("accepted") == BALANCE // PRICE
    assert flat.count("prepaid_exhausted") == 2 * PER_PROCESS - BALANCE // PRICE
    assert all("accepted" in r for r in results)  # they really interleaved
    with Session(engine) as s:
        units = [
            e.units for e in s.exec(select(LogEntry).where(LogEntry.entry_type == "UsageReceipt"))
        ]
    assert sum(u or 0 for u in units) * PRICE == BALANCE
