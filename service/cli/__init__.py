"""The ``tally`` command line.

Every command prints a one-line ``error[code]: message`` and exits non-zero on a
:class:`~service.errors.TallyError`; nothing else is swallowed.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console

from service.errors import TallyError

err_console = Console(stderr=True)


class _TallyApp(typer.Typer):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except TallyError as err:
            err_console.print(
                f"error[{err.code}]: {err.message}", markup=False, highlight=False, soft_wrap=True
            )
            sys.exit(1)


app = _TallyApp(
    name="tally",
    help="Tally: evidence and contribution-weighted settlement for trusted data spaces.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _register() -> None:
    from service.cli import chain_cmd, demo_cmd, evidence_cmd, index_cmd, settle_cmd

    app.add_typer(chain_cmd.chain_app, name="chain")
    app.command("deploy")(chain_cmd.deploy)
    app.command("demo")(demo_cmd.demo)
    app.command("anchor")(evidence_cmd.anchor)
    app.command("receipt")(evidence_cmd.receipt)
    app.add_typer(index_cmd.index_app, name="index")
    app.add_typer(settle_cmd.settle_app, name="settle")
    app.command("claim")(settle_cmd.claim_cmd)
    app.command("bill")(settle_cmd.bill_cmd)
    app.command("deposit")(settle_cmd.deposit_cmd)
    app.add_typer(settle_cmd.log_app, name="log")
    evidence_cmd.audit_app.command("settlement")(settle_cmd.audit_settlement_cmd)
    app.add_typer(evidence_cmd.audit_app, name="audit")

    from service.cli import serve_cmd

    app.command("serve")(serve_cmd.serve)

    from service.cli import bench_cmd

    app.command("bench")(bench_cmd.bench)


_register()
