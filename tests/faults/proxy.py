"""An RPC fault proxy on loopback: Tally talks to it, it talks to anvil, and a seeded
schedule decides what goes wrong with each request.

Faults (``KINDS``):

- ``drop``: the connection is reset before the request reaches the node;
- ``drop_reply``: the node handles the request, then the connection is reset (the
  caller cannot know whether a transaction was sent);
- ``delay``: the request waits up to ``max_delay_s`` before it is forwarded (longer
  than a short client timeout, it is a timeout);
- ``http_503``: answered 503 without reaching the node;
- ``http_504``: the node handles the request, the caller gets 504;
- ``truncate``: the node's JSON answer cut in half (a well-formed HTTP reply);
- ``chain_id``: ``eth_chainId`` answered with another chain's id (only single
  ``eth_chainId`` requests get it, at their own rate ``chain_id_rate``).

The same seed gives the same faults for the same sequence of requests. ``enabled``
turns the faults off (everything is forwarded as is); ``injected`` counts the faults
applied, by kind, and ``by_method`` by JSON-RPC method.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

KINDS = ("drop", "drop_reply", "delay", "http_503", "http_504", "truncate")
FLIPPED_CHAIN_ID = 1  # what a flipped eth_chainId answers (mainnet)


@dataclass
class FaultSchedule:
    """Which fault (or none) the next request gets: seeded, drawn in arrival order."""

    seed: int
    rate: float = 0.25
    kinds: tuple[str, ...] = KINDS
    chain_id_rate: float = 0.0
    max_delay_s: float = 0.2
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def draw(self, methods: list[str]) -> tuple[str | None, float]:
        """(fault kind or None, delay in seconds) for a request calling ``methods``."""
        roll, pick, delay = self.rng.random(), self.rng.random(), self.rng.random()
        if methods == ["eth_chainId"] and pick < self.chain_id_rate:
            return "chain_id", 0.0
        if roll >= self.rate or not self.kinds:
            return None, 0.0
        kind = self.kinds[int(pick * len(self.kinds)) % len(self.kinds)]
        return kind, delay * self.max_delay_s if kind == "delay" else 0.0


class _Handler(socketserver.StreamRequestHandler):
    """One HTTP/1.1 POST per connection (``Connection: close``): enough for JSON-RPC."""

    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        line = self.rfile.readline(65537)
        if not line:
            return
        length = 0
        while True:
            header = self.rfile.readline(65537)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = self.rfile.read(length)
        methods = _methods(body)
        kind, delay = proxy.next_fault(methods)
        if kind == "drop":
            self._reset()
            return
        if kind == "http_503":
            self._reply(503, b"upstream unavailable", "text/plain")
            return
        if kind == "delay":
            time.sleep(delay)
        if kind == "chain_id":
            self._reply(200, _chain_id_answer(body), "application/json")
            return
        status, payload = proxy.forward(body)
        if kind == "drop_reply":
            self._reset()
        elif kind == "http_504":
            self._reply(504, b"gateway timeout", "text/plain")
        elif kind == "truncate":
            self._reply(status, payload[: max(1, len(payload) // 2)], "application/json")
        else:
            self._reply(status, payload, "application/json")

    def _reply(self, status: int, payload: bytes, content_type: str) -> None:
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            self.wfile.write(head.encode("latin-1") + payload)

    def _reset(self) -> None:
        """Close with RST: the caller sees the connection reset, no answer."""
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultProxy


def _methods(body: bytes) -> list[str]:
    try:
        call = json.loads(body)
    except ValueError:
        return []
    calls = call if isinstance(call, list) else [call]
    return [str(c.get("method")) for c in calls if isinstance(c, dict)]


def _chain_id_answer(body: bytes) -> bytes:
    """The answer to one ``eth_chainId`` call, with another chain's id."""
    call: Any = json.loads(body)
    return json.dumps(
        {"jsonrpc": "2.0", "id": call.get("id"), "result": hex(FLIPPED_CHAIN_ID)}
    ).encode()


class FaultProxy:
    """The proxy: ``url`` for Tally, ``upstream`` the node; a context manager."""

    def __init__(self, upstream: str, schedule: FaultSchedule) -> None:
        self.upstream = upstream
        self.schedule = schedule
        self.enabled = True
        self.requests = 0
        self.injected: Counter[str] = Counter()
        self.by_method: Counter[str] = Counter()
        self.by_kind_method: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def faults(self) -> int:
        return sum(self.injected.values())

    def next_fault(self, methods: list[str]) -> tuple[str | None, float]:
        with self._lock:
            self.requests += 1
            if not self.enabled:
                return None, 0.0
            kind, delay = self.schedule.draw(methods)
            if kind is not None:
                self.injected[kind] += 1
                for m in methods or ["?"]:
                    self.by_method[m] += 1
                    self.by_kind_method[kind, m] += 1
            return kind, delay

    def forward(self, body: bytes) -> tuple[int, bytes]:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        r = session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=60
        )
        return r.status_code, r.content

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextlib.contextmanager
    def off(self) -> Iterator[None]:
        """No faults inside the block."""
        before, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = before

    def lost_sends(self) -> int:
        """Transactions that reached the node while the sender saw no answer."""
        return sum(
            n
            for (kind, method), n in self.by_kind_method.items()
            if method == "eth_sendRawTransaction" and kind in ("drop_reply", "http_504", "delay")
        )

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "faults": self.faults,
            "by_kind": dict(sorted(self.injected.items())),
        }


@contextlib.contextmanager
def fault_proxy(upstream: str, schedule: FaultSchedule) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, schedule).start()
    try:
        yield proxy
    finally:
        proxy.close()
