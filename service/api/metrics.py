"""Prometheus metrics of the API (``GET /metrics``, text format).

Counters and histograms are process-wide (prometheus-client's default registry). With
several workers, ``tally serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before they start and
the endpoint aggregates every worker's samples (prometheus-client multiprocess mode).
The lag gauges are computed from the database and the chain at scrape time, so they
agree whichever worker answers.

- ``tally_http_requests_total{method, route, status}``
- ``tally_http_request_duration_seconds{method, route}`` (histogram)
- ``tally_evidence_items_total{status}``: ingested entries by result
  (accepted, duplicate, rejected)
- ``tally_evidence_rejections_total{code}``: rejected entries by error code
  (``signature_invalid``, ``quota_exceeded``, ...), what the dashboard's overview lists
- ``tally_log_size``, ``tally_anchored_size``, ``tally_anchor_lag_entries``,
  ``tally_anchor_lag_seconds`` (age of the oldest unanchored entry),
  ``tally_indexer_lag_blocks`` (-1 when the mirror has not indexed this deployment)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import func
from sqlmodel import Session, col, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.evidence.anchor import latest_anchor
from service.evidence.models import LogEntry
from service.evidence.tiles import MerkleLog, SqlTileStorage

__all__ = [
    "CONTENT_TYPE_LATEST",
    "EVIDENCE_ITEMS",
    "EVIDENCE_REJECTIONS",
    "Lags",
    "MetricsMiddleware",
    "read_lags",
    "render",
]

REQUESTS = Counter(
    "tally_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "tally_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVIDENCE_ITEMS = Counter(
    "tally_evidence_items_total", "Evidence entries submitted, by result.", ["status"]
)
EVIDENCE_REJECTIONS = Counter(
    "tally_evidence_rejections_total", "Evidence entries rejected, by error code.", ["code"]
)


@dataclass(frozen=True)
class Lags:
    log_size: int
    anchored_size: int
    anchor_lag_entries: int
    anchor_lag_seconds: float
    indexer_lag_blocks: int | None


def read_lags(*, session: Session, indexer_lag_blocks: int | None) -> Lags:
    """Log size, what is anchored, and how far behind anchoring is (entries, seconds)."""
    size = MerkleLog(SqlTileStorage(session)).size()
    last = latest_anchor(session)
    anchored = 0 if last is None else last.tree_size
    oldest: int | None = None
    if size > anchored:
        oldest = session.exec(
            select(func.min(col(LogEntry.received_at))).where(col(LogEntry.leaf_index) >= anchored)
        ).first()
    lag_s = 0.0 if oldest is None else max(0.0, time.time() - oldest)
    return Lags(size, anchored, size - anchored, lag_s, indexer_lag_blocks)


def _gauges(lags: Lags) -> bytes:
    rows = [
        ("tally_log_size", "Entries in the evidence log.", lags.log_size),
        ("tally_anchored_size", "Tree size of the latest anchored checkpoint.", lags.anchored_size),
        (
            "tally_anchor_lag_entries",
            "Entries in the log not yet covered by a checkpoint.",
            lags.anchor_lag_entries,
        ),
        (
            "tally_anchor_lag_seconds",
            "Age of the oldest entry not yet covered by a checkpoint.",
            lags.anchor_lag_seconds,
        ),
        (
            "tally_indexer_lag_blocks",
            "Blocks between the chain head and the indexer's cursor (-1: not indexed).",
            -1 if lags.indexer_lag_blocks is None else lags.indexer_lag_blocks,
        ),
    ]
    out = []
    for name, doc, value in rows:
        out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n{name} {float(value)}\n")
    return "".join(out).encode()


def render(lags: Lags | None) -> bytes:
    """The exposition text: this process's (or every worker's) metrics, then the gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    return text + (b"" if lags is None else _gauges(lags))


class MetricsMiddleware:
    """Count and time every HTTP request under its route template (not the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            method = str(scope.get("method", ""))
            LATENCY.labels(method, template).observe(time.perf_counter() - started)
            REQUESTS.labels(method, template, str(status)).inc()
