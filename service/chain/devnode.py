"""The local dev node: anvil, from the npm package ``@foundry-rs/anvil``.

``tally chain up`` starts it on 127.0.0.1 with its state under ``.tally/`` (dumped on
exit and every few seconds, loaded on start, so a dev chain survives restarts) and a
pid file; ``tally chain down`` stops it by that pid. Tests start their own anvil on a
free port with :class:`Anvil`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from service.chain.keys import DEV_MNEMONIC
from service.errors import DevNodeError

ROOT = Path(__file__).resolve().parents[2]
ANVIL_CHAIN_ID = 31337


def anvil_binary() -> Path:
    """The native anvil binary shipped inside the npm package (no download at run time)."""
    override = os.environ.get("TALLY_ANVIL_BIN")
    if override:
        return Path(override)
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = platform.system().lower()
    path = ROOT / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if not path.is_file():
        raise DevNodeError(f"anvil not found at {path}: run `npm ci` (make node) first")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_rpc(
    url: str, *, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DevNodeError(f"anvil exited with code {proc.returncode} before answering")
        try:
            if requests.post(url, json=body, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise DevNodeError(f"no JSON-RPC answer from {url} after {timeout_s}s")


@dataclass
class Anvil:
    """One anvil process on 127.0.0.1."""

    port: int = field(default_factory=free_port)
    accounts: int = 20
    state_path: Path | None = None
    state_interval_s: int = 5
    no_mining: bool = False
    log_path: Path | None = None
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(ANVIL_CHAIN_ID),
            "--accounts", str(self.accounts),
            "--mnemonic", DEV_MNEMONIC,
            "--base-fee", "0",
            "--hardfork", "prague",
        ]  # fmt: skip
        if self.state_path is not None:
            cmd += ["--state", str(self.state_path), "--state-interval", str(self.state_interval_s)]
        if self.no_mining:
            cmd.append("--no-mining")
        return cmd + list(self.extra_args)

    def start(self, *, detach: bool = False) -> Anvil:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=detach,
            )
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]
        try:
            wait_for_rpc(self.url, proc=self.proc)
        except DevNodeError:
            self.stop()
            raise
        return self

    def stop(self, *, timeout_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # anvil dumps --state on a clean exit
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- `tally chain up / down` -----------------------------------------------------------


def _pid_file(data_dir: Path) -> Path:
    return data_dir / "anvil.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_devnode(data_dir: Path) -> tuple[int, str] | None:
    """(pid, url) of the dev node started from ``data_dir``, if it still runs."""
    pid_file = _pid_file(data_dir)
    if not pid_file.is_file():
        return None
    try:
        pid_text, url = pid_file.read_text().split()
        pid = int(pid_text)
    except ValueError:
        return None
    return (pid, url) if _alive(pid) else None


def chain_up(data_dir: Path, *, port: int = 8545) -> tuple[str, int, bool]:
    """Start the dev node unless it runs; returns (url, pid, started_now)."""
    found = running_devnode(data_dir)
    if found is not None:
        return found[1], found[0], False
    data_dir.mkdir(parents=True, exist_ok=True)
    node = Anvil(
        port=port,
        accounts=10,
        state_path=data_dir / "anvil-state.json",
        log_path=data_dir / "anvil.log",
    ).start(detach=True)
    assert node.proc is not None
    _pid_file(data_dir).write_text(f"{node.proc.pid} {node.url}\n")
    return node.url, node.proc.pid, True


def chain_down(data_dir: Path, *, timeout_s: float = 10.0) -> int | None:
    """Stop the dev node by its pid file; returns the pid stopped, None if none ran."""
    found = running_devnode(data_dir)
    _pid_file(data_dir).unlink(missing_ok=True)
    if found is None:
        return None
    pid = found[0]
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    return pid
