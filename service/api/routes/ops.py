"""Liveness, readiness (public) and Prometheus metrics (operator role); no version prefix.

``/metrics`` tells who calls what how often and how far anchoring lags: operational
detail for the operator, not for the public. A scraper authenticates with an operator
API key (``Authorization: Bearer tly_...`` or ``X-API-Key``).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from service.api.deps import CtxDep, OperatorDep
from service.api.health import lags, readiness
from service.api.metrics import CONTENT_TYPE_LATEST, render
from service.api.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up and answering."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def readyz(ctx: CtxDep) -> JSONResponse:
    """The database and the chain node answer; indexer and anchoring lag (503 when not
    ready)."""
    report = readiness(ctx)
    return JSONResponse(report.to_json(), status_code=200 if report.ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def metrics(ctx: CtxDep, principal: OperatorDep) -> Response:
    """Prometheus text format: requests, latencies, ingest counts, anchor and indexer lag.
    Operator role (a token, or an operator API key as ``Authorization: Bearer tly_...``)."""
    return Response(render(lags(ctx)), media_type=CONTENT_TYPE_LATEST)
