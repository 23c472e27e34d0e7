"""The indexing loop: check the cursor against the chain, fetch a range, commit, repeat.

Each step:

1. reads the head and the cursor, and compares the cursor's stored block hash with the
   chain's block at that number; on a mismatch it walks back through the block hashes
   it stored (recorded blocks and the blocks of raw events) to the highest one the
   chain still has, the common ancestor, and rolls everything above it back in one
   transaction, recording the reorg (table ``indexer_reorgs`` and a log line);
2. otherwise fetches the next range up to the safe head (``head - confirmations``),
   verified against block hashes (see :mod:`service.indexer.scanner`);
3. commits the range's rows and the new cursor in one transaction.

``--once`` stops at the safe head seen when it started; ``--follow`` polls until its
stop event is set (the CLI sets it on SIGINT/SIGTERM, so a range in flight is finished
or not started, never half-written). RPC failures that survive the source's retries
end a ``--once`` run with an error; ``--follow`` logs them and retries with backoff.
The cursor only ever moves by a committed transaction, so no block is ever skipped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from service.chain.artifacts import load_artifact
from service.chain.config import Deployment
from service.errors import ChainError, ConfigError, IndexerError
from service.indexer.decode import Decoder
from service.indexer.handlers import check_subjects
from service.indexer.scanner import TAIL_WINDOW, TARGET_LOGS, Batch, ChainMoved, Scanner
from service.indexer.source import LogSource
from service.indexer.store import Cursor, RollbackResult, Store

log = logging.getLogger(__name__)

PROBE_BATCH = 64  # block hashes compared per request when walking back a reorg
RECENT_BLOCKS = 4096  # stored hashes searched first (all of them only if none matches)


def decoder_for(deployment: Deployment, chain_id: int) -> Decoder:
    """The decoder of a deployment: each contract's ABI from its compiled artifact."""
    contracts = {
        c.address.lower(): (name, load_artifact(name).abi)
        for name, c in deployment.contracts.items()
    }
    decoder = Decoder(chain_id, contracts)
    problems = check_subjects(decoder.by_contract)
    if problems:  # rollback would miss events: refuse to index rather than be wrong
        raise ConfigError("the ABIs do not fit the indexer's handlers: " + "; ".join(problems))
    return decoder


@dataclass
class Progress:
    cursor: int
    target: int
    head: int
    start: int
    events: int


@dataclass
class Summary:
    network: str
    chain_id: int
    deployment: str
    start_block: int
    confirmations: int
    from_block: int | None = None  # first block indexed by this run
    cursor: int | None = None
    cursor_hash: str | None = None
    head: int | None = None
    safe_head: int | None = None
    blocks: int = 0
    events: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    reorgs: list[dict[str, Any]] = field(default_factory=list)
    ranges: int = 0
    range_refusals: int = 0
    retries: int = 0
    seconds: float = 0.0
    stopped_by_signal: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "chain_id": self.chain_id,
            "deployment": self.deployment,
            "start_block": self.start_block,
            "confirmations": self.confirmations,
            "from_block": self.from_block,
            "to_block": self.cursor,
            "cursor": {"block": self.cursor, "hash": self.cursor_hash},
            "head": self.head,
            "safe_head": self.safe_head,
            "lag": None if self.head is None or self.cursor is None else self.head - self.cursor,
            "blocks": self.blocks,
            "events": self.events,
            "events_by_type": dict(sorted(self.events_by_type.items())),
            "reorgs": self.reorgs,
            "ranges": self.ranges,
            "range_refusals": self.range_refusals,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events / self.seconds, 1) if self.seconds > 0 else None,
            "stopped_by_signal": self.stopped_by_signal,
        }


