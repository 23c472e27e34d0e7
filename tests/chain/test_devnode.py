"""`tally chain up/down/status`: a real anvil, its state kept across restarts, stopped by
pid; a port held by another process is refused, naming it; a dead pid is never running."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from service.chain.devnode import Anvil, anvil_binary, free_port
from service.chain.rpc import probe_chain_id
from service.errors import ConfigError, DevNodeError, RpcUnavailable


def _tally(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TALLY_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _rpc(url: str, method: str, params: list[object] | None = None) -> object:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    return requests.post(url, json=body, timeout=5).json()["result"]


def test_chain_up_persists_state_and_down_stops_it(tmp_path: Path) -> None:
    try:
        anvil_binary()
    except DevNodeError:
        if os.environ.get("CI"):
            raise
        pytest.skip("anvil not installed")
    port = free_port()
    up = _tally("chain", "up", "--port", str(port), data_dir=tmp_path)
    assert up.returncode == 0, up.stderr
    url = f"http://127.0.0.1:{port}"
    assert url in up.stdout
    try:
        assert int(str(_rpc(url, "eth_chainId")), 16) == 31337
        for _ in range(3):
            _rpc(url, "evm_mine")
        height = int(str(_rpc(url, "eth_blockNumber")), 16)
        assert height >= 3
        again = _tally("chain", "up", "--port", str(port), data_dir=tmp_path)
        assert "already running" in again.stdout
    finally:
        down = _tally("chain", "down", data_dir=tmp_path)
    assert down.returncode == 0 and "stopped anvil" in down.stdout
    with pytest.raises(requests.ConnectionError):
        _rpc(url, "eth_chainId")
    assert (tmp_path / "anvil-state.json").is_file()

    up2 = _tally("chain", "up", "--port", str(port), data_dir=tmp_path)
    try:
        assert up2.returncode == 0, up2.stderr
        assert int(str(_rpc(url, "eth_blockNumber")), 16) >= height  # the chain survived
    finally:
        _tally("chain", "down", data_dir=tmp_path)
    assert "no dev node running" in _tally("chain", "down", data_dir=tmp_path).stdout


def _need_anvil() -> None:
    try:
        anvil_binary()
    except DevNodeError:
        if os.environ.get("CI"):
            raise
        pytest.skip("anvil not installed")


class _FakeNode(BaseHTTPRequestHandler):
    """Another process's JSON-RPC node: answers eth_chainId 31337 like an anvil would."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x7a69"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_node() -> Iterator[int]:
    """A real listener (answering JSON-RPC) on a port of its own; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeNode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error[")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_chain_up_on_a_port_another_process_answers_fails_naming_the_port(
    tmp_path: Path, other_node: int
) -> None:
    _need_anvil()
    up = _tally("chain", "up", "--port", str(other_node), data_dir=tmp_path)
    assert up.returncode == 1
    line = _one_error_line(up.stderr)
    assert line.startswith("error[port_in_use]: ")
    assert f"port {other_node} " in line and "--port" in line
    assert not (tmp_path / "anvil.pid").exists()
    status = _tally("chain", "status", data_dir=tmp_path)
    assert status.returncode == 0 and "no dev node running" in status.stdout


def test_anvil_that_cannot_listen_is_not_reported_as_started(tmp_path: Path) -> None:
    """The port is held by a socket that is bound but not listening: a connection is
    refused (so the probe finds the port free), yet anvil cannot bind it. The start must
    see its own anvil fail, not report it running."""
    _need_anvil()
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = int(holder.getsockname()[1])
    try:
        up = _tally("chain", "up", "--port", str(port), data_dir=tmp_path)
    finally:
        holder.close()
    assert up.returncode == 1
    line = _one_error_line(up.stderr)
    assert line.startswith("error[port_in_use]: ") and f"port {port} " in line
    assert "--port" in line
    assert not (tmp_path / "anvil.pid").exists()


def test_status_never_reports_a_dead_zombie_or_foreign_pid_as_running(tmp_path: Path) -> None:
    _need_anvil()
    url = "http://127.0.0.1:1"
    dead = subprocess.Popen(["sleep", "30"])
    dead.kill()
    dead.wait()
    foreign = subprocess.Popen(["sleep", "30"])  # alive, but not an anvil (a reused pid)
    zombie = Anvil().start()
    assert zombie.proc is not None
    zombie.proc.kill()  # not waited for: a zombie until we reap it below
    try:
        pids = {"dead": dead.pid, "foreign": foreign.pid, "zombie": zombie.proc.pid}
        runs = []
        for name, pid in pids.items():
            (tmp_path / name).mkdir()
            (tmp_path / name / "anvil.pid").write_text(f"{pid} {url}\n")
            args = ["status"] if name != "foreign" else ["down"]
            env = {**os.environ, "TALLY_DATA_DIR": str(tmp_path / name)}
            runs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "service.cli", "chain", *args],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for (name, pid), proc in zip(pids.items(), runs, strict=True):
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert out.startswith("no dev node running"), (name, out)
            if name != "foreign":
                assert f"pid {pid} from the pid file is gone" in out
        assert foreign.poll() is None  # `chain down` did not signal the foreign process
    finally:
        foreign.kill()
        foreign.wait()
        zombie.proc.wait()


def test_rpc_probe_names_the_url_and_the_reason() -> None:
    port = free_port()  # nothing listens
    with pytest.raises(RpcUnavailable) as info:
        probe_chain_id(f"http://127.0.0.1:{port}", tries=1)
    assert info.value.code == "rpc_unavailable"
    assert f"http://127.0.0.1:{port}: connection refused" in info.value.message
    assert "tally chain up" in info.value.message
    with pytest.raises(ConfigError):
        probe_chain_id("ftp://127.0.0.1:8545")
