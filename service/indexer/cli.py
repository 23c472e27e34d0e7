"""``tally index``: mirror the deployment's events into SQL; ``status``; ``rebuild``.

``tally index --network NAME | --rpc URL [--db URL] [--deployment FILE]
[--confirmations N] [--once | --follow] [--from-block N]`` indexes up to the safe head
and exits (``--once``, the default) or keeps following the chain until SIGINT/SIGTERM
(``--follow``): a range being written when the signal arrives is committed first, then
the process exits 0. ``--json`` prints a summary (blocks, events by type, reorgs,
seconds). ``tally index status`` prints the cursor, the head and the lag; ``tally
index rebuild`` recomputes the derived tables from ``chain_events``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from service.chain.config import (
    Deployment,
    NetworkConfig,
    deployment_path,
    load_deployment,
    load_network,
    rpc_network,
)
from service.chain.rpc import probe_chain_id
from service.db import make_engine
from service.errors import ChainError, ConfigError, TallyError
from service.indexer.models import create_indexer_tables
from service.indexer.runner import Indexer
from service.indexer.runner import Progress as IndexProgress
from service.indexer.source import Backoff, RpcSource
from service.settings import get_settings

console = Console()
err_console = Console(stderr=True)

PROGRESS_MIN_BLOCKS = 500  # show a progress bar when this far behind

index_app = typer.Typer(
    help="Mirror the Tally contracts' events into SQL (reorg-safe, restartable).",
    invoke_without_command=True,
    no_args_is_help=False,
)

NetworkOpt = Annotated[
    str | None,
    typer.Option("--network", "-n", help="Network name in chain-config/ (or a .toml path)."),
]
RpcOpt = Annotated[str | None, typer.Option("--rpc", help="JSON-RPC URL (instead of --network).")]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Database URL; default TALLY_DATABASE_URL.")
]
DeploymentOpt = Annotated[
    Path | None,
    typer.Option(
        "--deployment", help="Deployment file; default chain-config/deployments/<network>.json."
    ),
]
ConfirmationsOpt = Annotated[
    int | None,
    typer.Option(
        "--confirmations", min=0, help="Blocks of depth to wait for (overrides the network's)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON summary.")]


def _network(network: str | None, rpc: str | None, source: RpcSource | None) -> NetworkConfig:
    if network and rpc:
        raise ConfigError("give --network or --rpc, not both")
    if rpc:
        assert source is not None
        return rpc_network(rpc, chain_id=source.chain_id())
    cfg = load_network(network or get_settings().network)
    if cfg.kind == "embedded":
        raise ConfigError(
            "the embedded chain lives inside one process: index it there "
            "(service.indexer.Indexer with a ReceiptSource), or use --network anvil / --rpc URL"
        )
    return cfg


def build_indexer(
    *,
    network: str | None,
    rpc: str | None,
    db: str | None,
    deployment: Path | None,
    confirmations: int | None,
    from_block: int | None = None,
    max_range: int | None = None,
    stop: threading.Event | None = None,
    on_progress: Any = None,
    offline_ok: bool = False,
) -> Indexer:
    """The indexer the options describe (connects, loads the deployment, creates tables).

    ``offline_ok`` (status): a node that does not answer is not an error; the chain id
    then comes from the deployment file.
    """
    if deployment is None and rpc:
        raise ConfigError("with --rpc, give the deployment file with --deployment")
    if rpc and not offline_ok:
        probe_chain_id(rpc)  # an unreachable node: one line at once, not six retries
    backoff = Backoff(tries=2) if offline_ok else None
    source = RpcSource(rpc, backoff=backoff) if rpc else None
    dep: Deployment | None = load_deployment(deployment) if deployment else None
    try:
        cfg = _network(network, rpc, source)
    except ChainError:
        if not (offline_ok and rpc and dep):
            raise
        cfg = rpc_network(rpc, chain_id=dep.chain_id)
    if source is None:
        assert cfg.rpc_url is not None
        if not offline_ok:
            probe_chain_id(cfg.rpc_url)
        source = RpcSource(cfg.rpc_url, backoff=backoff)
    if dep is None:
        dep = load_deployment(deployment_path(cfg.name))
    try:
        chain_id = source.chain_id()
    except ChainError:
        if not offline_ok:
            raise
        chain_id = cfg.chain_id
    if chain_id != cfg.chain_id:
        raise ConfigError(f"network {cfg.name}: the node is chain {chain_id}, not {cfg.chain_id}")
    engine = make_engine(db or get_settings().database_url)
    create_indexer_tables(engine)
    start = max(cfg.start_block, dep.deploy_block) if from_block is None else from_block
    return Indexer(
        source=source,
        engine=engine,
        deployment=dep,
        network=cfg.name,
        confirmations=cfg.confirmations if confirmations is None else confirmations,
        start_block=start,
        max_range=max_range or cfg.max_block_range,
        chain_id=chain_id,
        stop=stop,
        on_progress=on_progress,
        poll_interval_s=cfg.poll_interval_s,
    )


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (the range in flight finishes); a second one aborts."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        logging.getLogger(__name__).warning(
            "%s: finishing the current range, then stopping", signal.Signals(signum).name
        )
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _ProgressView:
    """A rich progress bar on stderr, shown only while far behind the target."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and err_console.is_terminal
        self.bar: Progress | None = None
        self.task: Any = None

    def __call__(self, p: IndexProgress) -> None:
        if not self.enabled:
            return
        behind = p.target - p.cursor
        if self.bar is None:
            if behind < PROGRESS_MIN_BLOCKS:
                return
            self.bar = Progress(
                TextColumn("indexing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("blocks · {task.fields[events]} events"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("index", total=p.target - p.start + 1, events=0)
        self.bar.update(self.task, completed=p.cursor - p.start + 1, events=p.events)
        if behind <= 0:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _setup_logging(quiet: bool) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.WARNING if quiet else get_settings().log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )


@index_app.callback(invoke_without_command=True)
def index(
    ctx: typer.Context,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    db: DbOpt = None,
    deployment: DeploymentOpt = None,
    confirmations: ConfirmationsOpt = None,
    once: Annotated[
        bool, typer.Option("--once/--follow", help="Stop at the safe head, or keep following.")
    ] = True,
    from_block: Annotated[
        int | None,
        typer.Option("--from-block", min=0, help="First block when nothing is indexed yet."),
    ] = None,
    max_range: Annotated[
        int | None, typer.Option("--max-range", min=1, help="Largest eth_getLogs block range.")
    ] = None,
    poll_interval: Annotated[
        float | None,
        typer.Option("--poll-interval", min=0.05, help="Seconds between polls (--follow)."),
    ] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
) -> None:
    """Index the deployment's events up to the safe head (--once) or follow the chain."""
    if ctx.invoked_subcommand is not None:
        return
    _setup_logging(quiet)
    stop = threading.Event()
    view = _ProgressView(enabled=not as_json and not quiet)
    indexer = build_indexer(
        network=network,
        rpc=rpc,
        db=db,
        deployment=deployment,
        confirmations=confirmations,
        from_block=from_block,
        max_range=max_range,
        stop=stop,
        on_progress=view,
    )
    cursor = indexer.store.cursor()
    if from_block is not None and cursor is not None:
        logging.getLogger(__name__).warning(
            "--from-block %d ignored: the deployment is indexed up to block %d",
            from_block,
            cursor.number,
        )
    try:
        with _stop_on_signals(stop):
            summary = indexer.run(follow=not once, poll_interval_s=poll_interval)
    finally:
        view.close()
    data = summary.as_dict()
    if as_json:
        console.print_json(json.dumps(data))
        return
    console.print(
        f"indexed blocks {data['from_block']}..{data['to_block']} "
        f"({data['blocks']} blocks, {data['events']} events, {len(data['reorgs'])} reorgs) "
        f"in {data['seconds']}s; cursor {data['cursor']['block']}, head {data['head']}"
        if data["blocks"] or data["reorgs"]
        else f"up to date: cursor {data['cursor']['block']}, head {data['head']}"
    )


@index_app.command("status")
def status(
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    db: DbOpt = None,
    deployment: DeploymentOpt = None,
    confirmations: ConfirmationsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the cursor, the chain head and the lag."""
    indexer = build_indexer(
        network=network,
        rpc=rpc,
        db=db,
        deployment=deployment,
        confirmations=confirmations,
        offline_ok=True,
    )
    data = indexer.status()
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table(show_header=False, box=None)
    cursor = data["cursor"]
    table.add_row("network", f"{data['network']} (chain {data['chain_id']})")
    table.add_row("deployment", data["deployment"])
    table.add_row(
        "cursor", "nothing indexed" if cursor is None else f"{cursor['block']}  {cursor['hash']}"
    )
    table.add_row("head", "unreachable" if data["head"] is None else str(data["head"]))
    table.add_row(
        "safe head", str(data["safe_head"]) + f"  ({data['confirmations']} confirmations)"
    )
    table.add_row("lag", "?" if data["lag"] is None else f"{data['lag']} blocks")
    table.add_row("events", ", ".join(f"{k} {v}" for k, v in data["events"].items()) or "none")
    table.add_row(
        "reorgs",
        str(len(data["reorgs"]))
        + (" (last: depth " + str(data["reorgs"][0]["depth"]) + ")" if data["reorgs"] else ""),
    )
    console.print(table)


@index_app.command("rebuild")
def rebuild(
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    db: DbOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Recompute the derived tables (participants, rounds, ...) from chain_events."""
    indexer = build_indexer(
        network=network, rpc=rpc, db=db, deployment=deployment, confirmations=None
    )
    n = indexer.store.rebuild()
    console.print(f"rebuilt the derived tables from {n} raw events")


def main() -> None:
    """``python -m service.indexer``: the ``index`` command on its own."""
    try:
        index_app(prog_name="tally index")
    except TallyError as err:
        err_console.print(f"error[{err.code}]: {err.message}", markup=False, highlight=False)
        sys.exit(1)
