"""``tally anchor``, ``tally receipt [disclose]`` and ``tally audit receipt|log``.

The operator anchors and writes receipts (database + chain + operator key); an auditor
audits with a receipt file or the operator's log and any RPC endpoint, no key needed.
Audit commands exit 0 with a one-line ``PASS …`` verdict when every check holds and
exit 1 with ``FAIL …: check '<name>' failed: …`` naming the first failed check;
``--json`` prints the whole report instead, ``--verbose`` every check before the verdict.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from service import jsonsafe
from service.audit.receipt import AuditReport, WitnessPolicy
from service.audit.sources import ApiSource
from service.audit.trust import TrustedDeployment
from service.chain.client import Chain
from service.cli.chain_cmd import DbOpt, DeploymentOpt, NetworkOpt, RpcOpt, connect, contracts_for
from service.errors import ConfigError, InvalidInput
from service.settings import get_settings

audit_app = typer.Typer(
    help="Verify receipts and the anchored log without trusting the operator.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Print every check before the verdict.")
]

_ENTRY_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")


def _database_url(db: str | None) -> str:
    return db or get_settings().database_url


def _emit(report: AuditReport, *, as_json: bool, verbose: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        if verbose:
            marks = {True: "ok  ", False: "FAIL", None: "skip"}
            for check in report.checks:
                typer.echo(f"{marks[check.ok]}  {check.name}: {check.detail}")
        if report.fields is not None:  # a reduced receipt (T15): what it proves, what it hides
            values = report.fields["values"]
            proven = [f"{name}={json.dumps(values.get(name))}" for name in report.fields["proven"]]
            typer.echo(f"proven fields: {', '.join(proven) or 'none'}")
            typer.echo(f"hidden fields: {', '.join(report.fields['hidden']) or 'none'}")
        typer.echo(report.verdict)
    raise typer.Exit(0 if report.ok else 1)


# --- operator commands -------------------------------------------------------------------


def anchor(
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
    db: DbOpt = None,
) -> None:
    """Anchor the log's current size and root on the EvidenceLedger (once)."""
    from service.chain.keys import operator_account
    from service.db import create_schema, make_engine
    from service.evidence.anchor import anchor_once

    chain = connect(network, rpc)
    ledger = contracts_for(chain, deployment).ledger
    engine = make_engine(_database_url(db))
    try:
        create_schema(engine)
        row = anchor_once(
            engine=engine, chain=chain, ledger=ledger, operator=operator_account(chain.network)
        )
    finally:
        engine.dispose()
    if row is None:
        typer.echo("nothing to anchor: the log has not grown since the last checkpoint")
        return
    typer.echo(
        f"anchored checkpoint {row.seq}: size {row.tree_size}, root {row.root}, "
        f"tx {row.tx_hash}, block {row.block_number}"
    )


