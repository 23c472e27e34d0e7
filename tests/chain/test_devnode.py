"""`tally chain up/down`: a real anvil, its state kept across restarts, stopped by pid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from service.chain.devnode import anvil_binary, free_port
from service.errors import DevNodeError


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