class Indexer:
    """Mirror one deployment's events from ``source`` into the database behind ``engine``."""

    def __init__(
        self,
        *,
        source: LogSource,
        engine: Engine,
        deployment: Deployment,
        network: str,
        confirmations: int = 0,
        start_block: int | None = None,
        max_range: int = 2000,
        target_logs: int = TARGET_LOGS,
        tail_window: int = TAIL_WINDOW,
        chain_id: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None,
        prefetch: bool | None = None,
        poll_interval_s: float = 2.0,
    ) -> None:
        self.source = source
        self.chain_id = chain_id if chain_id is not None else source.chain_id()
        if self.chain_id != deployment.chain_id:
            raise ConfigError(
                f"the deployment is on chain {deployment.chain_id}, "
                f"the node is chain {self.chain_id}"
            )
        self.deployment = deployment
        self.decoder = decoder_for(deployment, self.chain_id)
        self.store = Store(
            engine, chain_id=self.chain_id, addresses=self.decoder.addresses, network=network
        )
        self.scanner = Scanner(
            source,
            self.decoder,
            max_range=max_range,
            target_logs=target_logs,
            tail_window=tail_window,
        )
        self.confirmations = confirmations
        self.start_block = deployment.deploy_block if start_block is None else start_block
        self.on_progress = on_progress
        self.stop = stop or threading.Event()
        # fetch the next range while writing this one (when the source allows threads)
        self.prefetch = source.thread_safe if prefetch is None else prefetch
        self.poll_interval_s = poll_interval_s
        self._pool: ThreadPoolExecutor | None = None
        self._prefetched: tuple[tuple[int, int, tuple[int, str] | None], Future[Batch]] | None = (
            None
        )
        self.summary = Summary(
            network=network,
            chain_id=self.chain_id,
            deployment=self.store.key,
            start_block=self.start_block,
            confirmations=confirmations,
        )

    # --- one step ---------------------------------------------------------------------

    def step(self, *, target: int | None = None) -> bool:
        """Do one unit of work; False when there was nothing to do (caught up)."""
        head = self.source.head()
        safe = head - self.confirmations
        self.summary.head, self.summary.safe_head = head, safe
        cursor = self.store.cursor()
        if cursor is not None:
            ref = self.source.blocks([cursor.number]).get(cursor.number)
            if ref is None or ref.hash != cursor.hash:
                self._reorg(cursor)
                return True
        start = cursor.number + 1 if cursor is not None else self.start_block
        limit = safe if target is None else min(safe, target)
        if start > limit:
            self._set_cursor(cursor)
            return False
        expected = None if cursor is None else (cursor.number, cursor.hash)
        batch = self._take_prefetched(start, limit, expected)
        if batch is None:
            batch = self.scanner.fetch(start, limit, head=head, cursor=expected)
        if self._pool is not None and batch.end < limit:  # fetch the next range meanwhile
            key = (batch.end + 1, limit, (batch.end, batch.end_hash))
            future = self._pool.submit(
                self.scanner.fetch, batch.end + 1, limit, head=head, cursor=key[2]
            )
            self._prefetched = (key, future)
        self.store.commit(batch, expected=cursor)
        s = self.summary
        if s.from_block is None:
            s.from_block = batch.start
        s.blocks += batch.end - batch.start + 1
        s.events += len(batch.events)
        s.events_by_type.update(ev.event for ev in batch.events)
        self._set_cursor(Cursor(batch.end, batch.end_hash))
        if self.on_progress is not None:
            self.on_progress(Progress(batch.end, limit, head, self.start_block, s.events))
        return True

    def _take_prefetched(
        self, start: int, limit: int, cursor: tuple[int, str] | None
    ) -> Batch | None:
        """The range fetched ahead, if it is the one wanted now (else it is dropped)."""
        if self._prefetched is None:
            return None
        key, future = self._prefetched
        self._prefetched = None
        if key == (start, limit, cursor):
            return future.result()  # its errors (ChainMoved, RPC) surface as if fetched now
        # stale (a reorg, a new target): wait so the scanner is free, drop it and its error
        with contextlib.suppress(Exception):
            future.result()
        return None

    def _set_cursor(self, cursor: Cursor | None) -> None:
        self.summary.cursor = None if cursor is None else cursor.number
        self.summary.cursor_hash = None if cursor is None else cursor.hash

    def _reorg(self, cursor: Cursor) -> RollbackResult:
        ancestor, orphaned = self.find_ancestor(cursor)
        result = self.store.rollback(expected=cursor, ancestor=ancestor, orphaned=orphaned)
        info = {
            "old_block": cursor.number,
            "old_hash": cursor.hash,
            "ancestor_block": ancestor.number if ancestor else None,
            "ancestor_hash": ancestor.hash if ancestor else None,
            "depth": result.depth,
            "events_removed": result.events_removed,
        }
        self.summary.reorgs.append(info)
        log.warning(
            "reorg: block %d %s is no longer canonical; rolled back %d block(s) to %s, "
            "%d event(s) removed, %d replayed into derived state",
            cursor.number,
            cursor.hash,
            result.depth,
            f"block {ancestor.number} {ancestor.hash}" if ancestor else "the start",
            result.events_removed,
            result.events_replayed,
        )
        self._set_cursor(ancestor)
        return result

    def find_ancestor(self, cursor: Cursor) -> tuple[Cursor | None, list[tuple[int, str]]]:
        """The highest stored block the chain still has, and the stored ones it lost.

        A block's hash commits to all its ancestors, so "still canonical" holds for every
        stored block up to the fork and for none above: the newest stored hashes are
        compared in batches, then older ones by bisection.
        """
        known = self.store.known_blocks(cursor.number, limit=RECENT_BLOCKS)
        if len(known) >= RECENT_BLOCKS and not self._canonical(known[-1:])[0]:
            known = self.store.known_blocks(cursor.number)  # deeper than the recent ones
        orphaned: list[tuple[int, str]] = []

        canonical = self._canonical
        head_part, rest = known[:PROBE_BATCH], known[PROBE_BATCH:]
        for (n, h), ok in zip(head_part, canonical(head_part), strict=True):
            if ok:
                return Cursor(n, h), orphaned
            orphaned.append((n, h))
        lo, hi = 0, len(rest)  # rest is newest first: find the first canonical entry
        while lo < hi:
            mid = (lo + hi) // 2
            if canonical([rest[mid]])[0]:
                hi = mid
            else:
                lo = mid + 1
        orphaned.extend(rest[:lo][:1000])
        if lo < len(rest):
            n, h = rest[lo]
            return Cursor(n, h), orphaned
        return None, orphaned

    def _canonical(self, items: list[tuple[int, str]]) -> list[bool]:
        """For each stored (number, hash): does the chain still have that block?"""
        if not items:
            return []
        refs = self.source.blocks([n for n, _ in items])
        return [n in refs and refs[n].hash == h for n, h in items]

    # --- loops ------------------------------------------------------------------------

    def run(self, *, follow: bool = False, poll_interval_s: float | None = None) -> Summary:
        """Index to the safe head (``follow=False``) or keep following until stopped."""
        if poll_interval_s is None:
            poll_interval_s = self.poll_interval_s
        t0 = time.perf_counter()
        healed = self.store.heal()
        if healed:
            log.warning("removed %d raw event(s) above the cursor", healed)
        target: int | None = None
        if not follow:
            target = self.source.head() - self.confirmations
        failures = 0
        if self.prefetch:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tally-prefetch")
        try:
            while not self.stop.is_set():
                try:
                    busy = self.step(target=target)
                    failures = 0
                except ChainMoved as err:
                    self.summary.retries += 1
                    log.info("chain moved while fetching (%s): checking again", err)
                    self.stop.wait(0.2)
                    continue
                except (ChainError, IndexerError) as err:
                    if not follow:
                        raise
                    failures += 1
                    self.summary.retries += 1
                    delay = min(60.0, poll_interval_s * 2 ** min(failures, 6))
                    log.error("indexing failed (%s); retrying in %.1fs", err, delay)
                    self.stop.wait(delay)
                    continue
                if not busy:
                    if not follow:
                        break
                    self.stop.wait(poll_interval_s)
        finally:
            if self._pool is not None:
                self._take_prefetched(-1, -1, None)  # let a fetch in flight finish
                self._pool.shutdown(wait=True)
                self._pool = None
            stats = self.scanner.stats
            self.summary.ranges = stats.ranges
            self.summary.range_refusals = stats.refusals
            self.summary.seconds = time.perf_counter() - t0
            self.summary.stopped_by_signal = self.stop.is_set()
        return self.summary

    def status(self) -> dict[str, Any]:
        """Cursor, head and lag (head None if the node cannot be reached)."""
        cursor = self.store.cursor()
        head: int | None
        try:
            head = self.source.head()
        except ChainError:
            head = None
        safe = None if head is None else head - self.confirmations
        number = cursor.number if cursor else None
        return {
            "network": self.summary.network,
            "chain_id": self.chain_id,
            "deployment": self.store.key,
            "addresses": self.decoder.addresses,
            "start_block": self.start_block,
            "confirmations": self.confirmations,
            "cursor": None if cursor is None else {"block": cursor.number, "hash": cursor.hash},
            "head": head,
            "safe_head": safe,
            "lag": None
            if head is None
            else head - (number if number is not None else self.start_block - 1),
            "events": self.store.counts(),
            "reorgs": [
                {
                    "detected_at": r["detected_at"].isoformat() if r["detected_at"] else None,
                    "old_block": r["old_block_number"],
                    "ancestor_block": r["ancestor_block_number"],
                    "depth": r["depth"],
                    "events_removed": r["events_removed"],
                }
                for r in self.store.reorgs()
            ],
        }
