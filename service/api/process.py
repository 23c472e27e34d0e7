"""Run ``tally serve`` as a child process (tests and the benchmark drive a real server).

:class:`ServeProcess` starts ``python -m service.cli serve`` in its own process group
(so its uvicorn workers can be stopped or killed together, by that group's id), waits
until ``/readyz`` answers 200, and stops it with SIGTERM (graceful) or SIGKILL (a
crash). :func:`write_network_file` writes the ``chain-config`` file of an RPC node
(anvil) the server is pointed at with ``TALLY_NETWORK``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.errors import DevNodeError


def write_network_file(
    path: Path, *, name: str, rpc_url: str, chain_id: int, key_source: str = "dev-mnemonic"
) -> Path:
    """A dev RPC network at ``rpc_url``, as a chain-config TOML file.

    ``key_source`` is the ``[keys]`` source: the dev mnemonic, or ``env`` (the operator and
    note keys from ``TALLY_OPERATOR_KEY`` / ``TALLY_NOTE_KEY``).
    """
    path.write_text(
        f'name = "{name}"\nkind = "rpc"\ndev = true\nrpc_url = "{rpc_url}"\n'
        f"chain_id = {chain_id}\nconfirmations = 0\npoll_interval_s = 0.5\n\n"
        f'[keys]\nsource = "{key_source}"\n',
        encoding="utf-8",
    )
    return path


@dataclass
class ServeProcess:
    """One ``tally serve`` child process and its workers."""

    env: dict[str, str]
    port: int
    workers: int = 1
    anchor_every_s: float = 0.0
    index: bool = False
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def listen_options(self) -> list[str]:
        """Loopback host, port and worker count: the options ``tally serve`` and uvicorn share."""
        return ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            *self.listen_options(),
            "--anchor-every",
            str(self.anchor_every_s),
            "--index" if self.index else "--no-index",
        ]

    def start(self, *, timeout_s: float = 60.0) -> ServeProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command(),
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: the workers go with it
            )
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]
        self.wait_ready(timeout_s=timeout_s)
        return self

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]

    def wait_ready(self, *, timeout_s: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DevNodeError(
                    f"tally serve exited with {self.proc.returncode}: {self._log_tail()}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise DevNodeError(f"tally serve not ready after {timeout_s}s: {self._log_tail()}")

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.proc.pid, sig)  # the group this child leads (start_new_session)

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (a crash: nothing is flushed)."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait()

    def stop(self, *, timeout_s: float = 20.0) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._signal_group(signal.SIGKILL)  # any worker left behind
