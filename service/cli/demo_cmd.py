"""``tally demo``: the EV insurance data space, run end to end and told as a story."""

from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import Engine

from service.chain.client import Chain
from service.chain.config import at_rpc_url, load_network, save_deployment
from service.chain.deploy import TallyContracts
from service.db import create_schema, make_engine
from service.demo.scenario import (
    VALUATIONS,
    Cast,
    EvidenceResult,
    audit_evidence,
    build_receipts,
    cast_of,
    reduced_receipt_lines,
    run_evidence,
    setup_space,
    valuation_cast,
    write_receipts,
)
from service.demo.settle import RIGHT_ROUND, WRONG_ROUND, run_settlement
from service.evidence.entries import ValuationResult
from service.settlement.engine import RoundResult

console = Console()


def _tokens(amount: int | Fraction) -> str:
    """Display only: an amount in whole tokens (18 decimals), 6 places, no float."""
    micro = Fraction(amount) * 10**6 / 10**18
    whole = micro.numerator // micro.denominator
    return f"{whole // 10**6:,}.{whole % 10**6:06d}"


def _method_of(result: RoundResult, agreement_id: str) -> str:
    """The settlement method the round applied to ``agreement_id``."""
    return next(str(a.method) for a in result.agreements if a.agreement_id == agreement_id)


def _print_catalog(engine: Any, evidence: Any, names: dict[str, str]) -> list[dict[str, Any]]:
    """The catalog as ingest indexed it (GET /v1/catalog's rows), and the two receipts its
    terms refused; returns the offers for summary.json."""
    from sqlmodel import Session

    from service.catalog.index import all_offers
    from service.catalog.pricing import describe, parse_pricing

    with Session(engine) as session:
        offers = all_offers(session=session)
    table = Table(title="Catalog: data products offered (signed Offers in the log)")
    for col in ("offer", "providers", "pricing", "version"):
        table.add_column(col, overflow="fold")
    listed = []
    for row in sorted(offers, key=lambda r: r.title):
        providers = ", ".join(names.get(p.lower(), p[:10]) for p in row.providers.split(","))
        pricing = describe(parse_pricing(row.pricing), _tokens)
        table.add_row(row.title, providers, pricing, str(row.version))
        listed.append({"offer_id": row.offer_id, "title": row.title, "pricing": pricing})
    console.print(table)
    for r in evidence.catalog.rejected:
        mark = "[green]✓[/green]" if r["status"] == "rejected" else "[red]✗[/red]"
        console.print(f"{mark} {r['offer']}: {r['why']} -> {r['code']}: {r['message']}")
    return listed


def _print_bills(right: RoundResult, names: dict[str, str]) -> None:
    """Each agreement's bill in the statement: its pricing model and one row per rule."""
    table = Table(title=f"Round {right.round_id}: bills by pricing model (amounts in DemoToken)")
    for col in ("agreement", "consumer", "pricing / rule", "units", "amount"):
        table.add_column(col, justify="right" if col in ("units", "amount") else "left")
    for a in right.agreements:
        who = names.get(a.consumer, a.consumer[:10])
        table.add_row(f"{a.agreement_id[:10]}…", who, a.pricing, str(a.units), _tokens(a.revenue))
        if a.pricing == "unit_price":
            continue
        for rule in a.bill_lines:
            table.add_row(
                "", "", f"  {rule.rule}: {rule.detail}", str(rule.units), _tokens(rule.amount)
            )
    console.print(table)
    points = [
        f"{names.get(p['account'].lower(), p['account'][:10])} {p['points']}"
        for p in right.statement()["participants"]
        if p.get("points")
    ]
    if points:
        console.print(
            "contribution points (积分) this round, from the same weights: "
            + ", ".join(points)
            + "; high contributors (300+ on an agreement) got half their share of its fee back"
        )


def _demo_cast(chain: Chain, providers: int, valuation: str | None) -> Cast:
    """The default cast, or T13's: ``providers`` providers paid by ``valuation``."""
    if valuation is None:
        if providers != 4:
            raise typer.BadParameter(
                "--providers other than 4 needs --valuation", param_hint="--providers"
            )
        return cast_of(chain)
    if valuation not in VALUATIONS:
        raise typer.BadParameter(f"one of {', '.join(VALUATIONS)}", param_hint="--valuation")
    return valuation_cast(chain, providers=providers, valuation=valuation)


