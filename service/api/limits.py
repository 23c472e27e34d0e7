"""Request limits: body size and JSON depth (ASGI middleware), a per-caller rate limit.

- Body size (``TALLY_MAX_BODY_BYTES``): a declared ``Content-Length`` above the limit is
  answered 413 before the body is read; a body without one (chunked) is counted as it
  arrives and refused with 413 as soon as it passes the limit. Nothing is buffered
  beyond the limit.
- Rate (``TALLY_RATE_LIMIT_PER_S`` tokens a second, ``TALLY_RATE_LIMIT_BURST`` at most):
  one bucket per caller: the authenticated address, else the client IP. A request with
  no token left is answered 429 with ``Retry-After`` (whole seconds until one token is
  back). 0 turns the limit off. Where the buckets live follows the database
  (:func:`make_limiter`): on PostgreSQL in the table ``api_rate_buckets``, taken with
  one atomic upsert per request on the database's clock, so every worker and every
  host on that database shares one bucket per caller (:class:`SqlRateLimiter`); on
  SQLite in the process (:class:`RateLimiter`), which is exact there because
  ``tally serve`` runs one worker on SQLite, and keeps the request path off SQLite's
  single write lock, which ingest needs.
- JSON depth (:data:`service.jsonsafe.MAX_DEPTH`, 64): every request body is scanned
  before any JSON parser sees it, and one that could nest deeper is answered 400
  ``json_too_deep`` (a body of 100,000 ``[`` used to crash the server, see
  :mod:`service.jsonsafe`). The body is already bounded by the size limit.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import JsonTooDeep, PayloadTooLarge, TallyError
from service.jsonsafe import MAX_DEPTH, check_depth, decode

MAX_BUCKETS = 100_000  # callers tracked at most; full buckets are dropped past this


class Limiter(Protocol):
    """What the ``rate_limit`` dependency needs: take one token for a caller."""

    rate: float
    burst: int

    @property
    def enabled(self) -> bool: ...

    def take(self, key: str) -> float | None: ...


class RateLimiter:
    """Token buckets keyed by caller, in this process; thread-safe."""

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float | None:
        """Take one token for ``key``: None when allowed, else seconds until one is back."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > MAX_BUCKETS:
                    self._prune(now)
                return None
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [
            k
            for k, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]


_TAKE = text(
    """
    INSERT INTO api_rate_buckets AS b (key, tokens, at)
    VALUES (:key, :burst - 1, extract(epoch FROM clock_timestamp()))
    ON CONFLICT (key) DO UPDATE
    SET tokens = LEAST(:burst, b.tokens + GREATEST(EXCLUDED.at - b.at, 0) * :rate) - 1,
        at = GREATEST(b.at, EXCLUDED.at)
    WHERE LEAST(:burst, b.tokens + GREATEST(EXCLUDED.at - b.at, 0) * :rate) >= 1
    RETURNING b.tokens
    """
)
_LEVEL = text(
    """
    SELECT LEAST(:burst, tokens + GREATEST(extract(epoch FROM clock_timestamp()) - at, 0)
                 * :rate)
    FROM api_rate_buckets WHERE key = :key
    """
)
_PRUNE = text(
    "DELETE FROM api_rate_buckets WHERE at < extract(epoch FROM clock_timestamp()) - :idle"
)
PRUNE_EVERY_S = 60.0


class SqlRateLimiter:
    """Token buckets in the shared PostgreSQL table ``api_rate_buckets``.

    One statement per request: an upsert that refills the bucket by the time since its
    last take (the database's clock, so workers on several hosts agree), takes a token
    only when one is there (the ``WHERE`` of ``ON CONFLICT DO UPDATE``), and returns a
    row only then. The row lock it takes makes concurrent takes of one caller queue up,
    so N workers give the caller exactly one bucket. A refused take reads the level
    once more to say when a token is back. Buckets idle for ``burst / rate`` seconds
    are full again, so they are deleted (once a minute per process).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._clock = clock
        self._pruned_at = clock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float | None:
        """Take one token for ``key``: None when allowed, else seconds until one is back."""
        if not self.enabled:
            return None
        params = {"key": key, "burst": float(self.burst), "rate": self.rate}
        with self._engine.connect() as conn:
            if conn.execute(_TAKE, params).first() is not None:
                self._maybe_prune(conn)
                return None
            level = conn.execute(_LEVEL, params).scalar()
        tokens = 0.0 if level is None else float(level)
        return max(0.0, 1.0 - tokens) / self.rate

    def _maybe_prune(self, conn: Connection) -> None:
        now = self._clock()
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        conn.execute(_PRUNE, {"idle": self.burst / self.rate})


def make_limiter(*, engine: Engine, rate_per_s: float, burst: int) -> Limiter:
    """The shared table on PostgreSQL, the in-process buckets otherwise (see the module
    docstring)."""
    if engine.dialect.name == "postgresql":
        return SqlRateLimiter(engine=engine, rate_per_s=rate_per_s, burst=burst)
    return RateLimiter(rate_per_s=rate_per_s, burst=burst)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def send_error(send: Send, err: TallyError, *, close: bool = False) -> None:
    """Answer with ``err`` in the API's error shape, before the app ran."""
    body = error_body(err.code, err.message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with 413 (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send) -> None:
        err = PayloadTooLarge(f"the request body is larger than {self.max_bytes} bytes")
        await send_error(send, err, close=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
                break
        received = 0
        too_large = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body passed the limit, whatever the app answers (FastAPI turns the
            # read error into a 400) is replaced by one 413.
            nonlocal refused
            if not too_large:
                await send(message)
                return
            if not refused:
                refused = True
                await self._refuse(send)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if too_large and not refused:
            refused = True
            await self._refuse(send)


class _BodyTooLarge(Exception):
    """Raised inside the app when the streamed body passes the limit."""


THREAD_SCAN_BYTES = 64 * 1024  # bodies above this are scanned off the event loop


def _check_body(body: bytes, max_depth: int) -> None:
    try:
        text = decode(body)
    except (UnicodeDecodeError, LookupError):
        return  # not text: every JSON parser refuses it before nesting anything
    check_depth(text, max_depth=max_depth, what="the request body")


class JsonDepthMiddleware:
    """Read the whole body (bounded by :class:`BodyLimitMiddleware`, which sits outside
    this one), refuse it with 400 ``json_too_deep`` if it could nest deeper than
    ``max_depth``, else hand it to the app unchanged."""

    def __init__(self, app: ASGIApp, *, max_depth: int = MAX_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        pending: list[Message] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away mid-body
                pending.append(message)
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            if len(body) > THREAD_SCAN_BYTES:
                await run_in_threadpool(_check_body, body, self.max_depth)
            else:
                _check_body(body, self.max_depth)
        except JsonTooDeep as err:
            await send_error(send, err)
            return
        pending.insert(0, {"type": "http.request", "body": body, "more_body": False})

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send)
