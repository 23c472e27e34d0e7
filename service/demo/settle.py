"""The demo's settlement half: bills, a wrong round the auditor catches and an arbiter
cancels, the right one paid.

The insurers deposit what their receipts say they owe, each into its own balance on the
vault. The operator first proposes a round with one provider's payout shifted to itself
(its debits are the true bills: the cheat is in the split); the auditor recomputes the
round from the chain, the published log export and the policy alone, finds the mismatch,
publishes its report and challenges with the report's keccak256; the dispute arbiter
(registry ARBITER_ROLE) upholds the dispute, which cancels the round and refunds the
insurers' debits (the operator could also cancel it itself inside the challenge window;
after the window only an upheld dispute can). The operator proposes the correct round
for the same period under a new id, which the auditor's recomputation matches; after the
challenge window it is finalized and every payee is claimed for; the vault ends holding
exactly the insurers' free balances (nothing: they deposited their bills).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from service.audit.settlement import ExportFileSource, audit_settlement
from service.chain.client import Chain
from service.demo.scenario import (
    PERIOD_END,
    PERIOD_START,
    Cast,
    EvidenceResult,
    demo_policy,
)
from service.evidence.sources import write_log_export
from service.settlement.engine import RoundResult, compute_round
from service.settlement.payout_tree import build_payout_tree
from service.settlement.policy import Policy
from service.settlement.rounds import (
    challenge,
    claim_all,
    deposit,
    finalize,
    finding_hash,
    propose,
    read_round,
    resolve,
    round_dir,
)

WRONG_ROUND, RIGHT_ROUND = 1, 2

__all__ = ["RIGHT_ROUND", "WRONG_ROUND", "SettlementOutcome", "demo_policy", "run_settlement"]


@dataclass
class SettlementOutcome:
    policy: Policy
    right: RoundResult
    wrong_payouts: dict[str, int]
    wrong_finding: str
    wrong_audit_ok: bool
    right_audit_ok: bool
    right_verdict: str
    claims: list[dict[str, Any]]
    vault_balance: int
    vault_unallocated: int
    deposits: dict[str, int]
    dispute: dict[str, Any]
    claim_transactions: int


def shift_to_operator(payouts: dict[str, int], victim: str, operator: str) -> dict[str, int]:
    """The cheat: ``victim``'s payout goes to ``operator`` instead (same total)."""
    wrong = dict(payouts)
    moved = wrong.pop(victim.lower())
    wrong[operator.lower()] = wrong.get(operator.lower(), 0) + moved
    return wrong


def _victim(cast: Cast, base: RoundResult) -> str:
    """Whose payout the wrong round moves: the battery maker's, unless a valuation paid it
    nothing (T13: a negative value clipped to 0), then the best-paid provider's."""
    first = cast.providers[0].account.address
    if base.payouts.get(first.lower(), 0) > 0 or cast.valuation is None:
        return first
    providers = {p.account.address.lower(): p.account.address for p in cast.providers}
    paid = [a for a in sorted(base.payouts, key=lambda a: -base.payouts[a]) if a in providers]
    return providers[paid[0]] if paid else first


