"""The loops ``tally serve`` can run next to the API: anchoring and the indexer follower.

- Anchoring: every ``anchor_every_s`` seconds :func:`service.evidence.anchor.anchor_once`
  (crash-safe; a no-op when the log did not grow). Failures are logged and retried at
  the next tick; nothing is lost, the entries stay in the log.
- Indexing: :class:`service.indexer.runner.Indexer` following the chain into the SQL
  mirror (participants, checkpoints, rounds, claims), until stopped.

Each runs in a daemon thread and stops at :meth:`BackgroundLoops.stop` (the range or
anchor in flight is finished first). With one API worker they run inside it (the only
way to share the embedded chain); with several, ``tally serve`` runs them once, in the
supervising process, so they are not duplicated per worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from service.api.context import ServiceContext
from service.errors import ConfigError, TallyError
from service.evidence.anchor import anchor_once

log = logging.getLogger(__name__)


class _GuardedSource:
    """A log source whose calls hold the context's chain guard (embedded chain)."""

    def __init__(self, inner: Any, ctx: ServiceContext) -> None:
        self._inner = inner
        self._ctx = ctx

    @property
    def name(self) -> str:
        return str(self._inner.name)

    def chain_id(self) -> int:
        with self._ctx.chain_guard():
            return int(self._inner.chain_id())

    def head(self) -> int:
        with self._ctx.chain_guard():
            return int(self._inner.head())

    def blocks(self, numbers: Sequence[int]) -> Any:
        with self._ctx.chain_guard():
            return self._inner.blocks(numbers)

    def get_logs(self, addresses: Sequence[str], start: int, end: int) -> Any:
        with self._ctx.chain_guard():
            return self._inner.get_logs(addresses, start, end)


class BackgroundLoops:
    """Start and stop the anchoring and indexing loops for one context."""

    def __init__(self, ctx: ServiceContext, *, anchor_every_s: float, index: bool) -> None:
        self.ctx = ctx
        self.anchor_every_s = anchor_every_s
        self.index = index
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.anchor_every_s > 0:
            if self.ctx.operator is None:
                raise ConfigError("anchoring needs the operator key of the network")
            self._spawn("tally-anchor", self._anchor_loop)
        if self.index:
            self._spawn("tally-index", self._index_loop)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout_s: float = 30.0) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def anchor_now(self) -> None:
        """One anchoring step (what each tick of the loop does)."""
        ctx = self.ctx
        assert ctx.operator is not None
        with ctx.chain_guard():
            row = anchor_once(
                engine=ctx.engine,
                chain=ctx.chain,
                ledger=ctx.contracts.ledger,
                operator=ctx.operator,
            )
        if row is not None:
            log.info("anchored checkpoint %d at size %d", row.seq, row.tree_size)

    def _anchor_loop(self) -> None:
        while not self.stop_event.wait(self.anchor_every_s):
            try:
                self.anchor_now()
            except TallyError as err:
                log.error(
                    "anchoring failed, retrying in %.1fs: [%s] %s",
                    self.anchor_every_s,
                    err.code,
                    err,
                )

    def _index_loop(self) -> None:
        from service.indexer.runner import Indexer
        from service.indexer.source import ReceiptSource, RpcSource

        ctx = self.ctx
        network = ctx.chain.network
        source: Any
        if ctx.chain.is_embedded:
            source = _GuardedSource(ReceiptSource(ctx.chain.w3), ctx)
        else:
            assert network.rpc_url is not None
            source = RpcSource(network.rpc_url)
        deployment = ctx.contracts.deployment
        while not self.stop_event.is_set():
            try:
                indexer = Indexer(
                    source=source,
                    engine=ctx.engine,
                    deployment=deployment,
                    network=network.name,
                    confirmations=network.confirmations,
                    start_block=max(network.start_block, deployment.deploy_block),
                    max_range=network.max_block_range,
                    chain_id=ctx.chain.chain_id,
                    stop=self.stop_event,
                    prefetch=not ctx.chain.is_embedded,
                )
                indexer.run(follow=True, poll_interval_s=network.poll_interval_s)
            except TallyError as err:
                log.error("indexer stopped: [%s] %s; restarting in 5s", err.code, err)
                self.stop_event.wait(5.0)
