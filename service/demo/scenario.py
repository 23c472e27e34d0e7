"""EV insurance pricing in a trusted data space, end to end on one chain.

Providers (a battery maker, two automakers, a charging-network operator) supply data
to an "EV risk score" product; two insurers consume it per call. The operator admits
everyone on chain, the parties sign an agreement per insurer, every batch of calls
becomes a usage receipt signed by the insurer and countersigned by the provider that
served it, the log is anchored several times with on-chain consistency proofs, and
receipts are handed out and checked.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.audit.log import audit_log
from service.audit.receipt import audit_receipt
from service.audit.roles import RegistryHistory
from service.audit.trust import TrustedDeployment
from service.chain.client import Chain
from service.chain.deploy import TallyContracts, deploy_tally
from service.demo.api_client import ApiError, InProcessApi
from service.demo.catalog import (
    CatalogResult,
    catalog_policy_overrides,
    demo_points,
    run_catalog,
)
from service.demo.model import coalition_values
from service.evidence.anchor import anchor_once
from service.evidence.commitment import signer_fields
from service.evidence.directory import CONSUMER, PROVIDER, SERVICE
from service.evidence.eip712 import Domain, keccak256
from service.evidence.entries import (
    Agreement,
    CoalitionValues,
    ContributionDeclaration,
    ContributionKind,
    QualityAttestation,
    SignedEntry,
    UsageReceipt,
    sign_entry,
)
from service.evidence.models import AnchorRow
from service.evidence.receipts import build_receipt, reduce_receipt
from service.evidence.sources import SqlLogSource
from service.settlement.policy import Policy, parse_policy
from service.valuation.run import ValuationRun

PERIOD_START = 1_767_225_600  # 2026-01-01T00:00:00Z
PERIOD_END = PERIOD_START + 31 * 86_400
UNIT_PRICE = 2 * 10**15  # 0.002 token per call, in the token's smallest unit
BATCH = 250


@dataclass(frozen=True)
class Role:
    name: str
    account: LocalAccount
    roles: int  # registry bitmask; 0 for operator/auditor (AccessControl roles)


@dataclass
class Cast:
    operator: Role
    auditor: Role
    providers: list[Role]
    insurers: list[Role]
    evaluator: Role
    arbiter: Role  # holds ARBITER_ROLE: rules on disputed settlement rounds
    valuation: str | None = None
    """T13: the ``tally evaluate`` method the providers are paid by (``--valuation``), else
    None (the default story: a mix with exact Shapley over 4 providers)."""

    def everyone(self) -> list[Role]:
        return [
            self.operator,
            self.auditor,
            *self.providers,
            *self.insurers,
            self.evaluator,
            self.arbiter,
        ]


def cast_of(chain: Chain) -> Cast:
    a = chain.accounts
    return Cast(
        operator=Role("data-space operator", a[0], 0),
        auditor=Role("auditor", a[1], 0),
        providers=[
            Role("battery maker", a[2], PROVIDER),
            Role("automaker A", a[3], PROVIDER),
            Role("automaker B", a[4], PROVIDER),
            Role("charging network", a[5], PROVIDER),
        ],
        insurers=[Role("insurer X", a[6], CONSUMER), Role("insurer Y", a[7], CONSUMER)],
        evaluator=Role("model evaluator", a[8], SERVICE),
        arbiter=Role("dispute arbiter", a[9], 0),
    )


def demo_policy(cast: Cast) -> Policy:
    """Mix of output (units x quality), Shapley (model accuracy) and input cost; every
    agreement names its hash (the rounds settle only agreements that name their policy)."""
    if cast.valuation is not None:
        return valuation_policy(cast)
    return parse_policy(
        {
            "version": 1,
            "operator": cast.operator.account.address,
            "operator_fee_bps": 250,
            "method": "mix",
            "mix": {"output": "1/2", "shapley": "3/10", "cost": "1/5"},
            "default_quality_bps": 8_000,
            "evaluator": cast.evaluator.account.address,
            "agreements": catalog_policy_overrides(),  # the catalog's agreements: by output
            "points": demo_points(),  # contribution points (积分) and fee rebates
        }
    )


@dataclass
class EvidenceResult:
    contracts: TallyContracts
    domain: Domain
    agreements: list[SignedEntry]
    receipts: list[SignedEntry]
    checkpoints: list[AnchorRow] = field(default_factory=list)
    contributions: list[SignedEntry] = field(default_factory=list)
    receipt_docs: list[dict[str, Any]] = field(default_factory=list)
    valuations: list[ValuationRun] = field(default_factory=list)
    catalog: CatalogResult = field(default_factory=CatalogResult)


def setup_space(chain: Chain, cast: Cast, *, challenge_window_s: int) -> TallyContracts:
    """Deploy the contracts and admit every participant on chain."""
    op = cast.operator.account
    contracts = deploy_tally(chain, admin=op, challenge_window_s=challenge_window_s)
    reg = contracts.registry
    auditor_role = chain.call(reg.functions.AUDITOR_ROLE())
    chain.transact(reg.functions.grantRole(auditor_role, cast.auditor.account.address), sender=op)
    arbiter_role = chain.call(reg.functions.ARBITER_ROLE())
    chain.transact(reg.functions.grantRole(arbiter_role, cast.arbiter.account.address), sender=op)
    for role in [*cast.providers, *cast.insurers, cast.evaluator]:
        identity = keccak256(f"did:example:{role.name}".encode())
        chain.transact(
            reg.functions.register(
                role.account.address, role.roles, identity, f"urn:tally:{role.name}"
            ),
            sender=op,
        )
    return contracts


def _agreement(cast: Cast, insurer: Role, domain: Domain, index: int) -> SignedEntry:
    providers = sorted((p.account for p in cast.providers), key=lambda a: a.address.lower())
    entry = Agreement(
        agreementId=keccak256(f"ev-risk-score/{insurer.name}".encode()),
        assetId=keccak256(b"ev-risk-score-v1"),
        consumer=insurer.account.address,
        providers=[p.address for p in providers],
        unitPrice=UNIT_PRICE + index * 5 * 10**14,
        policyHash=demo_policy(cast).hash,
        validFrom=PERIOD_START,
        validUntil=PERIOD_END,
    )
    keys = [bytes(insurer.account.key), *(bytes(p.key) for p in providers)]
    return sign_entry(entry, domain, keys)


COSTS = [1_200, 900, 700, 400]  # declared input cost per provider (token units, scaled below)
QUALITY = [9_600, 8_800, 8_500, 9_200]  # insurers' quality scores (bps) per provider


def contribution_entries(
    cast: Cast, agreements: list[SignedEntry], domain: Domain, seed: int
) -> list[SignedEntry]:
    """Quality attestations (by each insurer), input-cost declarations (by each provider)
    and the evaluator's coalition values from a real model fit, per agreement."""
    if cast.valuation is not None:
        return []  # paid by the evaluator's ValuationResult instead (valuation_entries)
    out: list[SignedEntry] = []
    providers = sorted(cast.providers, key=lambda r: r.account.address.lower())
    values = coalition_values(providers=len(providers), seed=seed)
    for insurer, agreement in zip(cast.insurers, agreements, strict=True):
        assert isinstance(agreement.entry, Agreement)  # (catalog entries have no agreement id)
        aid = agreement.entry.agreementId
        for i, role in enumerate(cast.providers):
            q = QualityAttestation(
                agreementId=aid,
                provider=role.account.address,
                periodStart=PERIOD_START,
                periodEnd=PERIOD_END,
                scoreBps=QUALITY[i],
            )
            out.append(sign_entry(q, domain, [bytes(insurer.account.key)]))
            c = ContributionDeclaration(
                agreementId=aid,
                provider=role.account.address,
                kind=ContributionKind.INPUT_COST,
                value=COSTS[i] * 10**15,
                periodStart=PERIOD_START,
                periodEnd=PERIOD_END,
            )
            out.append(sign_entry(c, domain, [bytes(role.account.key)]))
        cv = CoalitionValues(
            agreementId=aid,
            periodStart=PERIOD_START,
            periodEnd=PERIOD_END,
            providers=[r.account.address for r in providers],
            values=values,
        )
        out.append(sign_entry(cv, domain, [bytes(cast.evaluator.account.key)]))
    return out


