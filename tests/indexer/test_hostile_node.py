"""A hostile node cannot crash the indexer's JSON-RPC client with deeply nested answers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest

from service.errors import RpcUnavailable
from service.indexer.source import Backoff, RpcSource

DEEP = b"[" * 100_000  # what killed `tally serve` through its request parser (T9 item 10)


class _Deep(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(DEEP)))
        self.end_headers()
        self.wfile.write(DEEP)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def deep_node() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Deep)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_deeply_nested_node_answer_is_a_malformed_answer(deep_node: str) -> None:
    source = RpcSource(deep_node, backoff=Backoff(tries=2, base_s=0.0, sleep=lambda _: None))
    with pytest.raises(RpcUnavailable, match="malformed JSON answer"):
        source.request("eth_blockNumber", [])


def test_deeply_nested_node_answer_does_not_kill_the_process(deep_node: str) -> None:
    """In a fresh interpreter with every import done (py_ecc raises the recursion limit),
    the client survives: an error line, exit 1, not SIGSEGV."""
    code = textwrap.dedent(
        f"""
        import service.chain.client  # noqa: F401  (imports py_ecc and py-evm)
        from service.errors import RpcUnavailable
        from service.indexer.source import Backoff, RpcSource
        src = RpcSource({deep_node!r}, backoff=Backoff(tries=1))
        try:
            src.request("eth_blockNumber", [])
        except RpcUnavailable as err:
            raise SystemExit("refused: " + str(err))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, (done.returncode, done.stderr[-500:])
    assert "refused:" in done.stderr and "malformed JSON answer" in done.stderr
