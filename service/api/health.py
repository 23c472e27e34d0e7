"""Readiness and lag: is the database reachable, is the chain node, how far behind are
the indexer's mirror and anchoring (no FastAPI here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from service.api.context import ServiceContext
from service.api.metrics import Lags, read_lags
from service.errors import TallyError

log = logging.getLogger(__name__)


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "checks": self.checks}


def _head(ctx: ServiceContext) -> int:
    with ctx.chain_guard():
        return int(ctx.chain.w3.eth.block_number)


def indexer_lag(ctx: ServiceContext, session: Session, head: int | None) -> int | None:
    """Blocks between the head and the mirror's cursor for this deployment (None: not
    indexed here, or the head is unknown)."""
    from service.indexer.models import IndexerCursor

    if head is None:
        return None
    registry = ctx.contracts.registry.address.lower()
    for cursor in session.exec(
        select(IndexerCursor).where(IndexerCursor.chain_id == ctx.chain.chain_id)
    ):
        if registry in [a.lower() for a in cursor.addresses]:
            return max(0, head - cursor.block_number)
    return None


def lags(ctx: ServiceContext) -> Lags:
    """The gauges of ``/metrics`` (the head is read from the chain; None if it fails)."""
    try:
        head: int | None = _head(ctx)
    except (TallyError, OSError, ValueError) as err:
        log.warning("metrics: chain head unavailable: %s", err)
        head = None
    with Session(ctx.engine) as session:
        return read_lags(session=session, indexer_lag_blocks=indexer_lag(ctx, session, head))


def readiness(ctx: ServiceContext) -> Readiness:
    """Ready when the database and the chain node answer; lags are reported, not gated."""
    report = Readiness(ready=True)
    try:
        with Session(ctx.engine) as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        report.checks["database"] = {"ok": True}
    except SQLAlchemyError as err:
        log.warning("readyz: database unavailable: %s", err)
        report.ready = False
        report.checks["database"] = {"ok": False}
    head: int | None = None
    try:
        head = _head(ctx)
        report.checks["chain"] = {"ok": True, "chain_id": ctx.chain.chain_id, "head": head}
    except (TallyError, OSError, ValueError) as err:
        log.warning("readyz: chain node unavailable: %s", err)
        report.ready = False
        report.checks["chain"] = {"ok": False, "chain_id": ctx.chain.chain_id}
    if report.checks["database"]["ok"]:
        with Session(ctx.engine) as session:
            lag = read_lags(session=session, indexer_lag_blocks=indexer_lag(ctx, session, head))
        report.checks["indexer"] = {"lag_blocks": lag.indexer_lag_blocks}
        report.checks["anchoring"] = {
            "log_size": lag.log_size,
            "anchored_size": lag.anchored_size,
            "lag_entries": lag.anchor_lag_entries,
            "lag_seconds": round(lag.anchor_lag_seconds, 3),
        }
    return report
