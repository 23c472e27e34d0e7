"""The FastAPI application: wires routers, error handlers, limits and metrics.

``create_app()`` (what ``tally serve`` runs, through the uvicorn factory ``serve_app``)
builds its :class:`~service.api.context.ServiceContext` from the environment at startup;
``create_app(context=...)`` serves an existing one (tests, tools). OpenAPI at
``/openapi.json``, interactive docs at ``/docs``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import Depends, FastAPI

from service import web
from service.api import errors
from service.api.background import BackgroundLoops
from service.api.context import REQUEST_THREADS, ServiceContext, build_context
from service.api.deps import rate_limit
from service.api.limits import BodyLimitMiddleware, JsonDepthMiddleware
from service.api.metrics import MetricsMiddleware
from service.api.routes import (
    audit,
    auth,
    catalog,
    domain,
    evidence,
    log,
    ops,
    participants,
    rounds,
)
from service.api.schemas import ErrorOut
from service.jsonsafe import limit_recursion
from service.settings import Settings, load_settings

API_VERSION = "1.0.0"
DESCRIPTION = (
    "Tally: tamper-evident usage evidence and contribution-weighted settlement for trusted "
    "data spaces. The public log (leaf commitments, checkpoints, proofs), the catalog and "
    "rounds need no token; an entry, its receipt, agreements and statements go only to "
    "their parties, the auditor and the operator (others get the 404 of a missing entry); "
    "everything else needs a bearer token from Sign-In with Ethereum "
    "(`POST /v1/auth/challenge`, then `POST /v1/auth/token`) or an operator API key "
    '(`X-API-Key`). Errors are `{"error": {"code", "message"}}` with stable codes.'
)
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in (
        (400, "Bad input (`invalid_input`, `json_too_deep`, ...)"),
        (401, "No valid credential (`unauthenticated`, `invalid_token`, ...)"),
        (403, "Wrong role or suspended (`role_required`, `participant_suspended`, ...)"),
        (404, "Not found (`entry_not_found`, `not_anchored`, ...)"),
        (413, "Body or batch too large"),
        (422, "Validation failed (`validation_error`, with field paths)"),
        (429, "Rate limited (`rate_limited`; see Retry-After)"),
    )
}

logger = logging.getLogger("service.api")


def create_app(
    *, context: ServiceContext | None = None, settings: Settings | None = None
) -> FastAPI:
    """The API app over ``context``, or over one built from ``settings`` at startup."""
    conf = context.settings if context is not None else (settings or load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # as many route threads as pooled connections (see REQUEST_THREADS)
        to_thread.current_default_thread_limiter().total_tokens = REQUEST_THREADS
        ctx = context if context is not None else build_context(conf)
        app.state.ctx = ctx
        loops = BackgroundLoops(ctx, anchor_every_s=conf.anchor_every_s, index=conf.index_follow)
        loops.start()
        app.state.loops = loops
        try:
            yield
        finally:
            loops.stop()
            if context is None:
                ctx.close()

    app = FastAPI(
        title="Tally API",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=COMMON_ERRORS,
    )
    if context is not None:
        app.state.ctx = context
    errors.install(app)
    limited = [Depends(rate_limit)]
    for module in (auth, domain, evidence, log, participants, rounds, audit, catalog):
        app.include_router(module.router, dependencies=limited)
    app.include_router(ops.router)
    web.mount(app)  # the dashboard at / (pages read through the routes above)
    app.add_middleware(JsonDepthMiddleware)  # inside the size limit: reads a bounded body
    app.add_middleware(BodyLimitMiddleware, max_bytes=conf.max_body_bytes)
    app.add_middleware(MetricsMiddleware)  # outermost: 413s are counted too
    return app


def serve_app() -> FastAPI:
    """``tally serve``'s uvicorn factory, run in every worker process: the recursion
    limit that imports raised to 100,000 is put back first
    (:func:`service.jsonsafe.limit_recursion`), then the app is built from the environment."""
    limit_recursion()
    return create_app()