def make_receipts(
    cast: Cast, agreements: list[SignedEntry], domain: Domain, count: int, seed: int
) -> list[SignedEntry]:
    """``count`` dual-signed receipts; providers serve in uneven shares (seeded)."""
    rng = random.Random(seed)
    weights = [0.4, 0.25, 0.15, 0.2]  # battery data is what the score needs most
    if len(cast.providers) != len(weights):  # --providers N (T13): even shares
        weights = [1.0] * len(cast.providers)
    out = []
    for n in range(count):
        i = n % len(cast.insurers)
        insurer, agreement = cast.insurers[i], agreements[i]
        assert isinstance(agreement.entry, Agreement)  # (catalog entries have no agreement id)
        provider = rng.choices(cast.providers, weights=weights)[0]
        start = PERIOD_START + rng.randrange(0, 30 * 86_400)
        entry = UsageReceipt(
            agreementId=agreement.entry.agreementId,
            consumer=insurer.account.address,
            provider=provider.account.address,
            units=rng.randrange(1, 200),
            periodStart=start,
            periodEnd=start + 3_600,
            detailHash=keccak256(f"call-log/{n}".encode()),
            nonce=n,
        )
        out.append(
            sign_entry(entry, domain, [bytes(insurer.account.key), bytes(provider.account.key)])
        )
    return out


