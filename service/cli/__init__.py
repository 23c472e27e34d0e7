"""The ``tally`` command line.

Every command prints a one-line ``error[code]: message`` and exits non-zero on a
:class:`~service.errors.TallyError`. A JSON-RPC node that stops answering in a place
that does not wrap transport errors yet is the same one line, ``error[rpc_unavailable]``
(:func:`service.chain.rpc.unreachable`); nothing else is swallowed.
"""

from __future__ import annotations

import sys
from typing import Any

import requests
import typer
from rich.console import Console

from service.errors import TallyError

err_console = Console(stderr=True)


def print_error(err: TallyError) -> None:
    """The one line every command prints for a :class:`TallyError`."""
    message = " ".join(err.message.splitlines())  # one line, whatever the message holds
    err_console.print(
        f"error[{err.code}]: {message}", markup=False, highlight=False, soft_wrap=True
    )


def _transport_error(err: requests.ConnectionError | requests.Timeout) -> TallyError:
    from service.chain.rpc import unreachable

    url = err.request.url if err.request is not None and err.request.url else "(unknown URL)"
    reason = "no answer in time" if isinstance(err, requests.Timeout) else "connection failed"
    return unreachable(str(url), reason)


class _TallyApp(typer.Typer):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from service.jsonsafe import limit_recursion

        limit_recursion()  # imports raised it to 100,000: deep input would crash, not raise
        try:
            return super().__call__(*args, **kwargs)
        except TallyError as err:
            print_error(err)
            sys.exit(1)
        except (requests.ConnectionError, requests.Timeout) as err:
            print_error(_transport_error(err))
            sys.exit(1)


def _flags_take_no_type() -> None:
    """typer 0.29's rich help prints every flag as taking a value (``--json <bool>``,
    ``--help <bool>``); a flag takes none, so its type column stays empty."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_type()

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
    app.add_typer(evidence_cmd.receipt_app, name="receipt")
    app.add_typer(index_cmd.index_app, name="index")
    app.add_typer(settle_cmd.settle_app, name="settle")
    app.command("claim")(settle_cmd.claim_cmd)
    app.command("bill")(settle_cmd.bill_cmd)
    app.command("deposit")(settle_cmd.deposit_cmd)
    app.add_typer(settle_cmd.withdraw_app, name="withdraw")
    app.add_typer(settle_cmd.log_app, name="log")
    evidence_cmd.audit_app.command("settlement")(settle_cmd.audit_settlement_cmd)
    app.add_typer(evidence_cmd.audit_app, name="audit")

    from service.cli import participants_cmd

    app.add_typer(participants_cmd.participants_app, name="participants")

    from service.cli import serve_cmd

    app.command("serve")(serve_cmd.serve)

    from service.cli import bench_cmd

    app.command("bench")(bench_cmd.bench)

    from service.cli import evaluate_cmd

    app.command("evaluate")(evaluate_cmd.evaluate)
    evidence_cmd.audit_app.command("valuation")(evaluate_cmd.audit_valuation_cmd)

    from service.cli import witness_cmd

    app.add_typer(witness_cmd.witness_app, name="witness")


_register()
