"""``tally settle run|policy|finalize|cancel|challenge|resolve|sweep``, ``claim``, ``bill``,
``deposit``, ``withdraw request|complete|status``, ``log export`` and ``audit settlement``.

Operator commands read the operator's database (``--db``, default ``TALLY_DATABASE_URL``)
and, when they touch the chain, the network (``--network`` / ``--rpc``) and its
deployment file (``--deployment``, default ``chain-config/deployments/<network>.json``).
Round files go under ``<data dir>/rounds/<N>/`` (``TALLY_DATA_DIR``, default ``.tally``).
Times (``--from``, ``--to``) are unix seconds or ISO 8601 dates/times (UTC unless they
say otherwise); periods are half-open ``[from, to)``.

Transactions are signed with the operator's key from the network config; ``--key-env
VAR`` signs with the private key in environment variable ``VAR`` instead (an auditor's
challenge, an arbiter's ruling, a consumer's deposit or withdrawal). A vault revert is
one line saying what it means (``error[transaction_reverted]: … (SettlementVaultNoStanding)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from service import jsonsafe
from service.chain.client import Chain
from service.cli.chain_cmd import DbOpt, DeploymentOpt, NetworkOpt, RpcOpt, connect, contracts_for
from service.errors import CheckpointNotFound, ConfigError, InvalidInput
from service.evidence.models import AnchorRow
from service.settings import get_settings
from service.settlement.period import format_time, parse_time

console = Console()
settle_app = typer.Typer(
    help="Compute, propose, challenge, resolve, cancel, finalize and sweep settlement rounds.",
    no_args_is_help=True,
)
withdraw_app = typer.Typer(
    help="Take your free balance out of the vault, after the vault's notice period.",
    no_args_is_help=True,
)
log_app = typer.Typer(
    help="Export the evidence log for auditors; make its checkpoint note key.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
KeyEnvOpt = Annotated[
    str | None,
    typer.Option("--key-env", help="Sign with the private key in this environment variable."),
]
FromOpt = Annotated[str, typer.Option("--from", help="Period start: unix seconds or ISO 8601.")]
ToOpt = Annotated[str, typer.Option("--to", help="Period end (excluded): unix or ISO 8601.")]
CheckpointOpt = Annotated[
    int | None,
    typer.Option("--checkpoint", help="Anchored checkpoint seq; default: the latest.", min=0),
]


# --- helpers ----------------------------------------------------------------------------------


def _engine(db: str | None) -> Engine:
    from service.db import create_schema, make_engine

    engine = make_engine(db or get_settings().database_url)
    create_schema(engine)
    return engine


def _checkpoint(engine: Engine, seq: int | None) -> AnchorRow:
    with Session(engine) as session:
        if seq is None:
            row = session.exec(select(AnchorRow).order_by(col(AnchorRow.seq).desc())).first()
            if row is None:
                raise CheckpointNotFound("nothing is anchored yet: run `tally anchor` first")
            return row
        found = session.get(AnchorRow, seq)
        if found is None:
            raise CheckpointNotFound(f"checkpoint {seq} is not recorded in this database")
        return found


def _signer(chain: Chain, key_env: str | None) -> LocalAccount:
    from service.chain.keys import env_account, operator_account

    return operator_account(chain.network) if key_env is None else env_account(key_env)


def _address(value: str, what: str) -> str:
    from service.evidence.eip712 import parse_address

    try:
        return parse_address(value)
    except ValueError as err:
        raise InvalidInput(f"{what}: {err}") from None


def _data_dir() -> Path:
    return Path(get_settings().data_dir)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _short(address: str) -> str:
    return f"{address[:8]}…{address[-4:]}"


def _percent(part: int, whole: int) -> str:
    """``part / whole`` as a percentage with two decimals, truncated (integer arithmetic)."""
    if not whole:
        return "-"
    bp = part * 10_000 // whole
    return f"{bp // 100}.{bp % 100:02d}%"


def _statement_tables(statement: dict[str, Any]) -> None:
    total = int(statement["total"])
    table = Table(
        title=(
            f"Round {statement['round_id']}: period [{format_time(statement['period']['start'])}"
            f", {format_time(statement['period']['end'])}), checkpoint size "
            f"{statement['checkpoint']['size']}"
        )
    )
    for name, justify in (
        ("account", "left"),
        ("roles", "left"),
        ("receipts", "right"),
        ("units", "right"),
        ("payout", "right"),
        ("share", "right"),
        ("index", "right"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for who in statement["participants"]:
        roles = sorted({line["role"] for line in who["lines"]})
        payout = int(who["payout"])
        table.add_row(
            who["account"],
            ",".join(roles),
            str(who["receipts"]),
            str(who["units"]),
            str(payout),
            _percent(payout, total),
            "" if who["index"] is None else str(who["index"]),
        )
    console.print(table)
    console.print(
        f"pool {total} to {statement['payees']} payees; payout root {statement['payout_root']}; "
        f"policy {statement['policy_hash']}"
    )
    _bill_table(statement["bills"])


def _bill_table(bills: list[dict[str, Any]]) -> None:
    """One row per agreement (its pricing model), then one indented row per rule applied."""
    table = Table(title="Bills (what each consumer owes for the period)")
    left = ("consumer", "agreement", "pricing / rule")
    for name in (*left, "receipts", "units", "unit price", "amount"):
        table.add_column(name, justify="left" if name in left else "right", overflow="fold")
    for bill in bills:
        for line in bill["agreements"]:
            pricing = line.get("pricing", "unit_price")
            if line.get("payment") == "prepaid":
                pricing += " (prepaid)"
            table.add_row(
                bill["consumer"],
                _short(line["agreement_id"]),
                pricing,
                str(line["receipts"]),
                str(line["units"]),
                line["unit_price"],
                line["amount"],
            )
            rules = line.get("lines", [])
            if len(rules) == 1 and rules[0]["rule"] == "unit_price":
                continue  # units x unitPrice: the row above says it all
            for rule in rules:
                table.add_row(
                    "",
                    "",
                    f"  {rule['rule']}: {rule['detail']}",
                    "",
                    str(rule["units"]),
                    rule["unit_price"] or "",
                    rule["amount"],
                )
    console.print(table)


# --- settle -----------------------------------------------------------------------------------


@settle_app.command("run")
def settle_run(
    round_id: Annotated[int, typer.Option("--round", help="Round id (never reused).", min=0)],
    period_from: FromOpt,
    period_to: ToOpt,
    policy: Annotated[Path, typer.Option("--policy", help="Policy file (TOML or JSON).")],
    checkpoint: CheckpointOpt = None,
    propose_round: Annotated[
        bool, typer.Option("--propose", help="Also propose the round on the vault.")
    ] = False,
    statement_uri: Annotated[
        str | None,
        typer.Option(
            "--statement-uri",
            help="Where the round's document is published, named on chain for anyone to "
            "fetch (default: the claim file payouts.json's file:// URI: each payee's amount "
            "and proof, no usage; statement.json, with every party's lines, stays private).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Compute a round from the anchored log, write its files, optionally propose it."""
    from service.settlement.engine import compute_round
    from service.settlement.policy import load_policy
    from service.settlement.rounds import propose, write_round_files

    parsed = load_policy(policy)
    start, end = parse_time(period_from, "--from"), parse_time(period_to, "--to")
    engine = _engine(db)
    try:
        anchor = _checkpoint(engine, checkpoint)
        result = compute_round(
            session_or_engine=engine,
            round_id=round_id,
            period_start=start,
            period_end=end,
            checkpoint_size=anchor.tree_size,
            checkpoint_seq=anchor.seq,
            policy=parsed,
        )
    finally:
        engine.dispose()
    files = write_round_files(result=result, data_dir=_data_dir())
    proposed = None
    if propose_round:
        chain = connect(network, rpc)
        contracts = contracts_for(chain, deployment)
        proposed = propose(
            chain=chain,
            vault=contracts.vault,
            result=result,
            sender=_signer(chain, None),
            statement_uri=statement_uri or files.payouts.resolve().as_uri(),
        )
    if as_json:
        out = result.statement()
        out["files"] = str(files.directory)
        if proposed is not None:
            out["proposed"] = {
                "tx_hash": proposed.tx_hash,
                "block": proposed.block_number,
                "challenge_deadline": proposed.challenge_deadline,
                "statement_uri": proposed.statement_uri,
                "period": {"start": proposed.period_start, "end": proposed.period_end},
                "debits": {a: str(v) for a, v in proposed.debits},
            }
        _print_json(out)
        return
    _statement_tables(result.statement())
    console.print(f"round files written to {files.directory}")
    if proposed is not None:
        console.print(
            f"proposed round {round_id} for [{format_time(proposed.period_start)}, "
            f"{format_time(proposed.period_end)}): tx {proposed.tx_hash}, block "
            f"{proposed.block_number}, challenges until "
            f"{format_time(proposed.challenge_deadline)}; debits "
            + ", ".join(f"{a} {v}" for a, v in proposed.debits)
        )


