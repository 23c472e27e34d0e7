"""Quota accounting is exact under concurrency: two processes appending receipts of one
agreement to one PostgreSQL log at the same time never accept a unit beyond the quota.

Each process has its own engine and connection pool (as two API workers do); both are
released at once and send small batches, so their appends interleave on the log's
state-row lock. The counters live in that transaction: exactly ``QUOTA`` units are
accepted and every other receipt is ``quota_exceeded``.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from service.catalog.models import UsageCounterRow
from service.evidence.models import LogEntry
from tests.catalog.helpers import agreement as agreement_v2
from tests.catalog.helpers import (
    codes,
    count,
    empty_postgres_log,
    ingest,
    offer,
    purpose,
    race_two_processes,
    terms_doc,
)

QUOTA = 60
PER_PROCESS = 48  # 2 x 48 = 96 units asked for, 60 allowed
BATCH = 3
TERMS = terms_doc(count(QUOTA), purpose("research"))


@pytest.mark.slow
def test_two_processes_never_exceed_the_quota(_postgres_database: str) -> None:
    with empty_postgres_log(_postgres_database) as engine:
        assert codes(ingest(engine, [offer(terms=TERMS), agreement_v2(terms=TERMS)])) == [
            "accepted",
            "accepted",
        ]
        results = race_two_processes(
            _postgres_database, per_process=PER_PROCESS, batch=BATCH, purpose_code="research"
        )
        flat = [c for r in results for c in r]
        assert flat.count("accepted") == QUOTA
        assert flat.count("quota_exceeded") == 2 * PER_PROCESS - QUOTA
        # both processes got some through (they really interleaved), and the log agrees
        assert all("accepted" in r for r in results)
        with Session(engine) as s:
            units = [
                e.units
                for e in s.exec(select(LogEntry).where(LogEntry.entry_type == "UsageReceipt"))
            ]
            (counter,) = s.exec(select(UsageCounterRow)).all()
        assert sum(u or 0 for u in units) == QUOTA == counter.units
