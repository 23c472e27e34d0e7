"""One error shape for every failure: ``{"error": {"code", "message", ...}}``.

- :class:`~service.errors.TallyError`: its ``status`` and stable ``code``; the message
  for 4xx (written to be safe for callers); for 5xx a generic message (the detail, which
  may name files, URLs or SQL, goes to the log only). A few detail fields that are
  meant for callers are passed through (:data:`PUBLIC_DETAIL`).
- Request validation: 422, code ``validation_error``, each problem with its field path
  (``body.entries.0``, ``query.limit``) and message; the offending input is not echoed.
- Starlette's own HTTP errors (unknown route 404, wrong method 405): ``not_found``,
  ``method_not_allowed``.
- The database unreachable (SQLAlchemy ``OperationalError``): 503
  ``database_unavailable``.
- Anything else: 500 ``internal_error``; the traceback is logged, never sent.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.limits import retry_after_header
from service.errors import RateLimited, TallyError

log = logging.getLogger("service.api")

PUBLIC_DETAIL = ("status", "leaf_index", "errors", "missing", "unexpected", "retry_after_s")
SAFE_SERVER_CODES = frozenset({"indexer_not_ready"})  # 5xx whose message is written for callers
_SERVER_MESSAGES = {
    502: "the chain node failed to answer usefully",
    503: "a service Tally depends on is unavailable",
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    http_status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra or {})
    return JSONResponse({"error": body}, status_code=http_status, headers=headers)


def _public(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: detail[k] for k in PUBLIC_DETAIL if k in detail}


async def tally_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TallyError)
    headers: dict[str, str] | None = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": retry_after_header(float(exc.detail.get("retry_after_s", 1)))}
    if exc.status >= 500 and exc.code not in SAFE_SERVER_CODES:
        log.error("%s %s failed: [%s] %s", request.method, request.url.path, exc.code, exc)
        message = _SERVER_MESSAGES.get(exc.status, "internal error")
        return error_response(exc.status, exc.code, message)
    if exc.status in (401,):
        headers = {"WWW-Authenticate": "Bearer"}
    return error_response(exc.status, exc.code, exc.message, headers, _public(exc.detail))


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        fields.append({"path": _field_path(err.get("loc", ())), "message": message[:300]})
    summary = "; ".join(f"{f['path']}: {f['message']}" for f in fields[:5])
    return error_response(
        422, "validation_error", f"the request is not valid: {summary}", extra={"fields": fields}
    )


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    return error_response(503, "database_unavailable", _SERVER_MESSAGES[503])


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(TallyError, tally_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(OperationalError, database_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