@settle_app.command("policy")
def settle_policy(
    policy: Annotated[Path, typer.Argument(help="Policy file (TOML or JSON).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the hash and the canonical document.")
    ] = False,
) -> None:
    """Check a policy file and print its hash: what every Agreement it settles names as
    policyHash, and what `settle run --propose` puts on chain."""
    from service.settlement.policy import load_policy

    parsed = load_policy(policy)
    if as_json:
        _print_json({"policy_hash": parsed.hash_hex, "canonical": parsed.document})
        return
    typer.echo(parsed.hash_hex)


def _round_tx(
    action: str, round_id: int, network: str | None, rpc: str | None, deployment: Path | None
) -> None:
    from service.settlement import rounds

    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    fn = {"finalize": rounds.finalize, "cancel": rounds.cancel}[action]
    receipt = fn(chain=chain, vault=contracts.vault, round_id=round_id, sender=_signer(chain, None))
    state = rounds.read_round(chain=chain, vault=contracts.vault, round_id=round_id)
    typer.echo(f"round {round_id}: {state.status} (tx 0x{bytes(receipt['transactionHash']).hex()})")


@settle_app.command("finalize")
def settle_finalize(
    round_id: Annotated[int, typer.Argument(help="Round id.")],
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Finalize an undisputed round after its challenge window."""
    _round_tx("finalize", round_id, network, rpc, deployment)


@settle_app.command("cancel")
def settle_cancel(
    round_id: Annotated[int, typer.Argument(help="Round id.")],
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Cancel a proposed or disputed round; its reservation is released."""
    _round_tx("cancel", round_id, network, rpc, deployment)


@settle_app.command("challenge")
def settle_challenge(
    round_id: Annotated[int, typer.Argument(help="Round id.")],
    finding: Annotated[
        Path,
        typer.Option(
            "--finding",
            help="The published finding (`tally audit settlement --json` output); its "
            "keccak256 goes on chain.",
        ),
    ],
    payouts: Annotated[
        Path | None,
        typer.Option(help="The round's payouts.json: a payee's standing is its payout proof."),
    ] = None,
    key_env: KeyEnvOpt = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Dispute a proposed round during its challenge window (auditor, funding consumer, or
    payee with --payouts)."""
    from service.settlement.rounds import challenge, finding_hash, load_payouts, read_round

    try:
        data = finding.read_bytes()
    except OSError as err:
        raise InvalidInput(f"cannot read the finding {finding}: {err.strerror}") from None
    tree = load_payouts(payouts) if payouts is not None else None
    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    challenge(
        chain=chain,
        vault=contracts.vault,
        round_id=round_id,
        sender=_signer(chain, key_env),
        finding=data,
        payouts=tree,
    )
    state = read_round(chain=chain, vault=contracts.vault, round_id=round_id)
    typer.echo(f"round {round_id}: {state.status} (finding 0x{finding_hash(data).hex()})")


@settle_app.command("resolve")
def settle_resolve(
    round_id: Annotated[int, typer.Argument(help="Round id.")],
    upheld: Annotated[
        bool,
        typer.Option(
            "--upheld/--rejected",
            help="Upheld: cancel the round, refund its debits. Rejected: Proposed again.",
        ),
    ],
    ruling: Annotated[
        Path, typer.Option("--ruling", help="The published ruling; its keccak256 goes on chain.")
    ],
    key_env: KeyEnvOpt = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Rule on a disputed round (ARBITER_ROLE)."""
    from service.settlement.rounds import read_round, resolve

    try:
        data = ruling.read_bytes()
    except OSError as err:
        raise InvalidInput(f"cannot read the ruling {ruling}: {err.strerror}") from None
    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    resolve(
        chain=chain,
        vault=contracts.vault,
        round_id=round_id,
        sender=_signer(chain, key_env),
        upheld=upheld,
        ruling=data,
    )
    state = read_round(chain=chain, vault=contracts.vault, round_id=round_id)
    verdict = "upheld" if upheld else "rejected"
    typer.echo(f"round {round_id}: dispute {verdict}, round {state.status}")


@settle_app.command("sweep")
def settle_sweep(
    round_id: Annotated[int, typer.Argument(help="Round id.")],
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Close a finalized round after its claim period: what it did not pay goes back to
    its funders' free balances, pro rata."""
    from service.settlement.rounds import sweep

    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    receipt, amount, refunds = sweep(
        chain=chain, vault=contracts.vault, round_id=round_id, sender=_signer(chain, None)
    )
    back = ", ".join(f"{a} {v}" for a, v in refunds.items()) or "nothing"
    typer.echo(
        f"round {round_id}: Closed; {amount} returned ({back}) "
        f"(tx 0x{bytes(receipt['transactionHash']).hex()})"
    )


# --- claim, bill, deposit ---------------------------------------------------------------------


def claim_cmd(
    round_ids: Annotated[
        list[int], typer.Option("--round", help="Round id (repeatable with --all).", min=0)
    ],
    account: Annotated[
        list[str] | None, typer.Option("--account", help="Claim for this account (repeatable).")
    ] = None,
    claim_all: Annotated[
        bool, typer.Option("--all", help="Claim every payout not claimed yet.")
    ] = False,
    payouts: Annotated[
        Path | None,
        typer.Option(help="Claim file (one round); default <data dir>/rounds/<N>/payouts.json."),
    ] = None,
    key_env: KeyEnvOpt = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Claim payouts of finalized rounds (anyone may send; the leaf's account is paid).

    With --all over several rounds, an account paid in more than one of them is paid with
    one claimMany transaction; the vault has no batch over accounts, so every other payee
    takes one claim transaction.
    """
    from service.settlement.rounds import claim, load_payouts, round_dir
    from service.settlement.rounds import claim_all as claim_every

    if bool(account) == claim_all:
        raise ConfigError("give --account A (one or more) or --all")
    if len(round_ids) != len(set(round_ids)):
        raise ConfigError("each --round may be given once")
    if len(round_ids) > 1 and (payouts is not None or not claim_all):
        raise ConfigError("several --round need --all and the default payout files")
    trees = []
    for rid in round_ids:
        tree = load_payouts(payouts or round_dir(_data_dir(), rid) / "payouts.json")
        if tree.round_id != rid:
            raise InvalidInput(f"the payout file is for round {tree.round_id}, not {rid}")
        trees.append(tree)
    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    sender = _signer(chain, key_env)
    if claim_all:
        summary = claim_every(chain=chain, vault=contracts.vault, trees=trees, sender=sender)
        results, transactions = list(summary.results), summary.transactions
    else:
        results = claim(
            chain=chain, vault=contracts.vault, tree=trees[0], sender=sender, accounts=account
        )
        transactions = sum(1 for r in results if r.claimed_now)
    for r in results:
        state = f"claimed (tx {r.tx_hash})" if r.claimed_now else "already claimed"
        typer.echo(f"round {r.round_id} #{r.index} {r.account} {r.amount}: {state}")
    now = sum(1 for r in results if r.claimed_now)
    typer.echo(f"{now} payouts claimed in {transactions} transactions")


def bill_cmd(
    period_from: FromOpt,
    period_to: ToOpt,
    checkpoint: CheckpointOpt = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """What each consumer owes for the period, a line per pricing rule applied (units x
    unit price, or the offer's pricing model: tiers, free trial, subscription, revenue share)."""
    from service.settlement.engine import compute_bills

    engine = _engine(db)
    try:
        anchor = _checkpoint(engine, checkpoint)
        bills = compute_bills(
            session_or_engine=engine,
            period_start=parse_time(period_from, "--from"),
            period_end=parse_time(period_to, "--to"),
            checkpoint_size=anchor.tree_size,
        )
    finally:
        engine.dispose()
    docs = [bill.to_json() for bill in bills]
    if as_json:
        _print_json({"checkpoint": {"seq": anchor.seq, "size": anchor.tree_size}, "bills": docs})
        return
    _bill_table(docs)
    console.print(f"total owed: {sum(b.total for b in bills)}")


def deposit_cmd(
    amount: Annotated[int, typer.Argument(help="Token amount in its smallest unit.", min=1)],
    for_account: Annotated[
        str | None,
        typer.Option(
            "--for", help="Credit this account (you pay): an operator funding a consumer."
        ),
    ] = None,
    mint: Annotated[
        bool, typer.Option("--mint", help="Mint it first (DemoToken owner, dev chains).")
    ] = False,
    key_env: KeyEnvOpt = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Approve the vault and deposit AMOUNT into your free balance (or --for ACCOUNT's)."""
    from service.settlement.rounds import balance_of, deposit

    credited = None if for_account is None else _address(for_account, "--for")
    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    sender = _signer(chain, key_env)
    if mint:
        owner = _signer(chain, None)
        chain.transact(contracts.token.functions.mint(sender.address, amount), sender=owner)
    deposit(
        chain=chain,
        vault=contracts.vault,
        token=contracts.token,
        sender=sender,
        amount=amount,
        account=credited,
    )
    who = credited or sender.address
    free = balance_of(chain=chain, vault=contracts.vault, account=who)
    typer.echo(f"deposited {amount} from {sender.address} for {who}; free balance now {free}")


@withdraw_app.command("request")
def withdraw_request(
    amount: Annotated[int, typer.Argument(help="Amount to withdraw (0 cancels a request).", min=0)],
    key_env: KeyEnvOpt = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Ask to withdraw AMOUNT of your free balance; it can be taken after the notice."""
    from service.settlement.rounds import request_withdrawal

    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    sender = _signer(chain, key_env)
    _, available_at = request_withdrawal(
        chain=chain, vault=contracts.vault, sender=sender, amount=amount
    )
    if amount == 0:
        typer.echo(f"withdrawal request of {sender.address} cancelled")
        return
    typer.echo(
        f"withdrawal of {amount} requested by {sender.address}; `tally withdraw complete` from "
        f"{format_time(available_at)} on; until then rounds may still debit it"
    )


@withdraw_app.command("complete")
def withdraw_complete(
    key_env: KeyEnvOpt = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Take the requested withdrawal (what is left of it in your free balance)."""
    from service.settlement.rounds import balance_of, withdraw

    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    sender = _signer(chain, key_env)
    _, paid = withdraw(chain=chain, vault=contracts.vault, sender=sender)
    free = balance_of(chain=chain, vault=contracts.vault, account=sender.address)
    typer.echo(f"withdrew {paid} to {sender.address}; free balance now {free}")


@withdraw_app.command("status")
def withdraw_status(
    account: Annotated[
        str | None, typer.Argument(help="Whose balance (default: the signer's).")
    ] = None,
    key_env: KeyEnvOpt = None,
    network: NetworkOpt = None,
    rpc: RpcOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Free balance on the vault and any withdrawal request."""
    from service.settlement.rounds import balance_of, pending_withdrawal

    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    who = _address(account, "ACCOUNT") if account is not None else _signer(chain, key_env).address
    free = balance_of(chain=chain, vault=contracts.vault, account=who)
    amount, at = pending_withdrawal(chain=chain, vault=contracts.vault, account=who)
    request = (
        f"{amount} requested, available from {format_time(at)}" if at else "no withdrawal requested"
    )
    typer.echo(f"{who}: free balance {free}; {request}")


# --- log export and audit ---------------------------------------------------------------------


@log_app.command("export")
def log_export(
    upto: Annotated[int, typer.Option("--upto", help="Checkpoint seq to export up to.", min=0)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Export file (JSON Lines).")],
    db: DbOpt = None,
) -> None:
    """Write the log's entries up to an anchored checkpoint, with their salts, for
    `tally audit log --log-file` and `tally audit settlement --log-file` (full entries:
    hand the file to auditors only)."""
    engine = _engine(db)
    try:
        from service.evidence.sources import write_log_export

        header = write_log_export(engine=engine, seq=upto, out=out)
    finally:
        engine.dispose()
    typer.echo(
        f"exported {header['tree_size']} entries (checkpoint {header['seq']}, root "
        f"{header['root']}) to {out}"
    )


@log_app.command("keygen")
def log_keygen(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Write the note private key here (0600).")
    ],
    network: NetworkOpt = None,
    deployment: DeploymentOpt = None,
) -> None:
    """Make the log's checkpoint note key (Ed25519, C2SP signed note) for keys.source
    "env", named after this space's origin, and print the origin and the vkey witnesses
    pin. Serve with TALLY_NOTE_KEY set to the file's one line; the key is never printed.
    The origin is what tally serve computes: TALLY_SPACE_NAME (else TALLY_SIWE_DOMAIN),
    the chain id and the deployment's EvidenceLedger (--deployment, else
    TALLY_DEPLOYMENT_FILE, else the network's)."""
    from service.api.context import note_origin
    from service.chain.config import deployment_path, load_deployment, load_network
    from service.chain.keys import new_note_skey, write_new_secret
    from service.witness.note import NoteSigner

    settings = get_settings()
    dep = load_deployment(
        deployment
        or settings.deployment_file
        or deployment_path(load_network(network or settings.network).name)
    )
    origin = note_origin(settings, dep.chain_id, dep.address("EvidenceLedger"))
    skey = new_note_skey(origin)
    write_new_secret(out, skey + "\n")
    typer.echo(f"origin {origin}")
    typer.echo(f"vkey   {NoteSigner.from_skey(skey).vkey()}")


def audit_settlement_cmd(
    round_id: Annotated[int, typer.Argument(help="Round id.")],
    policy: Annotated[Path, typer.Option("--policy", help="Policy file (TOML or JSON).")],
    rpc: RpcOpt = None,
    network: NetworkOpt = None,
    deployment: DeploymentOpt = None,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Log export (`tally log export`).")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Read the log from this database URL.")
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(
            "--api",
            help="Read the log from this Tally API (GET /v1/evidence, signed in as an auditor).",
        ),
    ] = None,
    key_env: Annotated[
        str | None,
        typer.Option(
            "--key-env",
            help="With --api: sign in with the auditor's private key in this environment "
            "variable (default: the network's key source).",
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="With --api: keep downloaded entry pages here (resumable)."),
    ] = None,
    payouts: Annotated[
        Path | None,
        typer.Option(help="The round's published payouts.json: names differing payouts."),
    ] = None,
    period_from: Annotated[
        str | None,
        typer.Option("--from", help="The statement's period start, checked against the chain's."),
    ] = None,
    period_to: Annotated[
        str | None,
        typer.Option("--to", help="The statement's period end, checked against the chain's."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print every check before the verdict.")
    ] = False,
    home_rpc: Annotated[
        list[str] | None,
        typer.Option(
            "--home-rpc",
            help="A home space's chain (JSON-RPC URL) for cross-space providers; repeatable.",
        ),
    ] = None,
    home_network: Annotated[
        list[str] | None,
        typer.Option(
            "--home-network", help="A home space's chain by chain-config network; repeatable."
        ),
    ] = None,
    home_registry: Annotated[
        list[str] | None,
        typer.Option(
            "--home-registry",
            help="The registry trusted on each home chain (--home-rpc ones first, then "
            "--home-network); default: the audited network's home_spaces.",
        ),
    ] = None,
    home_from_block: Annotated[
        int, typer.Option(help="First block of the home registries' events.", min=0)
    ] = 0,
) -> None:
    """Recompute a round from the chain, the log and the policy; exit 1 on any mismatch.

    Providers of cross-space agreements are checked in their home space's registry on
    its chain: --home-rpc/--home-network (and --home-registry), or by default every
    home_spaces entry of --network's chain config."""
    from service.audit.homespace import HomeRegistries, pin_homes
    from service.audit.settlement import audit_settlement
    from service.audit.sources import EntrySource, ExportFileSource, closing_source
    from service.cli.evidence_cmd import api_source
    from service.settlement.policy import load_policy

    if (rpc is None) == (network is None):
        raise ConfigError("give exactly one of --rpc URL or --network NAME")
    if sum(x is not None for x in (log_file, db, api)) != 1:
        raise ConfigError("give exactly one of --log-file FILE, --db URL or --api URL")
    if cache is not None and api is None:
        raise ConfigError("--cache keeps pages downloaded from --api: give --api URL")
    if (period_from is None) != (period_to is None):
        raise ConfigError("give both --from and --to, or neither")
    payouts_doc = None
    if payouts is not None:
        try:
            payouts_doc = jsonsafe.loads(payouts.read_text(encoding="utf-8"), what=payouts.name)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InvalidInput(f"cannot read the payout file {payouts}: {err}") from None
    period = None
    if period_from is not None and period_to is not None:
        period = (parse_time(period_from, "--from"), parse_time(period_to, "--to"))
    chain = connect(network, rpc)
    contracts = contracts_for(chain, deployment)
    home_chains = [connect(None, url) for url in home_rpc or ()]
    home_chains += [connect(name, None) for name in home_network or ()]
    homes = pin_homes(
        home_chains,
        registries=home_registry or (),
        config=chain.network if network is not None else None,
        from_block=home_from_block,
    )
    source: EntrySource
    if log_file is not None:
        source = ExportFileSource(log_file)
    elif api is not None:
        source = api_source(api, cache, chain=chain, key_env=key_env)
    else:
        from service.evidence.sources import SqlLogSource

        assert db is not None
        source = SqlLogSource.from_url(db)
    with closing_source(source):
        report = audit_settlement(
            chain=chain,
            vault=contracts.vault,
            ledger=contracts.ledger,
            round_id=round_id,
            entries_source=source,
            policy_doc=load_policy(policy),
            payouts_doc=payouts_doc,
            period=period,
            from_block=contracts.deployment.deploy_block,
            home_registries=HomeRegistries(homes),
        )
    if as_json:
        _print_json(report.to_json())
    else:
        if verbose:
            marks = {True: "ok  ", False: "FAIL", None: "skip"}
            for check in report.checks:
                typer.echo(f"{marks[check.ok]}  {check.name}: {check.detail}")
        typer.echo(report.verdict)
    raise typer.Exit(0 if report.ok else 1)
