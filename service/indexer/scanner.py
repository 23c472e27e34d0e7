"""The scanner: fetch and decode the logs of a block range, adapting the range to the node.

One ``eth_getLogs`` per range covers every contract of the deployment (an address
list, no topic filter). The range starts at the network's ``max_block_range``; a node
that refuses it (a JSON-RPC error such as "block range too large" or "query returned
more than 10000 results", an HTTP 413, or a timeout) gets half of it, down to one
block, and the size that failed becomes a ceiling; after a success the range doubles
again up to that ceiling (raised again after a run of successes, in case the refusal
was a passing overload), and a range that returned more logs than ``target_logs``
halves. A single block that keeps failing is retried with backoff and finally raises
:class:`~service.errors.IndexerRpcError`: it is never skipped.

A fetched range is checked against the chain's block hashes before it is handed on:
the logs of every block whose header was fetched must carry that header's hash. Near
the head (``tail_window`` blocks) every header of the range is fetched in one batch and
must chain, by parent hash, from the cursor's hash: the range then provably extends the
indexed chain. Deeper ranges check their last block. A mismatch raises
:class:`ChainMoved`; the caller re-checks the cursor (reorg handling) and tries again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from service.errors import IndexerRpcError
from service.indexer.decode import Decoder, Event
from service.indexer.source import BlockRef, LogSource, RpcError, RpcTimeout
from service.indexer.util import gc_paused

log = logging.getLogger(__name__)

TAIL_WINDOW = 64  # blocks below the head whose hashes are all fetched and recorded
TARGET_LOGS = 10_000  # halve the next range above this many logs
SINGLE_BLOCK_TRIES = 8
CEILING_PROBE = 32  # successful ranges after which a lowered ceiling is doubled again


class ChainMoved(Exception):
    """The chain changed while a range was being fetched (a reorg under our feet)."""


@dataclass
class Batch:
    """A fetched, verified, decoded block range ``start..end``."""

    start: int
    end: int
    end_hash: str
    events: list[Event]
    blocks: list[BlockRef]  # headers fetched for this range (to record their hashes)
    fetch_s: float = 0.0


@dataclass
class RangeStats:
    ranges: int = 0
    refusals: int = 0
    logs: int = 0
    fetch_s: float = 0.0
    decode_s: float = 0.0


@dataclass
class Scanner:
    source: LogSource
    decoder: Decoder
    max_range: int
    target_logs: int = TARGET_LOGS
    tail_window: int = TAIL_WINDOW
    sleep: Callable[[float], None] = time.sleep
    stats: RangeStats = field(default_factory=RangeStats)

    def __post_init__(self) -> None:
        self.size = self.max_range
        self.ceiling = self.max_range
        self._clean = 0  # successes since the last refusal

    def _fetch_logs(self, start: int, limit: int) -> tuple[int, list[dict[str, object]]]:
        """Logs of ``start..end`` for the largest ``end <= limit`` the node accepts."""
        addresses = self.decoder.addresses
        failures = 0
        while True:
            end = min(start + self.size - 1, limit)
            try:
                logs = self.source.get_logs(addresses, start, end)
            except (RpcError, RpcTimeout) as err:
                self.stats.refusals += 1
                self._clean = 0
                if end > start:
                    self.ceiling = max(1, end - start)
                    self.size = max(1, (end - start + 1) // 2)
                    log.info(
                        "range %d..%d refused (%s); trying %d blocks", start, end, err, self.size
                    )
                    continue
                failures += 1
                if failures >= SINGLE_BLOCK_TRIES:
                    raise IndexerRpcError(
                        f"block {start}: eth_getLogs failed {failures} times ({err})"
                    ) from None
                delay = min(8.0, 0.25 * 2**failures)
                log.warning(
                    "block %d: eth_getLogs failed (%s); retrying in %.2fs", start, err, delay
                )
                self.sleep(delay)
                continue
            n = len(logs)
            self._clean += 1
            if self._clean >= CEILING_PROBE and self.ceiling < self.max_range:
                # a refusal may have been a passing overload: try larger ranges again
                self.ceiling = min(self.max_range, self.ceiling * 2)
                self._clean = 0
            if n > self.target_logs:
                self.size = max(1, self.size // 2)
            elif n < self.target_logs // 2:
                self.size = min(self.size * 2, self.ceiling, self.max_range)
            return end, logs

    def fetch(self, start: int, limit: int, *, head: int, cursor: tuple[int, str] | None) -> Batch:
        """Fetch, verify and decode ``start..end`` (``end <= limit`` chosen by the range size)."""
        t0 = time.perf_counter()
        end, logs = self._fetch_logs(start, limit)
        tail_from = max(start, head - self.tail_window + 1)
        numbers: Sequence[int] = range(tail_from, end + 1) if end >= tail_from else [end]
        headers = self.source.blocks(list(numbers))
        fetched = time.perf_counter()
        self._verify(start, end, logs, headers, numbers, cursor)
        with gc_paused():
            events = [self.decoder.decode(entry) for entry in logs]
        events.sort(key=lambda e: (e.block_number, e.log_index))
        done = time.perf_counter()
        self.stats.ranges += 1
        self.stats.logs += len(events)
        self.stats.fetch_s += fetched - t0
        self.stats.decode_s += done - fetched
        return Batch(
            start=start,
            end=end,
            end_hash=headers[end].hash,
            events=events,
            blocks=[headers[n] for n in numbers],
            fetch_s=fetched - t0,
        )

    @staticmethod
    def _verify(
        start: int,
        end: int,
        logs: list[dict[str, object]],
        headers: dict[int, BlockRef],
        numbers: Sequence[int],
        cursor: tuple[int, str] | None,
    ) -> None:
        missing = [n for n in numbers if n not in headers]
        if missing:
            raise ChainMoved(f"block {missing[0]} is gone (the chain got shorter)")
        prev: BlockRef | None = None
        for n in numbers:
            ref = headers[n]
            if prev is not None and ref.parent_hash != prev.hash:
                raise ChainMoved(f"block {n} does not extend block {n - 1}")
            prev = ref
        first = headers[numbers[0]]
        extends = cursor is None or numbers[0] != start or cursor[0] != start - 1
        if not extends and cursor is not None and first.parent_hash != cursor[1]:
            raise ChainMoved(f"block {start} does not extend the cursor block {cursor[0]}")
        for entry in logs:
            if entry.get("removed"):
                raise ChainMoved("the node returned a removed log")
            number = int(str(entry["blockNumber"]), 16)
            if not start <= number <= end:
                raise ChainMoved(f"log of block {number} outside {start}..{end}")
            header = headers.get(number)
            if header is not None and str(entry["blockHash"]).lower() != header.hash:
                raise ChainMoved(f"log of block {number} has another block hash than its header")
