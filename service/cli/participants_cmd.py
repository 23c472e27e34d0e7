"""``tally participants add|suspend|reinstate|list``: the operator admits participants.

Transactions are signed with the operator's key from the network config (dev account 0
on dev chains); the deployment is ``--deployment`` or the network's recorded one. Roles
are given and printed by name (``provider``, ``consumer``, ``service``; operators,
auditors and arbiters are AccessControl roles and listed as such). ``add --from-file
participants.csv`` admits many at once (format: :mod:`service.chain.participants`;
``examples/participants.csv`` lists the demo's accounts). ``list`` reads the registry's
events and current records from the chain: no database needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from service.chain.participants import (
    Admission,
    ParticipantChange,
    ParticipantRecord,
    list_participants,
    read_admissions,
    read_participant,
    register_many,
    register_participant,
    reinstate_participant,
    suspend_participant,
)
from service.cli.chain_cmd import DeploymentOpt, NetworkOpt, RpcOpt, connect, contracts_for
from service.errors import ConfigError

participants_app = typer.Typer(
    help="Admit, suspend, reinstate and list the data space's participants (operator).",
    no_args_is_help=True,
)

AddressArg = Annotated[str, typer.Argument(help="The participant's address (0x + 40 hex).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _line(change: ParticipantChange) -> str:
    p = change.participant
    roles = ",".join(p.roles) or "no roles"
    tx = f" (tx {change.tx_hash}, block {change.block})" if change.tx_hash else ""
    if change.action == "unchanged":
        return f"unchanged  {p.address} already registered as {roles}, {p.status}"
    return f"{change.action} {p.address} as {roles}, {p.status}{tx}"


def _rows(records: list[ParticipantRecord]) -> list[str]:
    """One plain line per record (never cut or wrapped, whatever the terminal's width);
    identity hashes are in --json."""
    width = max(len(",".join(r.roles)) for r in records)
    lines = [f"{'address':<42}  {'roles':<{width}}  {'status':<12}  {'since block':>11}  metadata"]
    for r in records:
        since = str(r.registered_block) if r.registered else "-"
        lines.append(
            f"{r.address}  {','.join(r.roles):<{width}}  {r.status:<12}  {since:>11}  "
            f"{r.metadata_uri}".rstrip()
        )
    return lines


@participants_app.command("add")
def add(
    address: Annotated[
        str | None, typer.Argument(help="The participant's address (or use --from-file).")
    ] = None,
    roles: Annotated[
        str | None,
        typer.Option("--roles", help="Comma-separated: provider, consumer, service."),
    ] = None,
    identity: Annotated[
        str | None,
        typer.Option(
            "--identity",
            help="A DID or legal id (its keccak256 is stored) or 0x + 64 hex (stored as is).",
        ),
    ] = None,
    metadata_uri: Annotated[
        str | None, typer.Option("--metadata-uri", help="Where the participant is described.")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file", help="CSV: address,roles[,identity,metadata_uri] (header row)."
        ),
    ] = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a participant (or every row of --from-file) on the ParticipantRegistry."""
    from service.chain.keys import operator_account

    if from_file is not None:
        if address is not None or roles or identity or metadata_uri:
            raise ConfigError("give ADDRESS --roles ... or --from-file FILE, not both")
        admissions = read_admissions(from_file)
    else:
        if address is None or roles is None:
            raise ConfigError("give ADDRESS and --roles (or --from-file FILE)")
        admissions = [
            Admission.parse(
                address=address, roles=roles, identity=identity, metadata_uri=metadata_uri
            )
        ]
    chain = connect(network, rpc)
    registry = contracts_for(chain, deployment).registry
    operator = operator_account(chain.network)
    if from_file is None:
        changes = [
            register_participant(
                chain=chain, registry=registry, operator=operator, admission=admissions[0]
            )
        ]
    else:
        changes = register_many(
            chain=chain, registry=registry, operator=operator, admissions=admissions
        )
    if as_json:
        typer.echo(json.dumps([c.to_json() for c in changes], indent=2))
        return
    for change in changes:
        typer.echo(_line(change))
    if from_file is not None:
        done = sum(c.action == "registered" for c in changes)
        typer.echo(f"{done} registered, {len(changes) - done} unchanged")


@participants_app.command("suspend")
def suspend(
    address: AddressArg,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suspend an active participant: it can no longer sign in or take part in entries."""
    from service.chain.keys import operator_account

    chain = connect(network, rpc)
    registry = contracts_for(chain, deployment).registry
    change = suspend_participant(
        chain=chain, registry=registry, operator=operator_account(chain.network), address=address
    )
    typer.echo(json.dumps(change.to_json(), indent=2) if as_json else _line(change))


@participants_app.command("reinstate")
def reinstate(
    address: AddressArg,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a suspended participant active again."""
    from service.chain.keys import operator_account

    chain = connect(network, rpc)
    registry = contracts_for(chain, deployment).registry
    change = reinstate_participant(
        chain=chain, registry=registry, operator=operator_account(chain.network), address=address
    )
    typer.echo(json.dumps(change.to_json(), indent=2) if as_json else _line(change))


@participants_app.command("list")
def list_cmd(
    address: Annotated[
        str | None, typer.Argument(help="Show only this address (read from the registry).")
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(
            "--role", help="Only holders of this role: provider, consumer, service, operator, …"
        ),
    ] = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the registry's participants, operators, auditors and arbiters, roles by name."""
    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    if address is not None:
        records = [read_participant(chain=chain, registry=contracts.registry, address=address)]
    else:
        records = list_participants(
            chain=chain,
            registry=contracts.registry,
            from_block=contracts.deployment.deploy_block,
            role=role,
        )
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in records], indent=2))
        return
    if not records:
        typer.echo("no participants registered yet: `tally participants add ADDRESS --roles …`")
        return
    for line in _rows(records):
        typer.echo(line)