def run_evidence(
    *,
    chain: Chain,
    engine: Engine,
    cast: Cast,
    contracts: TallyContracts,
    receipts: int,
    checkpoints: int,
    seed: int,
    data_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> EvidenceResult:
    """Sign the agreements, contribution evidence and receipts and submit them in
    batches through the HTTP API (``POST /v1/evidence``), anchoring ``checkpoints``
    times on the way."""
    domain = Domain(chain_id=chain.chain_id, verifying_contract=contracts.ledger.address)
    agreements = [_agreement(cast, ins, domain, i) for i, ins in enumerate(cast.insurers)]
    signed = make_receipts(cast, agreements, domain, receipts, seed)
    result = EvidenceResult(contracts, domain, agreements, signed)
    op = cast.operator.account
    api = InProcessApi(
        chain=chain, engine=engine, contracts=contracts, operator=op, data_dir=data_dir
    )
    api.sign_in(op)

    def ingest(batch: list[SignedEntry]) -> None:
        answer = api.post_evidence(batch)
        bad = [r for r in answer["results"] if r["status"] == "rejected"]
        if bad:
            raise ApiError(f"demo entry rejected: {bad[0]['code']}: {bad[0]['message']}")

    try:
        ingest(agreements)
        result.contributions = contribution_entries(cast, agreements, domain, seed)
        if result.contributions:  # none when a valuation pays (T13)
            ingest(result.contributions)
        if cast.valuation is not None:
            cp = anchor_once(engine=engine, chain=chain, ledger=contracts.ledger, operator=op)
            if cp is not None:  # the valuation's seed comes from this checkpoint
                result.checkpoints.append(cp)
            result.valuations = valuation_entries(engine, cast, agreements)
            ingest([run.signed for run in result.valuations])
        result.catalog = run_catalog(
            cast=cast,
            domain=domain,
            policy_hash=demo_policy(cast).hash,
            period=(PERIOD_START, PERIOD_END),
            post=api.post_evidence,
        )
        every = max(1, -(-len(signed) // max(1, checkpoints)))
        step = min(BATCH, every)
        since_anchor = 0
        for pos in range(0, len(signed), step):
            batch = signed[pos : pos + step]
            ingest(batch)
            since_anchor += len(batch)
            if progress:
                progress(len(batch))
            if since_anchor >= every:
                cp = anchor_once(engine=engine, chain=chain, ledger=contracts.ledger, operator=op)
                if cp is not None:
                    result.checkpoints.append(cp)
                since_anchor = 0
        cp = anchor_once(engine=engine, chain=chain, ledger=contracts.ledger, operator=op)
        if cp is not None:
            result.checkpoints.append(cp)
    finally:
        api.close()
    return result


def build_receipts(engine: Engine, result: EvidenceResult, *, count: int) -> None:
    """Build receipt documents for ``count`` receipts spread over the log."""
    picks = result.receipts[:: max(1, len(result.receipts) // count)][:count]
    with Session(engine) as session:
        for signed in picks:
            result.receipt_docs.append(build_receipt(session=session, eid="0x" + signed.id().hex()))


def write_receipts(result: EvidenceResult, out_dir: Path, *, sample: int) -> list[Path]:
    """Write the first ``sample`` receipt documents to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc in result.receipt_docs[:sample]:
        path = out_dir / f"{doc['entry_id']}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        paths.append(path)
    return paths


@dataclass(frozen=True)
class EvidenceAudit:
    receipts_checked: int
    receipts_valid: int
    first_failure: str | None
    log_consistent: bool
    log_verdict: str


def audit_evidence(*, engine: Engine, chain: Chain, result: EvidenceResult) -> EvidenceAudit:
    """Check every receipt document online and the log against every checkpoint."""
    valid, first = 0, None
    trusted = TrustedDeployment.from_deployment(
        result.contracts.deployment, source="the demo's deployment"
    )
    history = RegistryHistory(chain, result.contracts.registry, from_block=trusted.from_block)
    for doc in result.receipt_docs:
        report = audit_receipt(doc, chain=chain, trusted=trusted, history=history)
        if report.ok:
            valid += 1
        elif first is None:
            first = report.verdict
    log_report = audit_log(chain=chain, ledger=result.contracts.ledger, proofs=SqlLogSource(engine))
    return EvidenceAudit(
        receipts_checked=len(result.receipt_docs),
        receipts_valid=valid,
        first_failure=first,
        log_consistent=log_report.ok,
        log_verdict=log_report.verdict,
    )


# --- T15: a reduced receipt (tally receipt disclose) -------------------------------------

REDUCED_FIELDS = ("units", "periodStart", "periodEnd")
"""What the demo's reduced receipt proves (with the signer fields a signed form needs)."""


def reduced_receipt_lines(*, chain: Chain, result: EvidenceResult, out_dir: Path) -> list[str]:
    """Reduce the first full receipt to :data:`REDUCED_FIELDS` and its signer fields, write
    it to ``out_dir/reduced.json``, audit it online; the lines the demo prints."""
    full = next((d for d in result.receipt_docs if d.get("form") == "full"), None)
    if full is None:
        return ["no commitment receipt to reduce (every leaf is a legacy one)"]
    doc = reduce_receipt(full, [*signer_fields(full["entry_type"]), *REDUCED_FIELDS])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "reduced.json"
    text = json.dumps(doc, indent=2) + "\n"
    path.write_text(text)
    trusted = TrustedDeployment.from_deployment(
        result.contracts.deployment, source="the demo's deployment"
    )
    report = audit_receipt(doc, chain=chain, trusted=trusted)
    fields = report.fields or {"proven": [], "hidden": [], "values": {}}
    values = {n: str(v) for n, v in fields["values"].items()}
    shown = ", ".join(f"{n}={v[:10] + '…' if len(v) > 14 else v}" for n, v in values.items())
    passed = sum(1 for c in report.checks if c.ok is True)
    mark = "[green]✓[/green]" if report.ok else "[red]✗[/red]"
    full_size = len(json.dumps(full, indent=2)) + 1
    return [
        f"reduced receipt of leaf {doc['leaf_index']}: {path.name} ({len(text)} bytes; "
        f"full: {full_size})",
        f"  proven: {shown}",
        f"  hidden: {', '.join(fields['hidden'])}",
        f"{mark} reduced receipt: {passed} checks hold"
        + ("" if report.ok else f"; {report.verdict}")
        + f" ({', '.join(c.name for c in report.skipped)} skipped: hidden)",
    ]


# --- T13: paid by a data valuation (tally demo --providers N --valuation METHOD) --------------

VALUATIONS: dict[str, tuple[str, str]] = {
    "banzhaf": ("msr-banzhaf", "service.valuation.examples:logreg_utility"),
    "shapley": ("permutation-shapley", "service.valuation.examples:logreg_utility"),
    "loo": ("leave-one-out", "service.valuation.examples:logreg_utility"),
    "knn": ("knn-shapley", "service.valuation.examples:knn_utility"),
}
"""``--valuation`` choice -> (method, utility entry point) of ``tally evaluate``."""
VALUATION_PARAMS: dict[str, Any] = {
    "rel_tolerance": "1/10",
    "min_samples": 32,
    "max_utility_calls": 400,
}
"""The demo's parameters: a 400-call budget keeps the run to seconds."""


def valuation_cast(chain: Chain, *, providers: int, valuation: str) -> Cast:
    """The default cast with ``providers`` providers in all (the first four as in the story,
    the rest dev accounts 10, 11, ...; they sign off chain and need no ether)."""
    from service.chain.keys import dev_account

    if valuation not in VALUATIONS:
        raise ValueError(f"--valuation is one of {', '.join(VALUATIONS)}, got {valuation!r}")
    cast = cast_of(chain)
    extra = [
        Role(f"data provider {i + 1}", dev_account(10 + i - 4), PROVIDER)
        for i in range(4, providers)
    ]
    cast.providers = [*cast.providers[:providers], *extra]
    cast.valuation = valuation
    return cast


def valuation_policy(cast: Cast) -> Policy:
    """Split by the evaluator's ValuationResult (negative values clipped to 0)."""
    return parse_policy(
        {
            "version": 1,
            "operator": cast.operator.account.address,
            "operator_fee_bps": 250,
            "method": "valuation",
            "evaluator": cast.evaluator.account.address,
            "agreements": catalog_policy_overrides(),  # the catalog's agreements: by output
            "points": demo_points(),  # contribution points (积分) and fee rebates
        }
    )


def valuation_entries(
    engine: Engine, cast: Cast, agreements: list[SignedEntry]
) -> list[ValuationRun]:
    """``tally evaluate`` for every agreement (the log must hold a checkpoint covering them)."""
    from service.valuation.run import evaluate, params_document

    assert cast.valuation is not None
    method, utility = VALUATIONS[cast.valuation]
    document = params_document(method, utility, VALUATION_PARAMS)
    runs = []
    with Session(engine) as session:
        for agreement in agreements:
            assert isinstance(agreement.entry, Agreement)
            runs.append(
                evaluate(
                    session=session,
                    agreement_id=agreement.entry.agreementId,
                    period=(PERIOD_START, PERIOD_END),
                    document=document,
                    evaluator_key=bytes(cast.evaluator.account.key),
                )
            )
    return runs
