"""``tally chain up|down|status`` and ``tally deploy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from service.chain.client import Chain
from service.chain.config import (
    deployment_path,
    load_deployment,
    load_network,
    rpc_network,
    save_deployment,
)
from service.chain.deploy import (
    DEFAULT_CHALLENGE_WINDOW_S,
    DEFAULT_CLAIM_EXPIRY_S,
    TallyContracts,
    attach,
    deploy_tally,
)
from service.chain.devnode import chain_down, chain_up, read_pid_file, running_devnode
from service.chain.keys import operator_account
from service.errors import ChainError, ConfigError, DeploymentNotFound
from service.settings import get_settings

console = Console()
chain_app = typer.Typer(
    help="Start, stop and inspect the local anvil dev node.", no_args_is_help=True
)

NetworkOpt = Annotated[
    str | None,
    typer.Option("--network", "-n", help="Network name in chain-config/ (or a .toml path)."),
]
RpcOpt = Annotated[str | None, typer.Option("--rpc", help="JSON-RPC URL (instead of --network).")]
DeploymentOpt = Annotated[
    Path | None,
    typer.Option(
        "--deployment", help="Deployment file; default chain-config/deployments/<network>.json."
    ),
]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Database URL; default TALLY_DATABASE_URL.")
]


def connect(network: str | None, rpc: str | None) -> Chain:
    """Connect by ``--network`` name or by ``--rpc`` URL (chain id read from the node)."""
    if network and rpc:
        raise ConfigError("give --network or --rpc, not both")
    if rpc:
        from service.chain.rpc import probe_chain_id

        return Chain.connect(rpc_network(rpc, chain_id=probe_chain_id(rpc)))
    return Chain.connect(load_network(network or get_settings().network))


def contracts_for(chain: Chain, deployment: Path | None) -> TallyContracts:
    """Handles on the deployment in ``deployment`` (default: the network's recorded one),
    checked against the node's chain id."""
    path = deployment or deployment_path(chain.network.name)
    try:
        dep = load_deployment(path)
    except DeploymentNotFound as err:
        hint = "" if deployment else "; pass --deployment FILE"
        raise DeploymentNotFound(f"{err.message}{hint}") from None
    return attach(chain, dep)


@chain_app.command("up")
def up(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8545) -> None:
    """Start anvil (state kept under the data dir) and print its URL; fails, naming the
    port, when another process listens there."""
    url, pid, started = chain_up(get_settings().data_dir, port=port)
    console.print(f"{url}  [dim](pid {pid}{'' if started else ', already running'})[/dim]")


@chain_app.command("down")
def down() -> None:
    """Stop the anvil started by `tally chain up` (its state is saved)."""
    pid = chain_down(get_settings().data_dir)
    console.print("no dev node running" if pid is None else f"stopped anvil (pid {pid})")


@chain_app.command("status")
def status() -> None:
    """Print the dev node's URL, pid and block height, or that none runs (exit 1 when its
    process runs but does not answer)."""
    from service.chain.rpc import probe_chain_id

    data_dir = get_settings().data_dir
    found = running_devnode(data_dir)
    if found is None:
        stale = read_pid_file(data_dir)
        note = "" if stale is None else f" (pid {stale[0]} from the pid file is gone)"
        console.print(f"no dev node running{note}")
        return
    pid, url = found
    try:
        chain_id = probe_chain_id(url, timeout_s=2.0, tries=1)
    except ChainError as err:
        console.print(f"{url}  (pid {pid}) does not answer: {err.message}")
        raise typer.Exit(1) from None
    console.print(f"{url}  (pid {pid}, chain id {chain_id})")


def deploy(
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    token: Annotated[
        str | None, typer.Option(help="Settlement ERC-20 address; default: deploy a DemoToken.")
    ] = None,
    challenge_window: Annotated[int, typer.Option(help="Challenge window, seconds.", min=0)] = (
        DEFAULT_CHALLENGE_WINDOW_S
    ),
    claim_expiry: Annotated[
        int, typer.Option(help="Seconds after finalize before sweep.", min=0)
    ] = (DEFAULT_CLAIM_EXPIRY_S),
    out: Annotated[
        Path | None,
        typer.Option(help="Deployment file; default chain-config/deployments/<network>.json."),
    ] = None,
) -> None:
    """Deploy the Tally contracts and record the deployment."""
    chain = connect(network, rpc)
    admin = operator_account(chain.network)
    contracts = deploy_tally(
        chain,
        admin=admin,
        token_address=token,
        challenge_window_s=challenge_window,
        claim_expiry_s=claim_expiry,
    )
    if chain.network.kind == "embedded" and out is None:
        console.print(
            "[yellow]embedded chain: nothing is recorded (it ends with this process)[/yellow]"
        )
    else:
        path = out or deployment_path(chain.network.name)
        save_deployment(contracts.deployment, path)
        console.print(f"deployment written to {path}")
    console.print_json(
        json.dumps({k: v.address for k, v in contracts.deployment.contracts.items()})
    )
