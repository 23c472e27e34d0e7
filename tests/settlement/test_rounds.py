"""Rounds on the embedded chain: evidence -> anchor -> settle -> propose -> challenge ->
cancel -> re-propose -> finalize -> claim, with the vault's named errors on misuse."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

from service.chain.client import Chain
from service.chain.config import rpc_network, save_deployment
from service.chain.devnode import Anvil
from service.cli import app
from service.db import create_schema, make_engine
from service.errors import InsufficientUnallocated, RoundMismatch, TransactionReverted
from service.evidence.anchor import anchor_once
from service.evidence.eip712 import keccak256
from service.evidence.models import AnchorRow
from service.settings import get_settings
from service.settlement.engine import RoundResult, compute_round
from service.settlement.payout_tree import build_payout_tree
from service.settlement.rounds import (
    cancel,
    challenge,
    claim,
    deposit,
    finalize,
    load_payouts,
    propose,
    read_round,
    unallocated,
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
from tests.space import Space, build_space

WINDOW = 3_600  # tests/space.py deploys with a one-hour challenge window
SPARE = 500  # deposited on top of the pool: must stay in the vault as unallocated


def anchored(engine: Engine, space: Space) -> AnchorRow:
    row = anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert row is not None
    return row


def settle(engine: Engine, space: Space, cp: AnchorRow, round_id: int) -> RoundResult:
    return compute_round(
        session_or_engine=engine,
        round_id=round_id,
        period_start=P0,
        period_end=P1,
        checkpoint_size=cp.tree_size,
        checkpoint_seq=cp.seq,
        policy=make_policy(space),
    )


def balance(space: Space, who: str) -> int:
    return int(space.chain.call(space.contracts.token.functions.balanceOf(who)))


def fund(space: Space, amount: int) -> None:
    """The consumer pays its bill into the vault."""
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

    # nothing deposited: refused before any transaction
    with pytest.raises(InsufficientUnallocated, match=r"needs 60000.*deposit 60000 more"):
        propose(chain=chain, vault=vault, result=first, sender=space.operator)
    fund(space, first.pool + SPARE)
    assert unallocated(chain=chain, vault=vault) == first.pool + SPARE

    proposed = propose(
        chain=chain, vault=vault, result=first, sender=space.operator, data_dir=tmp_path
    )
    state = read_round(chain=chain, vault=vault, round_id=1)
    assert state.status == "Proposed"
    assert (state.payout_root, state.total) == (first.root, 60000)
    assert (state.evidence_seq, state.policy_hash) == (cp.seq, first.policy.hash)
    assert state.statement_uri == proposed.statement_uri
    assert proposed.files is not None
    # the written policy file hashes (sha256sum) to the on-chain policy hash
    assert hashlib.sha256(proposed.files.policy.read_bytes()).digest() == state.policy_hash
    statement = json.loads(proposed.files.statement_json.read_text())
    assert {p["account"]: int(p["payout"]) for p in statement["participants"]} == expected
    assert load_payouts(proposed.files.payouts).root == first.root
    assert unallocated(chain=chain, vault=vault) == SPARE

    # the auditor disputes it; a disputed round cannot be finalized, only cancelled
    receipt_ = challenge(
        chain=chain, vault=vault, round_id=1, sender=space.auditor, reason="fee looks wrong"
    )
    (event,) = vault.events.RoundChallenged().process_receipt(receipt_)
    assert event["args"]["challenger"] == space.auditor.address
    assert bytes(event["args"]["reasonHash"]) == keccak256(b"fee looks wrong")
    assert read_round(chain=chain, vault=vault, round_id=1).status == "Disputed"
    chain.increase_time(WINDOW)
    with pytest.raises(TransactionReverted) as err:
        finalize(chain=chain, vault=vault, round_id=1, sender=space.operator)
    assert err.value.error_name == "SettlementVaultRoundDisputed"
    cancel(chain=chain, vault=vault, round_id=1, sender=space.operator)
    assert read_round(chain=chain, vault=vault, round_id=1).status == "Cancelled"
    assert unallocated(chain=chain, vault=vault) == first.pool + SPARE

    # corrected round under a new id; the old id stays taken
    second = settle(engine, space, cp, round_id=2)
    with pytest.raises(TransactionReverted) as err:
        propose(chain=chain, vault=vault, result=first, sender=space.operator)
    assert err.value.error_name == "SettlementVaultRoundExists"
    propose(chain=chain, vault=vault, result=second, sender=space.operator)
    with pytest.raises(TransactionReverted) as err:
        finalize(chain=chain, vault=vault, round_id=2, sender=space.outsider)
    assert err.value.error_name == "SettlementVaultChallengeWindowOpen"
    chain.increase_time(WINDOW)
    finalize(chain=chain, vault=vault, round_id=2, sender=space.outsider)  # anyone may
    assert read_round(chain=chain, vault=vault, round_id=2).status == "Finalized"

    # an outsider claims for provider 1: the money goes to the leaf's account
    p1 = space.providers[1].address
    (one,) = claim(chain=chain, vault=vault, tree=second.tree, sender=space.outsider, accounts=[p1])
    assert one.claimed_now and one.amount == 19500
    assert balance(space, p1) == 19500 and balance(space, space.outsider.address) == 0
    results = claim(chain=chain, vault=vault, tree=second.tree, sender=space.outsider)
    assert {r.account: r.claimed_now for r in results} == {
        a: a != p1 for a in sorted(expected, key=str.lower)
    }
    for account, amount in expected.items():
        assert balance(space, account) == amount
    assert balance(space, vault.address) == unallocated(chain=chain, vault=vault) == SPARE

    # claiming twice reverts with the vault's named error
    with pytest.raises(TransactionReverted) as err:
        claim(chain=chain, vault=vault, tree=second.tree, sender=space.outsider, accounts=[p1])
    assert err.value.error_name == "SettlementVaultAlreadyClaimed"
    assert err.value.error_args == (2, second.tree.index_of(p1))
    # claim --all again: everything is already paid, nothing is sent
    assert not any(
        r.claimed_now
        for r in claim(chain=chain, vault=vault, tree=second.tree, sender=space.outsider)
    )


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


# --- the command line, operator and auditor, on a real node ---------------------------------


@pytest.fixture(scope="module")
def anvil_space(anvil: Anvil) -> Iterator[Space]:
    chain = Chain.connect(rpc_network(anvil.url, chain_id=31337))
    snap = chain.snapshot()
    yield build_space(chain)
    chain.revert(snap)


def _tally(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


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
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        _ok(_tally("anchor", *chain_opts, "--db", db))
        policy = tmp_path / "policy.toml"
        policy.write_text(
            f'version = 1\noperator = "{space.operator.address}"\noperator_fee_bps = 250\n'
            'method = "output"\ndefault_quality_bps = 6000\n'
        )
        start = datetime.fromtimestamp(P0, UTC).isoformat().replace("+00:00", "Z")
        period = ("--from", start, "--to", str(P1))

        bills = json.loads(_ok(_tally("bill", *period, "--db", db, "--json")))
        assert [b["total"] for b in bills["bills"]] == ["60000"]
        assert "deposited 60000" in _ok(_tally("deposit", "60000", "--mint", *chain_opts))

        ran = _tally(
            "settle", "run", "--round", "1", *period, "--policy", str(policy), "--db", db,
            "--propose", "--json", *chain_opts,
        )  # fmt: skip
        statement = json.loads(_ok(ran))
        assert statement["total"] == "60000" and statement["proposed"]["tx_hash"].startswith("0x")
        payouts = {p["account"]: p["payout"] for p in statement["participants"]}
        assert payouts == {
            space.providers[0].address: "39000",
            space.providers[1].address: "19500",
            space.operator.address: "1500",
        }
        early = _tally("settle", "finalize", "1", *chain_opts)
        assert early.exit_code == 1
        assert "SettlementVaultChallengeWindowOpen" in str(early.exception)
        space.chain.increase_time(WINDOW)
        assert "round 1: Finalized" in _ok(_tally("settle", "finalize", "1", *chain_opts))
        claimed = _ok(_tally("claim", "--round", "1", "--all", *chain_opts))
        assert claimed.count(": claimed (tx 0x") == 3
        for account, amount in payouts.items():
            assert balance(space, account) == int(amount)

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
        changed = tmp_path / "changed.toml"
        changed.write_text(policy.read_text().replace("250", "300"))
        failed = _tally(*audit, "--policy", str(changed), "--json")
        assert failed.exit_code == 1
        assert json.loads(failed.stdout)["first_failure"]["check"] == "policy_hash"
    finally:
        get_settings.cache_clear()
