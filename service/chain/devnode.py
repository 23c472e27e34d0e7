"""The local dev node: anvil, from the npm package ``@foundry-rs/anvil``.

``tally chain up`` starts it on 127.0.0.1 with its state under ``.tally/`` (dumped on
exit and every few seconds, loaded on start, so a dev chain survives restarts) and a
pid file; ``tally chain down`` stops it by that pid. Tests start their own anvil on a
free port with :class:`Anvil`.

A port another process listens on is refused before anvil starts (:class:`PortInUse`),
and a start only counts when the anvil we started is the one listening: it must still
run after the port answers, and (with a log file, as ``tally chain up`` has) must have
logged ``Listening on 127.0.0.1:<port>``; otherwise another node could answer for a
dead one. A pid in the pid file counts as running only while it is alive, not a
zombie, and (where ``/proc`` exists) an anvil.

The binary: ``TALLY_ANVIL_BIN`` if set, else the one in ``node_modules`` (``make node``,
i.e. ``npm ci``), else ``anvil`` on ``PATH`` (foundryup).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from service.chain.keys import DEV_MNEMONIC
from service.errors import DevNodeError, PortInUse

ROOT = Path(__file__).resolve().parents[2]
ANVIL_CHAIN_ID = 31337
HOST = "127.0.0.1"
LISTEN_WAIT_S = 10.0  # how long a started anvil may take to log that it listens


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
    if path.is_file():
        return path
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise DevNodeError(
        f"anvil not found (looked at {path.relative_to(ROOT)} and on PATH): run `make node` "
        "(npm ci: installs @foundry-rs/anvil into node_modules/), or install foundry's anvil "
        "on PATH, or set TALLY_ANVIL_BIN"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def port_in_use(port: int, *, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    with socket.socket() as s:
        s.settimeout(0.5)
        try:
            s.connect((host, port))
        except OSError:
            return False
        return True


def _log_tail(path: Path | None, offset: int) -> str:
    if path is None or not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", errors="replace")


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


# A node configured like FISCO BCOS-class consortium chains, for the legacy build profile:
# the istanbul EVM (no PUSH0, BASEFEE, PREVRANDAO; no EIP-1559 or EIP-2930 transactions, no
# EIP-2929 warm/cold gas) and gas price 0 (Anvil(**LEGACY_NODE)).
LEGACY_NODE: dict[str, Any] = {"hardfork": "istanbul", "gas_price": 0}


@dataclass
class Anvil:
    """One anvil process on 127.0.0.1 (``hardfork`` and ``gas_price``: see LEGACY_NODE)."""

    port: int = field(default_factory=free_port)
    accounts: int = 20
    hardfork: str = "prague"
    gas_price: int | None = None  # anvil's own default when None
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
            "--hardfork", self.hardfork,
        ]  # fmt: skip
        if self.gas_price is not None:
            cmd += ["--gas-price", str(self.gas_price)]
        if self.state_path is not None:
            cmd += ["--state", str(self.state_path), "--state-interval", str(self.state_interval_s)]
        if self.no_mining:
            cmd.append("--no-mining")
        return cmd + list(self.extra_args)

    def start(self, *, detach: bool = False) -> Anvil:
        """Start anvil and wait until it answers; :class:`PortInUse` when another process
        holds the port (found before the start, or by anvil failing to listen)."""
        if port_in_use(self.port):
            raise PortInUse(
                f"port {self.port} on {HOST} is already in use by another process", port=self.port
            )
        offset = self.log_path.stat().st_size if self.log_path and self.log_path.is_file() else 0
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
            self._confirm_listening(offset)
        except DevNodeError as err:
            self.stop()
            tail = _log_tail(self.log_path, offset)
            if "address already in use" in tail.lower():
                raise PortInUse(
                    f"port {self.port} on {HOST} is already in use by another process "
                    "(anvil could not listen there)",
                    port=self.port,
                ) from None
            if tail.strip():
                last = tail.strip().splitlines()[-1]
                raise DevNodeError(f"{err.message}; anvil's log ends with: {last}") from None
            raise
        return self

    def _confirm_listening(self, log_offset: int) -> None:
        """The anvil we started is the one that answered (see the module docstring)."""
        assert self.proc is not None
        deadline = time.monotonic() + LISTEN_WAIT_S
        needle = f"Listening on {HOST}:{self.port}"
        while True:
            if self.proc.poll() is not None:
                raise DevNodeError(
                    f"anvil exited with code {self.proc.returncode}; something else "
                    f"answered on port {self.port}"
                )
            if self.log_path is None or needle in _log_tail(self.log_path, log_offset):
                return
            if time.monotonic() > deadline:
                raise DevNodeError(f"anvil never logged {needle!r} within {LISTEN_WAIT_S}s")
            time.sleep(0.05)

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


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own exited child (a zombie otherwise looks alive)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    """``pid`` runs: it exists, is not a zombie and, where ``/proc`` tells, is an anvil."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path("/proc") / str(pid)
    if not Path("/proc/self").is_dir():
        return True  # no /proc (macOS): kill(0) is all we can ask
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and "anvil" in Path(argv0).name


def read_pid_file(data_dir: Path) -> tuple[int, str] | None:
    """(pid, url) as the pid file says, alive or not; None without a readable one."""
    pid_file = _pid_file(data_dir)
    if not pid_file.is_file():
        return None
    try:
        pid_text, url = pid_file.read_text().split()
        return int(pid_text), url
    except ValueError:
        return None


def running_devnode(data_dir: Path) -> tuple[int, str] | None:
    """(pid, url) of the dev node started from ``data_dir``, if it still runs."""
    found = read_pid_file(data_dir)
    return found if found is not None and _alive(found[0]) else None


def chain_up(data_dir: Path, *, port: int = 8545) -> tuple[str, int, bool]:
    """Start the dev node unless it runs; returns (url, pid, started_now).

    :class:`PortInUse` (naming the port, with a ``--port`` hint) when another process
    holds ``port``; a stale pid file (its process gone) is replaced."""
    found = running_devnode(data_dir)
    if found is not None:
        return found[1], found[0], False
    data_dir.mkdir(parents=True, exist_ok=True)
    _pid_file(data_dir).unlink(missing_ok=True)
    try:
        node = Anvil(
            port=port,
            accounts=10,
            state_path=data_dir / "anvil-state.json",
            log_path=data_dir / "anvil.log",
        ).start(detach=True)
    except PortInUse as err:
        raise PortInUse(
            f"{err.message}; stop it, or start the dev node on a free port: "
            f"`tally chain up --port N` (then use --rpc http://{HOST}:N)",
            port=port,
        ) from None
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
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
    return pid
