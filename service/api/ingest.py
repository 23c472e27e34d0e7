"""Evidence batches as the API receives them: JSON items in, one result per item out.

Each item is ``{"entry_type", "entry", "signatures"}`` (:meth:`SignedEntry.from_json`).
An item that does not parse is rejected on its own (code ``invalid_entry`` or
``invalid_signature``, with the field errors) and the rest of the batch goes on to
:func:`service.evidence.log.append_entries`, which checks signatures, roles and
agreements and appends the valid entries. Results come back in the batch's order.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from service.api.metrics import EVIDENCE_ITEMS, EVIDENCE_REJECTIONS
from service.chain.homespace import HomeSpaces
from service.errors import BatchTooLarge, InvalidInput
from service.evidence.directory import Directory
from service.evidence.eip712 import Domain
from service.evidence.entries import SignedEntry
from service.evidence.log import append_entries


@dataclass(frozen=True)
class ItemOutcome:
    index: int
    status: str  # accepted | duplicate | rejected
    entry_id: str | None = None
    leaf_index: int | None = None
    code: str | None = None
    message: str | None = None
    errors: list[dict[str, str]] | None = None
    salt: str | None = None  # 0x hex (commitment leaves, T15): accepted and duplicate items


@dataclass(frozen=True)
class BatchOutcome:
    results: list[ItemOutcome]

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


class IngestGate:
    """At most ``limit`` evidence batches of this process are being appended at once;
    the others wait on the event loop, in arrival order, holding no route thread (GET
    requests keep them).

    Why (measured on 2 cores, 32 clients posting 200 batches of 100 into an empty log on
    PostgreSQL): with every route thread appending, up to 16 batches of a worker shared
    its GIL while one of them held the log's append lock, which stretched every hold,
    and the lock's waiters were served in no useful order. Receipts/s (p99) for gates
    1 / 2 / 4 / 64: one worker 2,640 (1,409 ms) / 2,784 (1,343) / 2,663 (1,370) /
    2,670 (1,951); two workers 2,842 (1,252) / 3,570 (1,090) / 3,414 (1,512) /
    3,193 (2,432). Two at a time keeps one batch preparing (parsing, signature recovery,
    commitments) while the other appends (``TALLY_INGEST_CONCURRENCY``, default 2).
    """

    def __init__(self, limit: int = 2) -> None:
        if limit < 1:
            raise ValueError("an ingest gate admits at least one batch")
        self.limit = limit
        self._lock = threading.Lock()
        # one semaphore per event loop (tests run apps on several loops of one process)
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._by_loop = weakref.WeakKeyDictionary()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a free place, hold it for the block."""
        loop = asyncio.get_running_loop()
        with self._lock:
            semaphore = self._by_loop.get(loop)
            if semaphore is None:
                semaphore = self._by_loop[loop] = asyncio.Semaphore(self.limit)
        async with semaphore:
            yield


def ingest_batch(
    *,
    engine: Engine,
    domain: Domain,
    directory: Directory,
    items: Sequence[Any],
    max_batch: int,
    home_spaces: HomeSpaces | None = None,
) -> BatchOutcome:
    """Parse and append a batch; see the module docstring (``home_spaces``: the foreign
    spaces cross-space agreements may name, :mod:`service.evidence.crossspace`)."""
    if len(items) > max_batch:
        raise BatchTooLarge(f"a batch holds at most {max_batch} entries, got {len(items)}")
    outcomes: list[ItemOutcome | None] = [None] * len(items)
    parsed: list[SignedEntry] = []
    where: list[int] = []
    for i, item in enumerate(items):
        try:
            parsed.append(SignedEntry.from_json(item, domain=domain))
            where.append(i)
        except InvalidInput as err:
            errors = err.detail.get("errors")
            outcomes[i] = ItemOutcome(
                i, "rejected", code=err.code, message=err.message, errors=errors
            )
    if parsed:
        results = append_entries(
            engine=engine,
            domain=domain,
            directory=directory,
            entries=parsed,
            home_spaces=home_spaces,
        )
        for i, r in zip(where, results, strict=True):
            outcomes[i] = ItemOutcome(
                i,
                r.status,
                entry_id=r.entry_id,
                leaf_index=r.leaf_index,
                code=r.code,
                message=r.message,
                salt=r.salt,
            )
    final = [o for o in outcomes if o is not None]
    for o in final:
        EVIDENCE_ITEMS.labels(o.status).inc()
        if o.status == "rejected":
            EVIDENCE_REJECTIONS.labels(o.code or "unknown").inc()
    return BatchOutcome(final)