def _print_valuations(evidence: EvidenceResult, names: dict[str, str]) -> None:
    """T13: what the evaluator signed, per agreement (the round splits by it)."""
    for run in evidence.valuations:
        entry = run.signed.entry
        assert isinstance(entry, ValuationResult)
        est = run.estimate
        title = (
            f"ValuationResult {run.document['method']} for agreement "
            f"0x{entry.agreementId.hex()[:8]}…: {entry.utilityCalls} utility calls, "
            f"{est.samples} samples, {est.status}"
        )
        table = Table(title=title)
        for col in ("provider", "value (bps)", "std error (bps)"):
            table.add_column(col, justify="left" if col == "provider" else "right")
        ranked = sorted(
            zip(entry.providers, entry.values, entry.stderrs, strict=True), key=lambda r: -r[1]
        )
        for address, value, stderr in ranked[:5] + ranked[-3:] if len(ranked) > 8 else ranked:
            table.add_row(names.get(address.lower(), address[:10]), str(value), str(stderr))
        console.print(table)
        console.print(
            f"(top 5 and bottom 3 of {len(ranked)}; negative values are clipped to 0 in the split)"
            if len(ranked) > 8
            else "(negative values are clipped to 0 in the split)"
        )


def _write_valuations(evidence: EvidenceResult, out: Path) -> None:
    """T13: each agreement's valuation.json, what ``tally audit valuation`` re-runs."""
    for run in evidence.valuations:
        entry = run.signed.entry
        assert isinstance(entry, ValuationResult)
        path = out / f"valuation-0x{entry.agreementId.hex()[:8]}.json"
        path.write_text(json.dumps(run.to_json(), indent=2) + "\n")
        console.print(f"wrote {path} (check it: tally audit valuation {path} --db ...)")


