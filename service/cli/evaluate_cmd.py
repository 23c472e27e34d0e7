"""``tally evaluate`` (the evaluator's valuation run) and ``tally audit valuation`` (its re-run).

``tally evaluate`` reads the agreement and the anchored checkpoints from the log database,
derives the seed (README, "Valuation"), runs the method over the utility with a progress bar,
signs a ValuationResult with the evaluator's key and writes ``valuation.json``: the valuation
document, the signed entry (ready for ``POST /v1/evidence``) and its id. ``--cache FILE``
keeps every utility result; a run restarted after a crash with the same file resumes.
``tally audit valuation FILE`` re-runs it from the same log and exits 0 with ``PASS`` when
every value is equal bit for bit, 1 with ``FAIL …: check '<name>' failed`` otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from service.cli.chain_cmd import DbOpt, DeploymentOpt, NetworkOpt, RpcOpt
from service.errors import ConfigError, InvalidInput

console = Console(stderr=True)


def _onchain_checkpoints(
    network: str | None, rpc: str | None, deployment: Path | None
) -> list[Any]:
    from service.cli.chain_cmd import connect, contracts_for
    from service.evidence.anchor import read_all_checkpoints
    from service.valuation.run import Checkpoint

    chain = connect(network, rpc)
    ledger = contracts_for(chain, deployment).ledger
    return [Checkpoint(c.tree_size, c.root) for c in read_all_checkpoints(chain, ledger)]


def _agreement_id(value: str) -> bytes:
    digits = value[2:] if value.startswith("0x") else ""
    if len(digits) != 64:
        raise InvalidInput(f"--agreement is 0x followed by 64 hex digits, got {value!r}")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise InvalidInput(f"--agreement is 0x followed by 64 hex digits, got {value!r}") from None


def _key(key_env: str) -> bytes:
    raw = os.environ.get(key_env, "")
    digits = raw[2:] if raw.startswith("0x") else raw
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"environment variable {key_env} holds no 32-byte hex private key")
    return key


def evaluate(
    agreement: Annotated[str, typer.Option(help="Agreement id (0x + 64 hex).")],
    period_start: Annotated[int, typer.Option(help="Period start, unix seconds.", min=0)],
    period_end: Annotated[int, typer.Option(help="Period end (exclusive), unix seconds.", min=1)],
    utility: Annotated[
        str,
        typer.Option(
            help="module:attribute of the utility f(train_provider_subset) -> int bps "
            "(e.g. service.valuation.examples:logreg_utility)."
        ),
    ],
    method: Annotated[
        str,
        typer.Option(
            help="exact-shapley, permutation-shapley, msr-banzhaf, leave-one-out or knn-shapley."
        ),
    ] = "msr-banzhaf",
    rel_tolerance: Annotated[
        str, typer.Option(help="Stop when every standard error <= this x |mean value|.")
    ] = "1/20",
    min_samples: Annotated[int, typer.Option(help="Samples before the stopping rule.", min=2)] = 16,
    max_samples: Annotated[int, typer.Option(help="Most samples.", min=1)] = 100_000,
    truncation_bps: Annotated[
        int, typer.Option(help="TMC truncation of permutation-shapley (0: off).", min=0)
    ] = 0,
    max_utility_calls: Annotated[
        int | None, typer.Option(help="Budget of distinct utility calls.", min=1)
    ] = None,
    key_env: Annotated[
        str, typer.Option(help="Environment variable holding the evaluator's private key.")
    ] = "TALLY_EVALUATOR_KEY",
    cache: Annotated[
        Path | None, typer.Option(help="Utility results file; a restarted run resumes from it.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write valuation.json.")] = Path(
        "valuation.json"
    ),
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print valuation.json.")] = False,
) -> None:
    """Value the agreement's providers with a utility and sign a ValuationResult."""
    from sqlmodel import Session

    from service.db import make_engine
    from service.settings import get_settings
    from service.valuation.run import evaluate as run_evaluate
    from service.valuation.run import params_document, params_hash
    from service.valuation.utility import ResultCache, load_utility, utility_hash

    params: dict[str, Any] = {
        "rel_tolerance": rel_tolerance,
        "min_samples": min_samples,
        "max_samples": max_samples,
        "truncation_bps": truncation_bps,
        "max_utility_calls": max_utility_calls,
    }
    document = params_document(method, utility, params)
    key = _key(key_env)
    fn = load_utility(utility)
    run_id = f"{utility_hash(utility, fn).hex()} {params_hash(document).hex()} {agreement.lower()}"
    store = ResultCache(cache, run_id=run_id) if cache is not None else None
    engine = make_engine(db or get_settings().database_url)
    with (
        Session(engine) as session,
        Progress(
            TextColumn("[bold]utility calls"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("calls", total=max_utility_calls)
        result = run_evaluate(
            session=session,
            agreement_id=_agreement_id(agreement),
            period=(period_start, period_end),
            document=document,
            evaluator_key=key,
            cache=store,
            on_call=lambda calls: bar.update(task, completed=calls),
            utility=fn,
        )
    doc = result.to_json()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        est = result.estimate
        typer.echo(
            f"{method}: {len(doc['values_bps'])} providers, {est.calls} utility calls, "
            f"{est.samples} samples, {est.status}; entry {doc['entry_id']} -> {out}"
        )


def audit_valuation_cmd(
    file: Annotated[Path, typer.Argument(help="valuation.json written by tally evaluate.")],
    evaluator: Annotated[
        str | None, typer.Option(help="The evaluator the policy names (checked if given).")
    ] = None,
    db: DbOpt = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print every check before the verdict.")
    ] = False,
) -> None:
    """Re-run a ValuationResult from the log and its document; PASS when equal bit for bit.

    With --network or --rpc the seed's checkpoint is also checked against the EvidenceLedger.
    """
    from sqlmodel import Session

    from service.cli.evidence_cmd import _emit
    from service.db import make_engine
    from service.evidence.binding import log_binding
    from service.evidence.eip712 import Domain, parse_address
    from service.evidence.entries import SignedEntry
    from service.settings import get_settings
    from service.valuation.run import audit_valuation

    onchain = _onchain_checkpoints(network, rpc, deployment) if network or rpc else None
    try:
        doc = json.loads(file.read_text())
        document, signed_json = doc["valuation"], doc["signed_entry"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InvalidInput(f"{file} is not a valuation.json: {err}") from None
    engine = make_engine(db or get_settings().database_url)
    with Session(engine) as session:
        binding = log_binding(session)
        if binding is None:
            raise ConfigError("the log database is bound to no deployment (nothing anchored)")
        domain = Domain(chain_id=binding[0], verifying_contract=parse_address(binding[1]))
        signed = SignedEntry.from_json(signed_json, domain=domain)
        report = audit_valuation(
            session=session, signed=signed, document=document, evaluator=evaluator, onchain=onchain
        )
    _emit(report, as_json=as_json, verbose=verbose)
