"""Real HTTP servers on loopback for the auditor's API source: the Tally API (uvicorn in a
thread, over a real database) and a hostile proxy in front of it that rewrites answers.

The proxy (``http.server``) forwards each GET (with its ``Authorization``) to the honest
API and hands the answer to its ``attack`` (when set), which returns what is served
instead: another status, body or header, a sleep, or the honest answer (POSTs, the
sign-in, pass through). ``hits`` records every path and query asked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from sqlalchemy.engine import Engine

from service.api.context import make_context
from service.api.main import create_app
from service.chain.devnode import free_port
from tests.api.conftest import api_settings
from tests.space import Space


@contextmanager
def serve_api(space: Space, engine: Engine, **settings: Any) -> Iterator[str]:
    """The Tally API over ``engine`` on a free loopback port (uvicorn in a thread)."""
    ctx = make_context(
        settings=api_settings(**settings),
        engine=engine,
        chain=space.chain,
        contracts=space.contracts,
        operator=space.operator,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(context=ctx), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):  # bounded: at most 10 s for the server to bind
        if server.started:
            break
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def doc(self) -> Any:
        return json.loads(self.body)

    def with_doc(self, doc: Any) -> Reply:
        return Reply(self.status, json.dumps(doc).encode(), self.headers)


@dataclass
class Asked:
    path: str
    query: dict[str, int]


Attack = Callable[[Asked, Reply], Reply]
ENTRY_ROUTES = ("/v1/log/entries", "/v1/evidence")  # public leaf pages, full entry pages


class HostileProxy:
    """A real HTTP server that serves the honest API's answers through ``attack``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=10)
        self.attack: Attack | None = None
        self.hits: list[Asked] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                query = {k: int(v[0]) for k, v in parse_qs(split.query).items()}
                asked = Asked(split.path, query)
                proxy.hits.append(asked)
                auth = self.headers.get("Authorization")
                honest = proxy.upstream.get(
                    self.path, headers={"Authorization": auth} if auth else {}
                )
                reply = Reply(honest.status_code, honest.content)
                if proxy.attack is not None:
                    reply = proxy.attack(asked, reply)
                self._send(reply)

            def do_POST(self) -> None:  # sign-in passes through unchanged
                length = int(self.headers.get("Content-Length") or 0)
                honest = proxy.upstream.post(
                    self.path,
                    content=self.rfile.read(length),
                    headers={"Content-Type": "application/json"},
                )
                self._send(Reply(honest.status_code, honest.content))

            def _send(self, reply: Reply) -> None:
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout attack)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def entry_pages(self) -> list[int]:
        """The ``start`` of every entries page asked for, in order."""
        return [h.query["start"] for h in self.hits if h.path in ENTRY_ROUTES]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.upstream.close()


def on(path: str, change: Callable[[Asked, Reply], Reply]) -> Attack:
    """An attack on one route only (the other answers stay honest)."""

    def attack(asked: Asked, reply: Reply) -> Reply:
        return change(asked, reply) if asked.path == path else reply

    return attack