def demo(
    receipts: Annotated[
        int, typer.Option(help="Dual-signed usage receipts to generate.", min=10)
    ] = 2_000,
    checkpoints: Annotated[
        int, typer.Option(help="Checkpoints to anchor during ingestion.", min=1)
    ] = 4,
    out: Annotated[
        Path, typer.Option(help="Folder for summary.json, receipts, deployment.")
    ] = Path("out/demo"),
    rpc: Annotated[
        str | None, typer.Option(help="Run on this JSON-RPC node (anvil) instead.")
    ] = None,
    network: Annotated[
        str | None,
        typer.Option(
            help="Run on this chain-config network (its build profile, gas and value rules); "
            "with --rpc, reached at that URL instead of its rpc_url."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated usage.")] = 7,
    audit_receipts: Annotated[
        int, typer.Option(help="Receipt documents the auditor checks on chain.", min=1)
    ] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json at the end.")] = False,
    providers: Annotated[
        int,
        typer.Option(help="Providers of the EV score (other than 4 needs --valuation).", min=1),
    ] = 4,
    valuation: Annotated[
        str | None,
        typer.Option(
            help="Pay providers by a data valuation (tally evaluate): banzhaf, shapley "
            "(permutation), loo or knn, instead of the default mix.",
        ),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="After the scenario, keep its chain alive and serve the API and the "
            "dashboard on it (tally serve's app) until Ctrl-C.",
        ),
    ] = False,
    host: Annotated[str, typer.Option(help="With --serve: interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="With --serve: TCP port.", min=1, max=65535)] = 8000,
) -> None:
    """Run the data-space scenario: admit parties, sign usage, anchor, hand out receipts;
    with --serve, then serve its deployment (the embedded chain stays alive)."""
    started = time.monotonic()
    if network:
        net = load_network(network)
        chain = Chain.connect(at_rpc_url(net, rpc) if rpc else net)
    elif rpc:
        from service.cli.chain_cmd import connect

        chain = connect(None, rpc)
    else:
        chain = Chain.embedded()
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "tally.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{db_path}")
    create_schema(engine)

    console.rule("[bold]Tally demo: EV insurance pricing in a trusted data space")
    console.print(f"chain: {chain.network.name} (id {chain.chain_id})   database: {db_path}")
    cast = _demo_cast(chain, providers, valuation)
    contracts = setup_space(chain, cast, challenge_window_s=60)
    save_deployment(contracts.deployment, out / "deployment.json")

    table = Table(title="Participants admitted on chain")
    for col in ("name", "address", "role"):
        table.add_column(col)
    for role in cast.everyone():
        label = {0: "", 1: "provider", 2: "consumer"}.get(role.roles, str(role.roles))
        if role is cast.operator:
            label = "operator (admin)"
        elif role is cast.auditor:
            label = "auditor"
        elif role is cast.arbiter:
            label = "arbiter"
        table.add_row(role.name, role.account.address, label)
    console.print(table)

    with Progress(
        TextColumn("[bold]signing receipts, POST /v1/evidence"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("ingest", total=receipts)
        evidence = run_evidence(
            chain=chain,
            engine=engine,
            cast=cast,
            contracts=contracts,
            receipts=receipts,
            checkpoints=checkpoints,
            seed=seed,
            data_dir=out,
            progress=lambda n: bar.advance(task, n),
        )

    names = {r.account.address.lower(): r.name for r in cast.everyone()}
    catalog = _print_catalog(engine, evidence, names)
    _print_valuations(evidence, names)
    _write_valuations(evidence, out)
    cps = Table(title="Checkpoints anchored (each with an on-chain consistency proof)")
    for col in ("seq", "tree size", "root", "tx"):
        cps.add_column(col)
    for cp in evidence.checkpoints:
        cps.add_row(str(cp.seq), str(cp.tree_size), cp.root[:18] + "…", cp.tx_hash[:18] + "…")
    console.print(cps)

    build_receipts(engine, evidence, count=audit_receipts)
    paths = write_receipts(evidence, out / "receipts", sample=24)
    console.print(f"wrote {len(paths)} receipt documents to {out / 'receipts'}")

    console.rule("[bold]Settlement: revenue split by contribution")
    settled = run_settlement(chain=chain, engine=engine, cast=cast, evidence=evidence, out=out)
    right = settled.right
    _print_bills(right, names)
    st = Table(title=f"Round {right.round_id}: who gets what and why (amounts in DemoToken)")
    for col in ("payee", "method", "receipts", "units", "exact share", "payout"):
        st.add_column(col, justify="left" if col in ("payee", "method") else "right")
    for account, lines in right.lines_by_account().items():
        for line in lines:
            method = "fee" if line.role == "operator" else _method_of(right, line.agreement_id)
            st.add_row(
                names.get(account, account[:10]),
                f"{method} ({line.agreement_id[:6]}…)",
                str(line.receipts),
                str(line.units),
                _tokens(line.exact_share),
                _tokens(line.payout),
            )
    console.print(st)
    mark = "[green]✓[/green]" if not settled.wrong_audit_ok else "[red]✗[/red]"
    dispute = settled.dispute
    outcome = (
        f"the auditor challenged with its published report ({dispute['finding_hash'][:18]}…), "
        f"the arbiter upheld the dispute: round {dispute['status_after']}, the insurers' "
        "debits refunded"
        if dispute.get("challenged")
        else "not challenged"
    )
    console.print(
        f"{mark} wrong round {WRONG_ROUND} (battery maker's payout shifted to the operator): "
        f"auditor says {settled.wrong_finding}; {outcome}"
    )
    mark = "[green]✓[/green]" if settled.right_audit_ok else "[red]✗[/red]"
    console.print(f"{mark} correct round {RIGHT_ROUND}: {settled.right_verdict}")
    ct = Table(title="Claims (anyone may send; the vault pays the leaf's account)")
    for col in ("payee", "amount", "gas", "tx"):
        ct.add_column(col)
    for cl in settled.claims:
        ct.add_row(
            names.get(cl["account"].lower(), cl["account"]),
            _tokens(int(cl["amount"])),
            str(cl["gas_used"]),
            str(cl["tx_hash"])[:18] + "…",
        )
    console.print(ct)
    console.print(
        f"{len(settled.claims)} payouts claimed in {settled.claim_transactions} transactions "
        "(the vault batches claims per account over rounds, not over accounts)"
    )
    console.print(
        f"vault balance after claims: {settled.vault_balance} "
        f"(unallocated {settled.vault_unallocated}); pool was {_tokens(right.pool)} DemoToken"
    )

    console.rule("[bold]Audit: trusting only the chain and the public log")
    audit = audit_evidence(engine=engine, chain=chain, result=evidence)
    mark = "[green]✓[/green]" if audit.receipts_valid == audit.receipts_checked else "[red]✗[/red]"
    console.print(
        f"{mark} receipts: {audit.receipts_valid}/{audit.receipts_checked} verified "
        "(signatures, entry id, inclusion proof, on-chain checkpoint, contract verifyInclusion)"
    )
    if audit.first_failure:
        console.print(f"  first failure: {audit.first_failure}")
    for text in reduced_receipt_lines(chain=chain, result=evidence, out_dir=out / "receipts"):
        console.print(text, highlight=False)
    console.print(
        ("[green]✓[/green] " if audit.log_consistent else "[red]✗[/red] ") + audit.log_verdict
    )

    summary: dict[str, Any] = {
        "network": chain.network.name,
        "chain_id": chain.chain_id,
        "contracts": {k: v.address for k, v in contracts.deployment.contracts.items()},
        "participants": [
            {"address": r.account.address, "name": r.name, "roles": r.roles}
            for r in cast.everyone()
        ],
        "evidence": {
            "entries": len(evidence.agreements)
            + len(evidence.contributions)
            + len(evidence.receipts)
            + evidence.catalog.entries,
            "receipts": len(evidence.receipts),
            "checkpoints": [
                {"seq": c.seq, "tree_size": c.tree_size, "root": c.root, "tx_hash": c.tx_hash}
                for c in evidence.checkpoints
            ],
        },
        "catalog": {
            "offers": catalog,
            "entries": evidence.catalog.entries,
            "rejected": evidence.catalog.rejected,
            "bills": {
                a.agreement_id: {"pricing": a.pricing, "amount": str(a.revenue)}
                for a in right.agreements
            },
        },
        "settlement": {
            "round_id": right.round_id,
            "pool": str(right.pool),
            "operator_fee": str(sum(a.fee for a in right.agreements)),
            "policy_hash": "0x" + right.policy_hash.hex(),
            "payout_root": "0x" + right.root.hex(),
            "evidence_checkpoint": right.checkpoint_seq,
            "payouts": {a: str(v) for a, v in sorted(right.payouts.items())},
            "deposits": {a: str(v) for a, v in settled.deposits.items()},
        },
        "rejected_round": {
            "round_id": WRONG_ROUND,
            "payouts": {a: str(v) for a, v in sorted(settled.wrong_payouts.items())},
            "auditor_finding": settled.wrong_finding,
            "caught": not settled.wrong_audit_ok,
            "dispute": settled.dispute,
        },
        "claims": settled.claims,
        "vault": {
            "balance": str(settled.vault_balance),
            "unallocated": str(settled.vault_unallocated),
        },
        "audit": {
            "receipts_checked": audit.receipts_checked,
            "receipts_valid": audit.receipts_valid,
            "settlement_match": settled.right_audit_ok,
            "log_consistent": audit.log_consistent,
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"[green]done in {summary['seconds']} s[/green]; summary: {out / 'summary.json'}")
    if as_json:
        print(json.dumps(summary, indent=2))
    ok = (
        audit.receipts_valid == audit.receipts_checked
        and audit.log_consistent
        and settled.right_audit_ok
        and not settled.wrong_audit_ok
        and settled.vault_balance == settled.vault_unallocated
        and settled.dispute.get("status_after") == "Cancelled"
        and [r["status"] for r in evidence.catalog.rejected] == ["rejected", "rejected"]
    )
    if not ok:
        raise typer.Exit(1)
    if serve:
        serve_demo(
            chain=chain,
            engine=engine,
            contracts=contracts,
            cast=cast,
            out=out,
            host=host,
            port=port,
        )


def serve_demo(
    *,
    chain: Chain,
    engine: Engine,
    contracts: TallyContracts,
    cast: Cast,
    out: Path,
    host: str,
    port: int,
) -> None:
    """``tally serve``'s app (:func:`service.api.main.create_app`) over the demo's own
    chain, database and deployment, with the indexer following, until Ctrl-C. On the
    embedded chain the process also answers read-only JSON-RPC at ``/rpc`` (what the
    dashboard's receipt verifier reads the ledger through; see :mod:`service.web.rpc`)."""
    import uvicorn

    from service.api.context import make_context
    from service.api.main import create_app
    from service.settings import Settings

    origin = f"http://{host}:{port}"
    settings = Settings(
        data_dir=out,
        database_url=f"sqlite:///{out / 'tally.db'}",
        network=chain.network.name,
        deployment_file=out / "deployment.json",
        index_follow=True,
        siwe_domain=f"{host}:{port}",
        siwe_uri=origin,
    )
    ctx = make_context(
        settings=settings,
        engine=engine,
        chain=chain,
        contracts=contracts,
        operator=cast.operator.account,
    )
    console.rule("[bold]Serving the demo deployment")
    console.print(
        f"dashboard: {origin}/   API docs: {origin}/docs   "
        + (f"JSON-RPC (read-only): {origin}/rpc   " if chain.is_embedded else "")
        + "Ctrl-C stops (the embedded chain's state goes with it)"
    )
    console.print(
        "sign in on the dashboard's 'My account' page with any participant above "
        "(the demo's keys are the public dev mnemonic's)"
    )
    uvicorn.run(create_app(context=ctx), host=host, port=port, log_level="warning")
