"""``tally witness``: cosign other spaces' checkpoints, catch split views.

- ``tally witness [run] --config witness.toml [--follow URL ...] [--once | --interval S]``
  runs the witness (:mod:`service.witness.follower`) over the pinned spaces
  (:mod:`service.witness.config`); ``--follow`` picks some of them by URL. ``run`` is
  optional: the group's own options are the same command.
- ``tally witness status`` prints, per space, the last cosigned size, root and time
  and the split views kept.
- ``tally witness verify-proof FILE`` re-checks a split-view proof with nothing but the
  vkey inside it (exit 0: it proves a split view; 1: it does not).
- ``tally witness keygen NAME --out FILE`` makes a cosignature/v1 key and prints its vkey.

``--once`` exit codes: 0 every space cosigned or up to date, 3 split view caught,
4 checkpoint refused (bad note, proof linking nothing, rollback, not on the ledger),
5 a space or its chain unreachable (try again); 1 is a configuration error.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from service.errors import ConfigError

witness_app = typer.Typer(invoke_without_command=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Witness config TOML (one spaces.NAME table per followed space)."
    ),
]
DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="Witness database (default: the config's, or ./witness.db)."),
]


def _when(ts: int | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def witness(
    ctx: typer.Context,
    follow: Annotated[
        list[str] | None,
        typer.Option(
            "--follow", help="A pinned space's API URL to follow (repeat; default: all pinned)."
        ),
    ] = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file", help="The witness's cosignature/v1 skey (default: TALLY_WITNESS_KEY)."
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit (codes above).")] = (
        False
    ),
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between rounds.", min=0.1)
    ] = 60.0,
    metrics_file: Annotated[
        Path | None,
        typer.Option("--metrics-file", help="Write Prometheus metrics to this textfile."),
    ] = None,
) -> None:
    """Witness other spaces: cosign their checkpoints, keep split-view proofs.

    Each round, per pinned space: verify its checkpoint note, its consistency with what
    this witness cosigned and its place on the space's EvidenceLedger, then cosign and
    post the cosignature back.

    Exit codes of --once: 0 all cosigned or up to date; 3 split view caught (proof kept
    in the split-views folder next to the database); 4 a checkpoint refused; 5 a space or
    its chain unreachable; 1 a configuration error.
    """
    if ctx.invoked_subcommand is not None:
        return
    from service.witness.config import load_config
    from service.witness.follower import Witness, exit_code, load_signer
    from service.witness.metrics import write_metrics
    from service.witness.store import WitnessStore

    logging.basicConfig(
        level=os.environ.get("TALLY_LOG_LEVEL", "WARNING"), format="%(levelname)s %(message)s"
    )
    cfg = load_config(config, database=db)
    spaces = cfg.select(follow or [])
    signer = load_signer(key_file or cfg.key_file)
    metrics = metrics_file or cfg.metrics_file
    store = WitnessStore(cfg.database)
    stop = threading.Event()
    if not once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    w = Witness(signer=signer, store=store, evidence_dir=cfg.evidence_dir)
    try:
        while True:
            results = [w.round(space) for space in spaces]
            for r in results:
                size = "-" if r.size is None else str(r.size)
                line = f"{r.status:<11} {r.origin}  size {size}  {r.detail}"
                if r.proof_file is not None:
                    line += f"  proof: {r.proof_file}"
                typer.echo(line)
            if metrics is not None:
                write_metrics(metrics, store, results)
            if once:
                raise typer.Exit(exit_code(results))
            if stop.wait(interval):
                return
    finally:
        w.http.close()
        store.close()


witness_app.callback(invoke_without_command=True)(witness)
witness_app.command("run")(witness)  # the same: `tally witness run` is a leaf command


@witness_app.command("status")
def status(
    config: ConfigOpt = None,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = (
        False
    ),
) -> None:
    """Per space: last cosigned size, root and time, and the split views kept."""
    from service.witness.config import load_config
    from service.witness.store import WitnessStore

    cfg = load_config(config, database=db)
    if not cfg.database.is_file():
        raise ConfigError(f"no witness database at {cfg.database}")
    store = WitnessStore(cfg.database)
    try:
        urls = {s.origin: s.url for s in cfg.spaces}
        rows: list[dict[str, Any]] = []
        for origin in sorted(set(store.origins()) | set(urls)):
            latest = store.latest(origin)
            views = store.split_views(origin)
            rows.append(
                {
                    "origin": origin,
                    "url": urls.get(origin),
                    "cosigned_size": None if latest is None else latest.size,
                    "cosigned_root": None if latest is None else latest.root,
                    "cosigned_at": None if latest is None else latest.timestamp,
                    "posted": None if latest is None else latest.posted,
                    "split_views": len(views),
                    "split_view_kinds": [v.kind for v in views],
                }
            )
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"witness {cfg.database}")
    for column in ("origin", "cosigned size", "root", "cosigned at", "posted", "split views"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["origin"],
            "-" if row["cosigned_size"] is None else str(row["cosigned_size"]),
            row["cosigned_root"] or "-",
            _when(row["cosigned_at"]),
            {None: "-", True: "yes", False: "pending"}[row["posted"]],
            str(row["split_views"])
            + (f" ({', '.join(row['split_view_kinds'])})" if row["split_views"] else ""),
        )
    Console(width=160).print(table)


@witness_app.command("verify-proof")
def verify_proof_cmd(
    file: Annotated[Path, typer.Argument(help="A split-view proof JSON file.")],
) -> None:
    """Re-check a split-view proof file (exit 0: it proves a split view).

    Checks both notes' signatures under the vkey in the file and that the two
    checkpoints do not extend each other."""
    from service.errors import InvalidInput
    from service.witness.evidence import verify_proof

    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read {file}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise InvalidInput(f"{file} is not JSON: {err.msg}") from None
    for line in verify_proof(doc):
        typer.echo(line)


@witness_app.command("keygen")
def keygen(
    name: Annotated[str, typer.Argument(help="The witness's key name, e.g. witness.example/w1.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Write the private key here (0600).")],
) -> None:
    """Make a witness key (tlog-cosignature/v1, Ed25519) and print its vkey.

    The private key goes to --out (mode 0600); the vkey printed is what spaces and
    auditors pin."""
    from service.chain.keys import write_new_secret
    from service.witness.note import CosignatureV1Signer

    signer = CosignatureV1Signer.generate(name)
    write_new_secret(out, signer.skey() + "\n")
    typer.echo(signer.vkey())
