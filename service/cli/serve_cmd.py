"""``tally serve``: the HTTP API under uvicorn, plus the anchoring and indexing loops.

``tally serve [--host H] [--port P] [--workers N] [--anchor-every S] [--index/--no-index]
[--network NAME] [--deployment FILE] [--db URL]``

Settings come from the environment (``TALLY_NETWORK``, ``TALLY_DATABASE_URL``,
``TALLY_DEPLOYMENT_FILE``, ... see the README); ``--network``, ``--deployment`` and
``--db`` override the first three, as in the other commands. Several workers need PostgreSQL (the
log's appends are serialized by its row lock; one SQLite file is not meant for several
writer processes) and an RPC network (the embedded chain lives inside one process).
With one worker the loops run inside it; with several they run once, in this
supervising process, and Prometheus metrics are aggregated across workers through
``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder under the data directory); the rate limit
is shared by the workers through PostgreSQL (:mod:`service.api.limits`).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.engine import make_url

from service.chain.config import load_network
from service.errors import ConfigError, TallyError
from service.settings import Settings, load_settings

if TYPE_CHECKING:
    from service.api.background import BackgroundLoops

APP = "service.api.main:serve_app"
log = logging.getLogger("service.serve")


def check_serve_options(settings: Settings, *, workers: int) -> None:
    """Refuse combinations that cannot work or are not safe, with a one-line reason."""
    network = load_network(settings.network)
    settings.check_token_secret(network=network.name, embedded=network.kind == "embedded")
    if workers <= 1:
        return
    backend = make_url(settings.database_url).get_backend_name()
    if backend != "postgresql":
        raise ConfigError(
            f"--workers {workers} needs PostgreSQL (TALLY_DATABASE_URL=postgresql+psycopg://...): "
            f"the workers share one database and {backend} is not made for several writer "
            "processes; use --workers 1 with SQLite"
        )
    if network.kind == "embedded":
        raise ConfigError(
            f"--workers {workers} needs an RPC network (TALLY_NETWORK=anvil or a .toml): "
            "the embedded chain lives inside one process"
        )


def check_deployment_and_log(settings: Settings) -> None:
    """Before any worker starts: off the embedded network, the deployment file must exist
    and an existing log database must belong to it (one line instead of a worker's
    start-up traceback). Creates the tables once, here, not in racing workers. The embedded
    network deploys at start, so there is nothing to check yet."""
    from sqlmodel import Session

    from service.chain.config import deployment_path, load_deployment
    from service.db import create_schema, make_engine
    from service.evidence.binding import check_log_binding

    network = load_network(settings.network)
    if network.kind == "embedded":
        return
    deployment = load_deployment(settings.deployment_file or deployment_path(network.name))
    engine = make_engine(settings.database_url, pool=False)
    try:
        create_schema(engine)
        with Session(engine) as session:
            check_log_binding(
                session,
                chain_id=deployment.chain_id,
                ledger=deployment.address("EvidenceLedger"),
            )
    finally:
        engine.dispose()


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes (more than 1 needs PostgreSQL).", min=1)
    ] = 1,
    anchor_every: Annotated[
        float,
        typer.Option("--anchor-every", help="Anchor the log every S seconds (0: never).", min=0.0),
    ] = 0.0,
    index: Annotated[
        bool, typer.Option("--index/--no-index", help="Follow the chain into the SQL mirror.")
    ] = True,
    network: Annotated[
        str | None,
        typer.Option(
            "--network",
            "-n",
            help="Network name in chain-config/ (or a .toml path); default TALLY_NETWORK, "
            "else embedded.",
        ),
    ] = None,
    deployment: Annotated[
        Path | None,
        typer.Option(
            help="Deployment file; default TALLY_DEPLOYMENT_FILE, else "
            "chain-config/deployments/<network>.json."
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL; default TALLY_DATABASE_URL, else sqlite:///.tally/tally.db."
        ),
    ] = None,
) -> None:
    """Run the HTTP API (OpenAPI at /docs) and, optionally, anchoring and indexing.

    GET /metrics (Prometheus) needs the operator role: a bearer token, or an operator API
    key as X-API-Key or as Authorization: Bearer tly_... (what a Prometheus scrape job
    sends). Off the embedded network TALLY_JWT_SECRET must be a real secret (32+
    characters). The embedded network deploys fresh contracts at each start: its chain
    state is lost on restart (a WARNING line says so).
    """
    import uvicorn

    # the options win over the environment, for this process and the workers it starts
    for name, value in (
        ("NETWORK", network),
        ("DEPLOYMENT_FILE", deployment),
        ("DATABASE_URL", db),
    ):
        if value is not None:
            os.environ[f"TALLY_{name}"] = str(value)
    settings = load_settings()
    check_serve_options(settings, workers=workers)
    check_deployment_and_log(settings)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn_options = {
        "host": host,
        "port": port,
        "factory": True,
        "log_level": settings.log_level.lower(),
        "access_log": False,
        # uvloop's event loop and httptools' HTTP parser (uvicorn[standard]), named rather
        # than left to uvicorn's "auto": a missing one is a start-up error, not a slower
        # server (quick api bench, 1 worker: GET /v1/receipts 88-104 -> 123-154 req/s)
        "loop": "uvloop",
        "http": "httptools",
    }
    if workers == 1:
        os.environ["TALLY_ANCHOR_EVERY_S"] = str(anchor_every)
        os.environ["TALLY_INDEX_FOLLOW"] = "true" if index else "false"
        uvicorn.run(APP, workers=1, **uvicorn_options)  # type: ignore[arg-type]
        return

    # several workers: the loops run here, once; the workers only serve requests
    os.environ["TALLY_ANCHOR_EVERY_S"] = "0"
    os.environ["TALLY_INDEX_FOLLOW"] = "false"
    metrics_dir = settings.data_dir / "prometheus" / str(os.getpid())
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # the tables were created once, above (check_deployment_and_log): workers would race

    loops: list[BackgroundLoops] = []
    starter: threading.Thread | None = None
    if anchor_every > 0 or index:
        # built next to the workers' startup, not before it: the server is up sooner
        starter = threading.Thread(
            target=_start_loops,
            args=(settings, anchor_every, index, loops),
            name="tally-loops-start",
            daemon=True,
        )
        starter.start()
    try:
        uvicorn.run(APP, workers=workers, **uvicorn_options)  # type: ignore[arg-type]
    finally:
        if starter is not None:
            starter.join()
        for running in loops:
            running.stop()
            running.ctx.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _start_loops(
    settings: Settings, anchor_every: float, index: bool, out: list[BackgroundLoops]
) -> None:
    from service.api.background import BackgroundLoops
    from service.api.context import build_context

    try:
        ctx = build_context(settings)
        running = BackgroundLoops(ctx, anchor_every_s=anchor_every, index=index)
        running.start()
    except TallyError as err:
        log.error("background loops not started: [%s] %s", err.code, err)
        return
    out.append(running)
