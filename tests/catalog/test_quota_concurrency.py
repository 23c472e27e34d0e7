"""Quota accounting is exact under concurrency: two processes appending receipts of one
agreement to one PostgreSQL log at the same time never accept a unit beyond the quota.

Each process has its own engine and connection pool (as two API workers do); both are
released at once and send small batches, so their appends interleave on the log's
state-row lock. The counters live in that transaction: exactly ``QUOTA`` units are
accepted and every other receipt is ``quota_exceeded``.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.catalog.models import UsageCounterRow
from service.db import create_schema, make_engine
from service.evidence.models import LogEntry
from tests.catalog.helpers import agreement as agreement_v2
from tests.catalog.helpers import codes, count, ingest, offer, purpose, receipt, terms_doc

QUOTA = 60
PER_PROCESS = 48  # 2 x 48 = 96 units asked for, 60 allowed
BATCH = 3
TERMS = terms_doc(count(QUOTA), purpose("research"))


def _worker(url: str, first: int, start: Any, out: Any) -> None:
    engine = make_engine(url)
    receipts = [receipt(first + i, units=1, purpose_code="research") for i in range(PER_PROCESS)]
    start.wait()
    results: list[str] = []
    for i in range(0, len(receipts), BATCH):
        results.extend(codes(ingest(engine, receipts[i : i + BATCH])))
    engine.dispose()
    out.put(results)


@pytest.mark.slow
def test_two_processes_never_exceed_the_quota(_postgres_database: str) -> None:
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
    assert codes(ingest(engine, [offer(terms=TERMS), agreement_v2(terms=TERMS)])) == [
        "accepted",
        "accepted",
    ]
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
    assert flat.count("accepted") == QUOTA
    assert flat.count("quota_exceeded") == 2 * PER_PROCESS - QUOTA
    # both processes got some through (they really interleaved), and the log agrees
    assert all("accepted" in r for r in results)
    with Session(engine) as s:
        units = [
            e.units for e in s.exec(select(LogEntry).where(LogEntry.entry_type == "UsageReceipt"))
        ]
        (counter,) = s.exec(select(UsageCounterRow)).all()
    assert sum(u or 0 for u in units) == QUOTA == counter.units
