"""Request limits: body size (ASGI middleware) and a per-caller token-bucket rate limit.

- Body size (``TALLY_MAX_BODY_BYTES``): a declared ``Content-Length`` above the limit is
  answered 413 before the body is read; a body without one (chunked) is counted as it
  arrives and refused with 413 as soon as it passes the limit. Nothing is buffered
  beyond the limit.
- Rate (``TALLY_RATE_LIMIT_PER_S`` tokens a second, ``TALLY_RATE_LIMIT_BURST`` at most):
  one bucket per caller: the authenticated address, else the client IP. A request with
  no token left is answered 429 with ``Retry-After`` (whole seconds until one token is
  back). Buckets live in the worker process: with N workers a caller can get up to N
  times the rate. 0 turns the limit off.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge

MAX_BUCKETS = 100_000  # callers tracked at most; full buckets are dropped past this


class RateLimiter:
    """Token buckets keyed by caller; thread-safe."""

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


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with 413 (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send) -> None:
        err = PayloadTooLarge(f"the request body is larger than {self.max_bytes} bytes")
        body = error_body(err.code, err.message)
        await send(
            {
                "type": "http.response.start",
                "status": err.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

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