def run_settlement(
    *, chain: Chain, engine: Engine, cast: Cast, evidence: EvidenceResult, out: Path
) -> SettlementOutcome:
    c = evidence.contracts
    op, auditor, judge = cast.operator.account, cast.auditor.account, cast.arbiter.account
    policy = demo_policy(cast)
    (out / "policy.json").write_bytes(policy.canonical_bytes)
    checkpoint = evidence.checkpoints[-1]

    def compute(round_id: int) -> RoundResult:
        return compute_round(
            session_or_engine=engine,
            round_id=round_id,
            period_start=PERIOD_START,
            period_end=PERIOD_END,
            checkpoint_size=checkpoint.tree_size,
            checkpoint_seq=checkpoint.seq,
            policy=policy,
        )

    right = compute(RIGHT_ROUND)
    # each insurer pays its bill into its own balance (the operator mints them demo tokens)
    deposits: dict[str, int] = {}
    for bill in right.bills:
        payer = next(r.account for r in cast.insurers if r.account.address.lower() == bill.consumer)
        chain.transact(c.token.functions.mint(payer.address, bill.total), sender=op)
        deposit(chain=chain, vault=c.vault, token=c.token, sender=payer, amount=bill.total)
        deposits[payer.address] = bill.total

    # the operator publishes the log up to the checkpoint: what the auditor reads
    export = out / "log-export.json"
    write_log_export(engine=engine, seq=checkpoint.seq, out=export)

    def audit(round_id: int) -> Any:
        return audit_settlement(
            chain=chain,
            vault=c.vault,
            ledger=c.ledger,
            round_id=round_id,
            entries_source=ExportFileSource(export),
            policy_doc=policy,
            period=(PERIOD_START, PERIOD_END),
        )

    # 1. a wrong round: the battery maker's payout shifted to the operator
    base = compute(WRONG_ROUND)
    wrong_payouts = shift_to_operator(dict(base.payouts), _victim(cast, base), op.address)
    wrong = replace(
        base,
        payouts=wrong_payouts,
        tree=build_payout_tree(round_id=WRONG_ROUND, payouts=wrong_payouts),
    )
    propose(chain=chain, vault=c.vault, result=wrong, sender=op)
    wrong_report = audit(WRONG_ROUND)
    finding = wrong_report.verdict
    dispute: dict[str, Any] = {"challenged": False}
    if not wrong_report.ok:
        # the auditor publishes its report and challenges with the report's hash
        published = round_dir(out, WRONG_ROUND)
        published.mkdir(parents=True, exist_ok=True)
        finding_file = published / "finding.json"
        finding_file.write_text(json.dumps(wrong_report.to_json(), indent=2) + "\n")
        report_bytes = finding_file.read_bytes()
        challenge(
            chain=chain, vault=c.vault, round_id=WRONG_ROUND, sender=auditor, finding=report_bytes
        )
        # the arbiter reads the finding, re-runs the audit and upholds the dispute
        ruling_file = published / "ruling.txt"
        ruling_file.write_text(
            f"Dispute of round {WRONG_ROUND} upheld: the auditor's finding "
            f"0x{finding_hash(report_bytes).hex()} holds ({finding}).\n"
        )
        ruling = ruling_file.read_bytes()
        resolve(
            chain=chain, vault=c.vault, round_id=WRONG_ROUND, sender=judge, upheld=True,
            ruling=ruling,
        )  # fmt: skip
        dispute = {
            "challenged": True,
            "challenger": auditor.address,
            "finding_file": str(finding_file),
            "finding_hash": "0x" + finding_hash(report_bytes).hex(),
            "arbiter": judge.address,
            "upheld": True,
            "ruling_file": str(ruling_file),
            "status_after": read_round(chain=chain, vault=c.vault, round_id=WRONG_ROUND).status,
            "refunded": {a: str(int(chain.call(c.vault.functions.balanceOf(a)))) for a in deposits},
        }

    # 2. the correct round over the same period, checked by the auditor, finalized, paid out
    propose(chain=chain, vault=c.vault, result=right, sender=op, data_dir=out)
    right_report = audit(RIGHT_ROUND)
    window = int(chain.call(c.vault.functions.challengeWindow()))
    chain.increase_time(window + 1)
    finalize(chain=chain, vault=c.vault, round_id=RIGHT_ROUND, sender=op)
    summary = claim_all(chain=chain, vault=c.vault, trees=[right.tree], sender=op)
    claims = []
    for paid in summary.results:
        gas = None
        if paid.tx_hash is not None:
            gas = int(chain.w3.eth.get_transaction_receipt(paid.tx_hash)["gasUsed"])  # type: ignore[arg-type]
        claims.append(
            {
                "account": paid.account,
                "amount": str(paid.amount),
                "tx_hash": paid.tx_hash,
                "gas_used": gas,
            }
        )
    balance = int(chain.call(c.token.functions.balanceOf(c.vault.address)))
    free = int(chain.call(c.vault.functions.unallocated()))
    return SettlementOutcome(
        policy=policy,
        right=right,
        wrong_payouts=wrong_payouts,
        wrong_finding=finding,
        wrong_audit_ok=wrong_report.ok,
        right_audit_ok=right_report.ok,
        right_verdict=right_report.verdict,
        claims=claims,
        vault_balance=balance,
        vault_unallocated=free,
        deposits=deposits,
        dispute=dispute,
        claim_transactions=summary.transactions,
    )