def receipt(
    entry_id: Annotated[str, typer.Argument(help="Entry id: 0x + 64 hex digits.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Write the receipt document (JSON) of one anchored entry."""
    from sqlmodel import Session

    from service.db import create_schema, make_engine
    from service.evidence.receipts import build_receipt

    if not _ENTRY_ID.match(entry_id):
        raise InvalidInput(f"an entry id is 0x followed by 64 hex digits, got {entry_id!r}")
    engine = make_engine(_database_url(db))
    try:
        create_schema(engine)
        with Session(engine) as session:
            doc = build_receipt(session=session, eid=entry_id)
    finally:
        engine.dispose()
    text = json.dumps(doc, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"receipt of {doc['entry_id']} (leaf {doc['leaf_index']}) written to {out}")


class _ReceiptGroup(TyperGroup):
    """``tally receipt get ENTRY_ID ...`` and ``tally receipt disclose FILE ...``; the
    pre-T15 form ``tally receipt ENTRY_ID ...`` still runs ``get``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["get", *args]
        return super().parse_args(ctx, args)


receipt_app = typer.Typer(
    cls=_ReceiptGroup,
    help="Receipt documents: get one (tally receipt get ENTRY_ID --out FILE), or reduce "
    "one to chosen fields (tally receipt disclose FILE --fields a,b).",
    no_args_is_help=True,
)
receipt_app.command("get")(receipt)


@receipt_app.command("disclose")
def disclose_cmd(
    file: Annotated[Path, typer.Argument(help="A full receipt document (version 2, JSON).")],
    fields: Annotated[
        str,
        typer.Option(
            "--fields",
            help="Comma-separated message fields to disclose (e.g. units,periodStart,periodEnd; "
            "the signed form also discloses the fields naming the signers, e.g. a receipt's "
            "consumer and provider).",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")
    ] = None,
    no_signatures: Annotated[
        bool,
        typer.Option(
            "--no-signatures",
            help="Drop the struct hash and signatures (the signers digest instead): names no "
            "signer, and the signer fields may stay hidden.",
        ),
    ] = False,
) -> None:
    """Write a reduced receipt: chosen fields proven against the anchored log, rest hidden.

    Check it with tally audit receipt, which says which fields are proven and which hidden.
    """
    from service.evidence.commitment import signer_fields
    from service.evidence.receipts import reduce_receipt

    names = [f.strip() for f in fields.split(",") if f.strip()]
    if not names:
        raise InvalidInput("--fields names at least one field, comma-separated")
    doc = _read_document(file)
    added: list[str] = []
    if not no_signatures and isinstance(doc, dict) and isinstance(doc.get("entry_type"), str):
        # a signed reduced receipt must show who signed: disclose the signer fields too
        added = [f for f in signer_fields(doc["entry_type"]) if f not in names]
        names += added
    reduced = reduce_receipt(doc, names, signed=not no_signatures)
    text = json.dumps(reduced, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    shown = ", ".join(n for n in names)
    also = f"; {', '.join(added)} added: they name the signers" if added else ""
    typer.echo(
        f"reduced receipt of leaf {reduced['leaf_index']} written to {out}: discloses {shown}"
        f"{'' if no_signatures else ' (signed)'}{also}"
    )


# --- auditor commands --------------------------------------------------------------------


def _read_document(path: Path) -> Any:
    try:
        return jsonsafe.loads(path.read_text(encoding="utf-8"), what=path.name)
    except FileNotFoundError:
        raise InvalidInput(f"no receipt file {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidInput(f"{path.name} is not JSON: {err}") from None


LedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        help="Trust this EvidenceLedger address (its registry is the one it names).",
    ),
]


def _pin(
    chain: Chain, network: str | None, deployment: Path | None, ledger: str | None
) -> TrustedDeployment | None:
    """The deployment the auditor pinned: --deployment FILE, --ledger ADDRESS, or with
    --network the network's recorded deployment file when there is one; else None."""
    from service.chain.config import deployment_path

    if deployment is not None and ledger is not None:
        raise ConfigError("give --deployment FILE or --ledger ADDRESS, not both")
    if ledger is not None:
        try:
            return TrustedDeployment.from_ledger(ledger)
        except ValueError as err:
            raise InvalidInput(f"--ledger: {err}") from None
    if deployment is not None:
        return TrustedDeployment.from_file(deployment)
    recorded = deployment_path(chain.network.name)
    if network is not None and recorded.is_file():
        return TrustedDeployment.from_file(recorded)
    return None


@audit_app.command("receipt")
def audit_receipt_cmd(
    file: Annotated[Path, typer.Argument(help="Receipt document (JSON).")],
    rpc: RpcOpt = None,
    network: NetworkOpt = None,
    deployment: Annotated[
        Path | None,
        typer.Option(
            "--deployment",
            help="Trust this deployment file (default with --network: "
            "chain-config/deployments/<network>.json).",
        ),
    ] = None,
    ledger: LedgerOpt = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Skip the chain checks (and say so).")
    ] = False,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="A witness's cosignature/v1 vkey (repeatable): require its cosignature "
            "over the receipt's checkpoint (check witness_cosignatures).",
        ),
    ] = None,
    min_witnesses: Annotated[
        int | None,
        typer.Option("--min-witnesses", help="How many of the --witness keys (default 1)."),
    ] = None,
    trust: Annotated[
        Path | None,
        typer.Option(
            "--trust",
            help="TOML trust file: witnesses = [vkeys], min_witnesses = K, optional log_vkey.",
        ),
    ] = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Check a receipt: signatures, entry id, leaf, inclusion proof, on-chain checkpoint
    of the pinned deployment, signers' roles in its registry; with --witness/--trust, that
    at least K pinned witnesses cosigned its checkpoint."""
    from service.audit.receipt import audit_receipt

    if sum((rpc is not None, network is not None, offline)) != 1:
        raise ConfigError("give exactly one of --rpc URL, --network NAME or --offline")
    if offline and (deployment is not None or ledger is not None):
        raise ConfigError("--offline checks nothing on chain: drop --deployment / --ledger")
    policy = _witness_policy(witness, min_witnesses, trust)
    doc = _read_document(file)
    if offline:
        report = audit_receipt(doc, chain=None, trusted=None, witnesses=policy)
        _emit(report, as_json=as_json, verbose=verbose)
    chain = connect(network, rpc)
    trusted = _pin(chain, network, deployment, ledger)
    report = audit_receipt(doc, chain=chain, trusted=trusted, witnesses=policy)
    _emit(report, as_json=as_json, verbose=verbose)


def _witness_policy(
    witness: list[str] | None, min_witnesses: int | None, trust: Path | None
) -> WitnessPolicy | None:
    """The witness policy of ``audit receipt``: --witness/--min-witnesses or --trust."""
    from service.audit.receipt import WitnessPolicy

    if trust is not None and (witness or min_witnesses is not None):
        raise ConfigError("give --witness/--min-witnesses or --trust FILE, not both")
    if trust is not None:
        return WitnessPolicy.from_file(trust)
    if not witness:
        if min_witnesses is not None:
            raise ConfigError("--min-witnesses needs --witness VKEY (or a --trust file)")
        return None
    return WitnessPolicy.from_keys(witness, min_witnesses)


ApiOpt = Annotated[
    str | None,
    typer.Option(
        "--api",
        help="Read the log from this Tally API: the tree from its public /v1/log routes, the "
        "entries from GET /v1/evidence after signing in as an auditor (see --key-env).",
    ),
]
AuditKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key-env",
        help="With --api: sign in with the auditor's private key in this environment "
        "variable (default: the network's key source).",
    ),
]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        help="With --api: keep downloaded entry pages here; a re-run continues where one stopped.",
    ),
]


def api_source(
    url: str, cache: Path | None, *, chain: Chain | None, key_env: str | None
) -> ApiSource:
    """The :class:`~service.audit.sources.ApiSource` an audit command reads ``--api`` from,
    signed in as an auditor with the key of ``key_env`` or the network's key source
    (:mod:`service.audit.login`); a progress bar on stderr when it is a terminal."""
    import sys

    from service.audit.login import audit_key, sign_in

    token = sign_in(url, audit_key(chain, key_env))
    return ApiSource(url, cache=cache, progress=sys.stderr.isatty(), token=token)


@audit_app.command("log")
def audit_log_cmd(
    rpc: RpcOpt = None,
    network: NetworkOpt = None,
    deployment: DeploymentOpt = None,
    api: ApiOpt = None,
    cache: CacheOpt = None,
    key_env: AuditKeyOpt = None,
    log_file: Annotated[
        Path | None,
        typer.Option("--log-file", help="Read the log from an export file (`tally log export`)."),
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Check every anchored checkpoint against the operator's log: consistency proofs,
    roots, and the entries themselves (from --api URL, signed in as an auditor; a
    --log-file export; or the operator's --db)."""
    from service.audit.log import audit_log
    from service.audit.sources import ExportFileSource, closing_source
    from service.evidence.sources import SqlLogSource

    if (rpc is None) == (network is None):
        raise ConfigError("give exactly one of --rpc URL or --network NAME")
    if sum(x is not None for x in (api, db, log_file)) > 1:
        raise ConfigError("give one log source: --api URL, --log-file FILE or --db URL, not both")
    if cache is not None and api is None:
        raise ConfigError("--cache keeps pages downloaded from --api: give --api URL")
    chain = connect(network, rpc)
    ledger = contracts_for(chain, deployment).ledger
    if log_file is not None:
        report = audit_log(chain=chain, ledger=ledger, proofs=ExportFileSource(log_file))
        _emit(report, as_json=as_json, verbose=verbose)
        return
    source: ApiSource | SqlLogSource = (
        api_source(api, cache, chain=chain, key_env=key_env)
        if api is not None
        else SqlLogSource.from_url(_database_url(db))
    )
    with closing_source(source):
        source.check_deployment(chain_id=chain.chain_id, ledger=ledger.address)
        report = audit_log(chain=chain, ledger=ledger, proofs=source)
    _emit(report, as_json=as_json, verbose=verbose)
