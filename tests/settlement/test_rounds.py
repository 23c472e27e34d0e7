"""Rounds on the embedded chain: evidence -> anchor -> settle -> propose (period, debits) ->
challenge (standing, finding) -> resolve (arbiter) -> re-propose -> finalize -> claim ->
sweep -> withdraw, with the vault's named errors (in words) on misuse."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result
from web3.logs import DISCARD

from service.chain.config import save_deployment
from service.cli import app
from service.db import create_schema, make_engine
from service.errors import InsufficientBalance, RoundExists, RoundMismatch, TransactionReverted
from service.evidence.anchor import anchor_once
from service.evidence.eip712 import keccak256
from service.evidence.models import AnchorRow
from service.settings import get_settings
from service.settlement.engine import RoundResult, compute_round
from service.settlement.payout_tree import build_payout_tree
from service.settlement.policy import load_policy
from service.settlement.rounds import (
    balance_of,
    cancel,
    challenge,
    claim,
    claim_all,
    debits_of,
    deposit,
    finalize,
    finding_hash,
    load_payouts,
    pending_round,
    pending_withdrawal,
    propose,
    read_round,
    request_withdrawal,
    resolve,
    settled_until,
    sweep,
    unallocated,
    withdraw,
)
from tests.settlement.test_engine import (
    P0,
    P1,
    agreement,
    ingest_all,
    make_policy,
    receipt,
    usage,
)
from tests.space import Space

WINDOW = 3_600  # tests/space.py deploys with a one-hour challenge window
SPARE = 500  # deposited on top of the bill: must stay in the consumer's free balance
FINDING = b'{"ok": false, "verdict": "FAIL settlement round 1"}\n'  # a published report


def anchored(engine: Engine, space: Space) -> AnchorRow:
    row = anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert row is not None
    return row


def settle(
    engine: Engine, space: Space, cp: AnchorRow, round_id: int, period: tuple[int, int] = (P0, P1)
) -> RoundResult:
    return compute_round(
        session_or_engine=engine,
        round_id=round_id,
        period_start=period[0],
        period_end=period[1],
        checkpoint_size=cp.tree_size,
        checkpoint_seq=cp.seq,
        policy=make_policy(space),
    )


def balance(space: Space, who: str) -> int:
    return int(space.chain.call(space.contracts.token.functions.balanceOf(who)))


def arbiter(space: Space) -> LocalAccount:
    """An account holding ARBITER_ROLE (granted by the registry admin)."""
    reg, who = space.contracts.registry, space.chain.accounts[8]
    role = space.chain.call(reg.functions.ARBITER_ROLE())
    if not space.chain.call(reg.functions.hasRole(role, who.address)):
        space.chain.transact(reg.functions.grantRole(role, who.address), sender=space.operator)
    return who


def reverted(err: pytest.ExceptionInfo[TransactionReverted]) -> str:
    return str(err.value.error_name)


def fund(space: Space, amount: int) -> None:
    """The consumer pays its bill into its own free balance on the vault."""
    consumer = space.consumers[0]
    token = space.contracts.token
    space.chain.transact(token.functions.mint(consumer.address, amount), sender=space.operator)
    deposit(
        chain=space.chain,
        vault=space.contracts.vault,
        token=token,
        sender=consumer,
        amount=amount,
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_round_life_cycle_end_to_end(engine: Engine, space: Space, tmp_path: Path) -> None:
    chain, vault = space.chain, space.contracts.vault
    consumer = space.consumers[0].address
    ingest_all(engine, space, [agreement(space), *usage(space)])
    cp = anchored(engine, space)
    first = settle(engine, space, cp, round_id=1)
    # R = 60 x 1000; fee 1500; p0 : p1 = 40 x 0.6 : 20 x 0.6 = 2 : 1 of 58500.
    expected = {
        space.providers[0].address: 39000,
        space.providers[1].address: 19500,
        space.operator.address: 1500,
    }
    assert first.pool == 60000 and first.bills[0].total == 60000
    assert first.debits == ((consumer, 60000),)

    # nothing deposited: refused before any transaction, naming the consumer
    with pytest.raises(InsufficientBalance, match=rf"debits {consumer} its bill 60000.*is 0"):
        propose(chain=chain, vault=vault, result=first, sender=space.operator)
    fund(space, first.pool + SPARE)
    assert balance_of(chain=chain, vault=vault, account=consumer) == first.pool + SPARE

    proposed = propose(
        chain=chain, vault=vault, result=first, sender=space.operator, data_dir=tmp_path
    )
    state = read_round(chain=chain, vault=vault, round_id=1)
    assert state.status == "Proposed"
    assert (state.payout_root, state.total, state.paid) == (first.root, 60000, 0)
    assert (state.evidence_seq, state.policy_hash) == (cp.seq, first.policy.hash)
    assert (state.period_start, state.period_end) == (P0, P1)
    assert state.statement_uri == proposed.statement_uri
    assert debits_of(chain=chain, vault=vault, round_id=1) == {consumer: 60000}
    assert settled_until(chain=chain, vault=vault) == P1
    assert pending_round(chain=chain, vault=vault) == 1
    assert proposed.files is not None
    # the written policy file hashes (sha256sum) to the on-chain policy hash
    assert hashlib.sha256(proposed.files.policy.read_bytes()).digest() == state.policy_hash
    statement = json.loads(proposed.files.statement_json.read_text())
    assert {p["account"]: int(p["payout"]) for p in statement["participants"]} == expected
    assert load_payouts(proposed.files.payouts).root == first.root
    # the round took exactly the consumer's bill from its own balance
    assert balance_of(chain=chain, vault=vault, account=consumer) == SPARE

    # the auditor disputes it with its published finding; a disputed round cannot be
    # finalized, the operator cannot cancel it after the window: an arbiter rules
    receipt_ = challenge(
        chain=chain, vault=vault, round_id=1, sender=space.auditor, finding=FINDING
    )
    (event,) = vault.events.RoundChallenged().process_receipt(receipt_, errors=DISCARD)
    assert event["args"]["challenger"] == space.auditor.address
    assert bytes(event["args"]["findingHash"]) == finding_hash(FINDING) == keccak256(FINDING)
    assert read_round(chain=chain, vault=vault, round_id=1).status == "Disputed"
    chain.increase_time(WINDOW)
    with pytest.raises(TransactionReverted, match="an arbiter must rule first") as err:
        finalize(chain=chain, vault=vault, round_id=1, sender=space.operator)
    assert reverted(err) == "SettlementVaultRoundDisputed"
    with pytest.raises(TransactionReverted, match="only an upheld dispute cancels") as err:
        cancel(chain=chain, vault=vault, round_id=1, sender=space.operator)
    assert reverted(err) == "SettlementVaultChallengeWindowClosed"
    with pytest.raises(TransactionReverted) as err:  # the operator is no arbiter
        resolve(
            chain=chain, vault=vault, round_id=1, sender=space.operator, upheld=True, ruling=b""
        )
    assert reverted(err) == "SettlementVaultUnauthorizedAccount"
    judge = arbiter(space)
    ruled = resolve(chain=chain, vault=vault, round_id=1, sender=judge, upheld=True, ruling=b"r")
    (decision,) = vault.events.DisputeResolved().process_receipt(ruled, errors=DISCARD)
    assert decision["args"]["upheld"] is True and decision["args"]["arbiter"] == judge.address
    assert bytes(decision["args"]["rulingHash"]) == keccak256(b"r")
    assert read_round(chain=chain, vault=vault, round_id=1).status == "Cancelled"
    assert balance_of(chain=chain, vault=vault, account=consumer) == first.pool + SPARE
    assert settled_until(chain=chain, vault=vault) == P0
    assert pending_round(chain=chain, vault=vault) is None

    # corrected round under a new id over the same period; the old id stays taken
    second = settle(engine, space, cp, round_id=2)
    # a used id (a cancelled one too) is named as such before anything is sent
    with pytest.raises(RoundExists, match=r"round id 1 is already used on chain \(Cancelled\)"):
        propose(chain=chain, vault=vault, result=first, sender=space.operator)
    propose(chain=chain, vault=vault, result=second, sender=space.operator)
    with pytest.raises(TransactionReverted, match="is open until") as err:
        finalize(chain=chain, vault=vault, round_id=2, sender=space.outsider)
    assert reverted(err) == "SettlementVaultChallengeWindowOpen"
    chain.increase_time(WINDOW)
    finalize(chain=chain, vault=vault, round_id=2, sender=space.outsider)  # anyone may
    assert read_round(chain=chain, vault=vault, round_id=2).status == "Finalized"

    # an outsider claims for provider 1: the money goes to the leaf's account
    p1 = space.providers[1].address
    (one,) = claim(chain=chain, vault=vault, tree=second.tree, sender=space.outsider, accounts=[p1])
    assert one.claimed_now and one.amount == 19500
    assert balance(space, p1) == 19500 and balance(space, space.outsider.address) == 0
    assert read_round(chain=chain, vault=vault, round_id=2).paid == 19500
    results = claim(chain=chain, vault=vault, tree=second.tree, sender=space.outsider)
    assert {r.account: r.claimed_now for r in results} == {
        a: a != p1 for a in sorted(expected, key=str.lower)
    }
    for account, amount in expected.items():
        assert balance(space, account) == amount
    assert balance(space, vault.address) == unallocated(chain=chain, vault=vault) == SPARE

    # claiming twice reverts with the vault's named error
    with pytest.raises(TransactionReverted, match="already claimed") as err:
        claim(chain=chain, vault=vault, tree=second.tree, sender=space.outsider, accounts=[p1])
    assert reverted(err) == "SettlementVaultAlreadyClaimed"
    assert err.value.error_args == (2, second.tree.index_of(p1))
    # claim --all again: everything is already paid, nothing is sent
    assert not any(
        r.claimed_now
        for r in claim(chain=chain, vault=vault, tree=second.tree, sender=space.outsider)
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_griefing_participant_cannot_stop_a_correct_round(engine: Engine, space: Space) -> None:
    chain, vault = space.chain, space.contracts.vault
    ingest_all(engine, space, [agreement(space), *usage(space)])
    cp = anchored(engine, space)
    result = settle(engine, space, cp, round_id=1)
    fund(space, result.pool)
    propose(chain=chain, vault=vault, result=result, sender=space.operator)
    # a registered provider with no payout in the round, and an outsider: no standing
    for griefer in (space.providers[2], space.outsider):
        with pytest.raises(TransactionReverted, match="has no standing in round 1") as err:
            challenge(chain=chain, vault=vault, round_id=1, sender=griefer, finding=b"spite")
        assert reverted(err) == "SettlementVaultNoStanding"
    # a payee needs its proof; with it, it may challenge (once); so may the funding consumer
    p0 = space.providers[0]
    with pytest.raises(TransactionReverted) as err:
        challenge(chain=chain, vault=vault, round_id=1, sender=p0, finding=b"x")
    assert reverted(err) == "SettlementVaultNoStanding"
    challenge(chain=chain, vault=vault, round_id=1, sender=p0, finding=b"x", payouts=result.tree)
    assert read_round(chain=chain, vault=vault, round_id=1).status == "Disputed"
    # the arbiter rejects the dispute: Proposed again with the same deadline
    judge = arbiter(space)
    resolve(chain=chain, vault=vault, round_id=1, sender=judge, upheld=False, ruling=b"no")
    assert read_round(chain=chain, vault=vault, round_id=1).status == "Proposed"
    with pytest.raises(TransactionReverted) as err:
        challenge(
            chain=chain, vault=vault, round_id=1, sender=p0, finding=b"x", payouts=result.tree
        )
    assert reverted(err) == "SettlementVaultAlreadyChallenged"
    challenge(chain=chain, vault=vault, round_id=1, sender=space.consumers[0], finding=b"y")
    resolve(chain=chain, vault=vault, round_id=1, sender=judge, upheld=False, ruling=b"no")
    with pytest.raises(TransactionReverted, match="not Disputed") as err:
        resolve(chain=chain, vault=vault, round_id=1, sender=judge, upheld=True, ruling=b"")
    assert reverted(err) == "SettlementVaultRoundNotDisputed"
    # the correct round finalizes after its window and pays out
    chain.increase_time(WINDOW)
    finalize(chain=chain, vault=vault, round_id=1, sender=space.outsider)
    summary = claim_all(chain=chain, vault=vault, trees=[result.tree], sender=space.outsider)
    assert summary.claimed_now == 3 and summary.transactions == 3
    assert balance(space, p0.address) == result.payouts[p0.address.lower()]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_overlapping_or_second_pending_round_is_refused(engine: Engine, space: Space) -> None:
    chain, vault = space.chain, space.contracts.vault
    late = receipt(space, 8, provider=0, units=1, start=P1 - 30)  # near the period's end
    ingest_all(engine, space, [agreement(space), *usage(space), late])
    cp = anchored(engine, space)
    first = settle(engine, space, cp, round_id=1)
    fund(space, 3 * first.pool)
    propose(chain=chain, vault=vault, result=first, sender=space.operator)
    later = settle(engine, space, cp, round_id=2, period=(P1 - 60, P1 + 60))
    with pytest.raises(TransactionReverted, match="round 1 is still pending") as err:
        propose(chain=chain, vault=vault, result=later, sender=space.operator)
    assert reverted(err) == "SettlementVaultRoundPending"
    chain.increase_time(WINDOW)
    finalize(chain=chain, vault=vault, round_id=1, sender=space.operator)
    # the same evidence over an overlapping period would be paid twice: refused
    with pytest.raises(TransactionReverted, match="rounds may not overlap") as err:
        propose(chain=chain, vault=vault, result=later, sender=space.operator)
    assert reverted(err) == "SettlementVaultPeriodOverlap"
    assert err.value.error_args == (2, P1 - 60, P1)
    # the operator cancels inside the window only (the other way a wrong round ends)
    ingest_all(engine, space, [receipt(space, 9, provider=0, units=2, start=P1 + 10)])
    cp2 = anchored(engine, space)
    adjacent = settle(engine, space, cp2, round_id=3, period=(P1, P1 + 86_400))
    propose(chain=chain, vault=vault, result=adjacent, sender=space.operator)
    cancel(chain=chain, vault=vault, round_id=3, sender=space.operator)
    assert read_round(chain=chain, vault=vault, round_id=3).status == "Cancelled"
    assert settled_until(chain=chain, vault=vault) == P1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sweep_returns_what_was_not_claimed_and_closes_the_round(
    engine: Engine, space: Space
) -> None:
    chain, vault = space.chain, space.contracts.vault
    consumer = space.consumers[0]
    ingest_all(engine, space, [agreement(space), *usage(space)])
    cp = anchored(engine, space)
    result = settle(engine, space, cp, round_id=1)
    fund(space, result.pool)
    propose(chain=chain, vault=vault, result=result, sender=space.operator)
    chain.increase_time(WINDOW)
    finalize(chain=chain, vault=vault, round_id=1, sender=space.operator)
    p1 = space.providers[1].address
    claim(chain=chain, vault=vault, tree=result.tree, sender=space.outsider, accounts=[p1])
    with pytest.raises(TransactionReverted, match="can be swept from") as err:
        sweep(chain=chain, vault=vault, round_id=1, sender=space.operator)
    assert reverted(err) == "SettlementVaultClaimPeriodNotOver"
    chain.increase_time(int(chain.call(vault.functions.claimExpiry())))
    _, amount, refunds = sweep(chain=chain, vault=vault, round_id=1, sender=space.operator)
    assert amount == result.pool - 19500 and refunds == {consumer.address: amount}
    state = read_round(chain=chain, vault=vault, round_id=1)
    assert (state.status, state.paid, state.unpaid) == ("Closed", 19500, 0)
    assert balance_of(chain=chain, vault=vault, account=consumer.address) == amount
    # a closed round pays nothing more
    with pytest.raises(TransactionReverted, match="is Closed, not Finalized") as err:
        claim(chain=chain, vault=vault, tree=result.tree, sender=space.outsider)
    assert reverted(err) == "SettlementVaultRoundNotFinalized"
    # the consumer takes its refund out after the notice
    _, available = request_withdrawal(chain=chain, vault=vault, sender=consumer, amount=amount)
    assert pending_withdrawal(chain=chain, vault=vault, account=consumer.address) == (
        amount,
        available,
    )
    with pytest.raises(TransactionReverted, match="can be made from") as err:
        withdraw(chain=chain, vault=vault, sender=consumer)
    assert reverted(err) == "SettlementVaultWithdrawalNotReady"
    chain.increase_time(int(chain.call(vault.functions.withdrawalDelay())))
    before = balance(space, consumer.address)
    _, paid = withdraw(chain=chain, vault=vault, sender=consumer)
    assert paid == amount and balance(space, consumer.address) == before + amount
    assert balance_of(chain=chain, vault=vault, account=consumer.address) == 0
    assert balance(space, vault.address) == unallocated(chain=chain, vault=vault) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_claim_all_over_rounds_uses_claim_many_per_account(engine: Engine, space: Space) -> None:
    chain, vault = space.chain, space.contracts.vault
    later = receipt(space, 8, provider=1, units=3, start=P1 + 60)
    ingest_all(engine, space, [agreement(space), *usage(space), later])
    cp = anchored(engine, space)
    trees = []
    for round_id, period in ((1, (P0, P1)), (2, (P1, P1 + 86_400))):
        result = settle(engine, space, cp, round_id=round_id, period=period)
        fund(space, result.pool)
        propose(chain=chain, vault=vault, result=result, sender=space.operator)
        chain.increase_time(WINDOW)
        finalize(chain=chain, vault=vault, round_id=round_id, sender=space.operator)
        trees.append(result.tree)
    # round 1 pays p0, p1 and the operator; round 2 (p1's 3 units) pays p1 and the operator
    p0, p1 = (space.providers[i].address for i in (0, 1))
    assert {e.account for e in trees[1].entries} == {p1, space.operator.address}
    summary = claim_all(chain=chain, vault=vault, trees=trees, sender=space.outsider)
    assert summary.claimed_now == 5
    assert summary.transactions == 3  # p0: claim; p1 and the operator: one claimMany each
    by_tx: dict[str | None, set[int]] = {}
    for r in summary.results:
        by_tx.setdefault(r.tx_hash, set()).add(r.round_id)
    assert sorted(len(v) for v in by_tx.values()) == [1, 2, 2]
    assert balance(space, p1) == 19500 + trees[1].entry(trees[1].index_of(p1)).amount
    assert balance(space, p0) == 39000
    again = claim_all(chain=chain, vault=vault, trees=trees, sender=space.outsider)
    assert (again.claimed_now, again.transactions) == (0, 0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_deposit_for_credits_the_named_consumer_not_the_payer(engine: Engine, space: Space) -> None:
    chain, vault, token = space.chain, space.contracts.vault, space.contracts.token
    consumer = space.consumers[1].address
    chain.transact(token.functions.mint(space.operator.address, 700), sender=space.operator)
    deposit(
        chain=chain, vault=vault, token=token, sender=space.operator, amount=700, account=consumer
    )
    assert balance_of(chain=chain, vault=vault, account=consumer) == 700
    assert balance_of(chain=chain, vault=vault, account=space.operator.address) == 0
    # consumer 0's bill cannot be paid from consumer 1's money
    ingest_all(engine, space, [agreement(space), *usage(space)])
    result = settle(engine, space, anchored(engine, space), round_id=1)
    with pytest.raises(InsufficientBalance, match=space.consumers[0].address):
        propose(chain=chain, vault=vault, result=result, sender=space.operator)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_propose_refuses_a_result_from_another_checkpoint(engine: Engine, space: Space) -> None:
    ingest_all(engine, space, [agreement(space), *usage(space)])
    cp0 = anchored(engine, space)
    ingest_all(engine, space, [receipt(space, 9, provider=0, units=1)])
    cp1 = anchored(engine, space)
    result = settle(engine, space, cp0, round_id=1)
    fund(space, result.pool)
    with pytest.raises(RoundMismatch, match=f"checkpoint {cp1.seq} on chain has size"):
        propose(
            chain=space.chain,
            vault=space.contracts.vault,
            result=result,
            sender=space.operator,
            evidence_seq=cp1.seq,
        )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_claim_refuses_a_payout_file_that_is_not_the_rounds(engine: Engine, space: Space) -> None:
    chain, vault = space.chain, space.contracts.vault
    ingest_all(engine, space, [agreement(space), *usage(space)])
    cp = anchored(engine, space)
    result = settle(engine, space, cp, round_id=3)
    fund(space, result.pool)
    propose(chain=chain, vault=vault, result=result, sender=space.operator)
    chain.increase_time(WINDOW)
    finalize(chain=chain, vault=vault, round_id=3, sender=space.operator)
    inflated = dict(result.payouts)
    inflated[space.outsider.address.lower()] = 1
    forged = build_payout_tree(round_id=3, payouts=inflated)
    with pytest.raises(RoundMismatch, match="not the root on chain"):
        claim(chain=chain, vault=vault, tree=forged, sender=space.outsider)
    # a forged leaf sent straight to the vault fails its proof check
    entry = forged.entry(forged.index_of(space.outsider.address))
    with pytest.raises(TransactionReverted) as err:
        chain.transact(
            vault.functions.claim(3, entry.index, entry.account, entry.amount, list(entry.proof)),
            sender=space.outsider,
        )
    assert err.value.error_name == "SettlementVaultInvalidProof"
    # a payout file with a forged leaf gives no standing to challenge either
    with pytest.raises(RoundMismatch, match="not round 3's"):
        challenge(
            chain=chain, vault=vault, round_id=3, sender=space.outsider, finding=b"", payouts=forged
        )


# --- the command line, operator and auditor, on a real node ---------------------------------


def _tally(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


def _ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_cli_round_from_evidence_to_audit(
    anvil_space: Space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = anvil_space
    url = space.chain.network.rpc_url or ""
    db = f"sqlite:///{tmp_path}/tally.db"
    deployment = tmp_path / "deployment.json"
    save_deployment(space.contracts.deployment, deployment)
    engine = make_engine(db)
    create_schema(engine)
    ingest_all(engine, space, [agreement(space), *usage(space)])
    engine.dispose()
    chain_opts = ("--rpc", url, "--deployment", str(deployment))
    consumer = space.consumers[0]
    judge = arbiter(space)
    keys = {
        "AUDITOR_KEY": "0x" + bytes(space.auditor.key).hex(),
        "ARBITER_KEY": "0x" + bytes(judge.key).hex(),
        "CONSUMER_KEY": "0x" + bytes(consumer.key).hex(),
        "OUTSIDER_KEY": "0x" + bytes(space.outsider.key).hex(),
    }
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        _ok(_tally("anchor", *chain_opts, "--db", db))
        policy = tmp_path / "policy.toml"
        policy.write_text(
            f'version = 1\noperator = "{space.operator.address}"\noperator_fee_bps = 250\n'
            'method = "output"\ndefault_quality_bps = 6000\n'
        )
        assert make_policy(space).hash_hex == load_policy(policy).hash_hex  # the agreement's
        start = datetime.fromtimestamp(P0, UTC).isoformat().replace("+00:00", "Z")
        period = ("--from", start, "--to", str(P1))

        bills = json.loads(_ok(_tally("bill", *period, "--db", db, "--json")))
        assert [(b["consumer"], b["total"]) for b in bills["bills"]] == [
            (consumer.address, "60000")
        ]
        # the operator funds the consumer: the consumer's balance is credited, not the payer's
        out = _ok(_tally("deposit", "60000", "--mint", "--for", consumer.address, *chain_opts))
        assert f"for {consumer.address}; free balance now 60000" in out
        bad = _tally("deposit", "5", "--for", "0x123", *chain_opts)
        assert bad.exit_code == 1 and "--for" in str(bad.exception)

        ran = _tally(
            "settle", "run", "--round", "1", *period, "--policy", str(policy), "--db", db,
            "--propose", "--json", *chain_opts,
        )  # fmt: skip
        statement = json.loads(_ok(ran))
        assert statement["total"] == "60000" and statement["proposed"]["tx_hash"].startswith("0x")
        assert statement["proposed"]["period"] == {"start": P0, "end": P1}
        # `tally bill` is exactly what the round debits
        debits = {b["consumer"]: b["total"] for b in bills["bills"]}
        assert statement["proposed"]["debits"] == debits
        vault = space.contracts.vault
        assert debits_of(chain=space.chain, vault=vault, round_id=1) == {
            a: int(v) for a, v in debits.items()
        }
        payouts = {p["account"]: p["payout"] for p in statement["participants"]}
        assert payouts == {
            space.providers[0].address: "39000",
            space.providers[1].address: "19500",
            space.operator.address: "1500",
        }
        early = _tally("settle", "finalize", "1", *chain_opts)
        assert early.exit_code == 1
        assert "challenge window of round 1 is open until" in str(early.exception)
        assert "SettlementVaultChallengeWindowOpen" in str(early.exception)

        export = tmp_path / "log.jsonl"
        assert "exported 4 entries" in _ok(
            _tally("log", "export", "--upto", "0", "--out", str(export), "--db", db)
        )
        paid_file = tmp_path / "data" / "rounds" / "1" / "payouts.json"
        audit = (
            "audit", "settlement", "1", "--rpc", url, "--deployment", str(deployment),
            "--log-file", str(export), "--payouts", str(paid_file),
        )  # fmt: skip
        verdict = _ok(_tally(*audit, "--policy", str(policy)))
        assert verdict.startswith("PASS settlement round 1")

        # an outsider has no standing; the auditor challenges with its published report
        finding = tmp_path / "finding.json"
        finding.write_text(_ok(_tally(*audit, "--policy", str(policy), "--json")))
        grief = _tally(
            "settle", "challenge", "1", "--finding", str(finding), "--key-env", "OUTSIDER_KEY",
            *chain_opts, env=keys,
        )  # fmt: skip
        assert grief.exit_code == 1
        assert f"{space.outsider.address} has no standing in round 1" in str(grief.exception)
        challenged = _ok(
            _tally(
                "settle",
                "challenge",
                "1",
                "--finding",
                str(finding),
                "--key-env",
                "AUDITOR_KEY",
                *chain_opts,
                env=keys,
            )
        )
        assert challenged.strip() == (
            f"round 1: Disputed (finding 0x{keccak256(finding.read_bytes()).hex()})"
        )
        ruling = tmp_path / "ruling.txt"
        ruling.write_text("the audit passes: the round is correct\n")
        resolve_args = ("settle", "resolve", "1", "--rejected", "--ruling", str(ruling))
        not_arbiter = _tally(*resolve_args, "--key-env", "AUDITOR_KEY", *chain_opts, env=keys)
        assert not_arbiter.exit_code == 1 and "lacks the registry role" in str(
            not_arbiter.exception
        )
        assert "dispute rejected, round Proposed" in _ok(
            _tally(*resolve_args, "--key-env", "ARBITER_KEY", *chain_opts, env=keys)
        )

        space.chain.increase_time(WINDOW)
        assert "round 1: Finalized" in _ok(_tally("settle", "finalize", "1", *chain_opts))
        claimed = _ok(_tally("claim", "--round", "1", "--all", *chain_opts))
        assert claimed.count(": claimed (tx 0x") == 3
        assert "3 payouts claimed in 3 transactions" in claimed
        for account, amount in payouts.items():
            assert balance(space, account) == int(amount)

        changed = tmp_path / "changed.toml"
        changed.write_text(policy.read_text().replace("250", "300"))
        failed = _tally(*audit, "--policy", str(changed), "--json")
        assert failed.exit_code == 1
        assert json.loads(failed.stdout)["first_failure"]["check"] == "policy_hash"

        # nothing left unpaid: the sweep closes the round and returns 0
        too_soon = _tally("settle", "sweep", "1", *chain_opts)
        assert too_soon.exit_code == 1 and "can be swept from" in str(too_soon.exception)
        space.chain.increase_time(int(space.chain.call(vault.functions.claimExpiry())))
        assert "round 1: Closed; 0 returned" in _ok(_tally("settle", "sweep", "1", *chain_opts))

        # the consumer's spare deposit comes back after the notice
        _ok(_tally("deposit", "700", "--mint", "--key-env", "CONSUMER_KEY", *chain_opts, env=keys))
        wopts = ("--key-env", "CONSUMER_KEY", *chain_opts)
        assert "withdrawal of 700 requested" in _ok(
            _tally("withdraw", "request", "700", *wopts, env=keys)
        )
        assert "700 requested, available from" in _ok(
            _tally("withdraw", "status", consumer.address, *chain_opts)
        )
        early_w = _tally("withdraw", "complete", *wopts, env=keys)
        assert early_w.exit_code == 1 and "can be made from" in str(early_w.exception)
        space.chain.increase_time(int(space.chain.call(vault.functions.withdrawalDelay())))
        assert "withdrew 700" in _ok(_tally("withdraw", "complete", *wopts, env=keys))
    finally:
        get_settings.cache_clear()
