"""Tally through the RPC fault proxy (:mod:`tests.faults.proxy`): dropped connections,
lost replies, delays past the client timeout, 503 / 504, truncated JSON and a flipped
chain id, on a seeded schedule.

While the faults last, every failure Tally reports is a :class:`TallyError` (a clear,
coded error; anything else fails the test). After they stop:

- anchoring: the ledger's checkpoints are exactly the anchored rows of the log, each
  once; every operator transaction anchored one checkpoint (none sent twice); the
  last checkpoint covers the whole log;
- the indexer: its mirror equals the chain, compared with a direct fetch decoded by
  web3 and with a fresh index of the whole chain;
- claims and deposits: each lands once or fails with a clear error; every payee then
  holds exactly its leaf, and no deposit was taken twice;
- a node that says it is another chain is refused before anything is written.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select
from web3 import HTTPProvider, Web3

import service.chain.client as chain_client
import tests.contracts.helpers as contract_helpers
from service.bench.indexer import BulkSender
from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.deploy import deploy_tally
from service.chain.devnode import Anvil
from service.db import create_schema, make_engine
from service.errors import ChainError, ConfigError, TallyError
from service.evidence.anchor import anchor_once, read_all_checkpoints
from service.evidence.directory import ChainDirectory
from service.evidence.log import append_entries
from service.evidence.models import AnchorRow
from service.evidence.tiles import MerkleLog, SqlTileStorage
from service.indexer.runner import Indexer
from service.indexer.source import Backoff, RpcSource
from service.settlement import rounds
from service.settlement.payout_tree import build_payout_tree
from tests.evidence.test_log import agreement
from tests.faults.helpers import chain_events, receipts
from tests.faults.proxy import FaultSchedule, fault_proxy
from tests.indexer.helpers import dump, fresh_index, mirror_events, reference_events
from tests.space import build_space

pytestmark = pytest.mark.anvil

SEED = 20_260_902
ANCHOR_ROUNDS = 25
CLAIMS = 16
UNIT = 10**18
INDEX_RUNS = 60  # indexer runs allowed while the faults last (each resumes the last)


def _rpc(url: str) -> Any:
    return rpc_network(url, chain_id=31337)


def quick_web3_retries(chain: Chain) -> None:
    """web3's own retries of read calls (on 5xx and timeouts), with a short backoff."""
    provider = chain.w3.provider
    assert isinstance(provider, HTTPProvider)
    config = provider.exception_retry_configuration
    config.backoff_factor = 0.01


def test_anchor_through_rpc_faults_never_double_anchors_or_loses_a_checkpoint(
    fault_anvil: Anvil, tmp_path: Path, figures: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chain_client, "RETRY_BASE_S", 0.01)
    direct = Chain.connect(_rpc(fault_anvil.url))
    space = build_space(direct)
    engine = make_engine(f"sqlite:///{tmp_path}/tally.db")
    create_schema(engine)
    directory = ChainDirectory(direct, space.contracts.registry)

    def grow(first: int) -> None:
        batch = receipts(space, range(first, first + 4))
        results = append_entries(
            engine=engine, domain=space.domain, directory=directory, entries=batch
        )
        assert all(r.status == "accepted" for r in results)

    append_entries(
        engine=engine, domain=space.domain, directory=directory, entries=[agreement(space)]
    )
    operator = space.operator
    sent0 = direct.w3.eth.get_transaction_count(operator.address)
    schedule = FaultSchedule(SEED, rate=0.3, chain_id_rate=0.2, max_delay_s=0.3)
    errors: Counter[str] = Counter()
    with fault_proxy(fault_anvil.url, schedule) as proxy:
        with proxy.off():
            chain = Chain.connect(_rpc(proxy.url), timeout_s=0.2)
        quick_web3_retries(chain)
        ledger = chain.contract("EvidenceLedger", space.contracts.ledger.address)
        for k in range(ANCHOR_ROUNDS):
            grow(1 + 4 * k)
            try:
                anchor_once(engine=engine, chain=chain, ledger=ledger, operator=operator)
            except TallyError as err:  # anything else is not a clear error: the test fails
                errors[err.code] += 1
                print(f"reported: [{err.code}] {err}")
        proxy.enabled = False
        faults = proxy.summary()
        lost_sends = proxy.lost_sends()
        # after the faults (and with the default timeout): one run records what the
        # chain has and anchors the rest
        calm = Chain.connect(_rpc(proxy.url))
        ledger = calm.contract("EvidenceLedger", space.contracts.ledger.address)
        anchor_once(engine=engine, chain=calm, ledger=ledger, operator=operator)
        assert anchor_once(engine=engine, chain=calm, ledger=ledger, operator=operator) is None

    on_chain = read_all_checkpoints(direct, space.contracts.ledger)
    with Session(engine) as s:
        rows = list(s.exec(select(AnchorRow).order_by(col(AnchorRow.seq))))
        tree = MerkleLog(SqlTileStorage(s))
        size = tree.size()
        roots_ok = all(tree.root(size=cp.tree_size) == cp.root for cp in on_chain)
    engine.dispose()
    sent = direct.w3.eth.get_transaction_count(operator.address) - sent0
    figures.update(
        faults_injected=faults["faults"],
        faults_by_kind=faults["by_kind"],
        rpc_requests=faults["requests"],
        sends_whose_reply_was_lost=lost_sends,
        anchor_rounds=ANCHOR_ROUNDS,
        errors_reported=dict(sorted(errors.items())),
        checkpoints=len(on_chain),
        anchor_transactions=sent,
        double_anchors=sent - len(on_chain),
        checkpoints_lost=len(on_chain) - len(rows),
    )
    assert [(r.seq, r.tree_size, r.root) for r in rows] == [
        (cp.seq, cp.tree_size, "0x" + cp.root.hex()) for cp in on_chain
    ]
    assert roots_ok
    sizes = [cp.tree_size for cp in on_chain]
    assert sizes == sorted(set(sizes)) and sizes[-1] == size
    assert sent == len(on_chain), "an anchor transaction anchored nothing (sent twice?)"
    assert faults["faults"] >= 50 and len(faults["by_kind"]) >= 6


def test_indexer_through_rpc_faults_mirrors_the_chain(
    fault_anvil: Anvil, tmp_path: Path, figures: dict[str, Any]
) -> None:
    direct = Chain.connect(_rpc(fault_anvil.url))
    admin = direct.accounts[0].address
    t = deploy_tally(direct, admin=direct.accounts[0], network="anvil")
    sender = BulkSender(fault_anvil.url, per_block=1)
    chain_events(sender, t, admin, 0, 240)
    sender.flush()
    dep = t.deployment
    head = direct.w3.eth.block_number
    engine = make_engine(f"sqlite:///{tmp_path}/mirror.db")
    create_schema(engine)
    schedule = FaultSchedule(SEED + 1, rate=0.25, chain_id_rate=0.3, max_delay_s=0.3)
    errors: Counter[str] = Counter()
    runs = 0
    with fault_proxy(fault_anvil.url, schedule) as proxy:
        while runs < INDEX_RUNS:
            runs += 1
            source = RpcSource(proxy.url, timeout_s=0.2, backoff=Backoff(tries=4, base_s=0.01))
            try:
                indexer = Indexer(
                    source=source, engine=engine, deployment=dep, network="anvil", max_range=4
                )
                indexer.scanner.sleep = lambda s: time.sleep(min(s, 0.02))
                if indexer.run().cursor == head:
                    break
            except TallyError as err:  # anything else is not a clear error: the test fails
                errors[err.code] += 1
                print(f"reported: [{err.code}] {err}")
        faults = proxy.summary()
        proxy.enabled = False
        Indexer(source=RpcSource(proxy.url), engine=engine, deployment=dep, network="anvil").run()

    expected = reference_events(direct, dep, head)
    mirror = mirror_events(engine)
    fresh = fresh_index(fault_anvil.url, dep, tmp_path / "fresh.db")
    final = dump(engine)
    engine.dispose()
    differ = len({repr(e) for e in mirror} ^ {repr(e) for e in expected}) + sum(
        len({repr(r) for r in final[k]} ^ {repr(r) for r in fresh[k]}) for k in fresh
    )
    figures.update(
        faults_injected=faults["faults"],
        faults_by_kind=faults["by_kind"],
        rpc_requests=faults["requests"],
        indexer_runs=runs,
        errors_reported=dict(sorted(errors.items())),
        events=len(expected),
        mirror_mismatches=differ,
    )
    assert mirror == expected
    assert final == fresh
    assert faults["faults"] >= 50 and len(faults["by_kind"]) >= 6


def test_node_claiming_another_chain_id_is_refused_before_anything_is_written(
    fault_anvil: Anvil, tmp_path: Path, figures: dict[str, Any]
) -> None:
    direct = Chain.connect(_rpc(fault_anvil.url))
    t = deploy_tally(direct, admin=direct.accounts[0], network="anvil")
    engine = make_engine(f"sqlite:///{tmp_path}/mirror.db")
    create_schema(engine)
    schedule = FaultSchedule(SEED + 2, rate=0.0, chain_id_rate=1.0)  # every eth_chainId
    with fault_proxy(fault_anvil.url, schedule) as proxy:
        with pytest.raises(ChainError, match="chain id 1"):
            Chain.connect(_rpc(proxy.url))
        with pytest.raises(ConfigError, match="chain 1"):
            Indexer(
                source=RpcSource(proxy.url), engine=engine, deployment=t.deployment, network="x"
            )
        faults = proxy.summary()
    assert mirror_events(engine) == []
    engine.dispose()
    figures.update(faults_injected=faults["faults"], refused=2, rows_written=0)


def test_claims_and_deposits_through_rpc_faults_land_once_or_fail_clearly(
    fault_anvil: Anvil, figures: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims (idempotent on chain: the claimed bitmap) and deposits (not: a deposit sent
    twice would take the consumer's tokens twice) through the faults: each lands once or
    Tally reports a TallyError; a claim whose outcome was unknown is found claimed (or
    claimed) when tried again, and every payee then holds exactly its leaf."""
    monkeypatch.setattr(chain_client, "RETRY_BASE_S", 0.01)
    direct = Chain.connect(_rpc(fault_anvil.url))
    t = contract_helpers.deploy(direct, challenge_window=0)
    payees = {
        Web3.to_checksum_address(bytes([0xFA, i]) * 10): (i + 1) * UNIT for i in range(CLAIMS)
    }
    tree = build_payout_tree(round_id=1, payouts=payees)
    t.fund(tree.total)
    t.anchor_first()
    t.propose(1, tree.root, tree.total)
    t.finalize(1)
    consumer, claimer = t.consumer2, t.outsider
    direct.transact(t.token.functions.mint(consumer.address, 10**6 * UNIT), sender=t.admin)
    direct.transact(t.token.functions.approve(t.vault.address, 2**255), sender=consumer)
    nonce0 = {
        a.address: direct.w3.eth.get_transaction_count(a.address) for a in (consumer, claimer)
    }
    schedule = FaultSchedule(SEED + 3, rate=0.3, chain_id_rate=0.2, max_delay_s=0.3)
    errors: Counter[str] = Counter()
    deposits_ok: list[int] = []
    unknown: list[str] = []
    with fault_proxy(fault_anvil.url, schedule) as proxy:
        with proxy.off():
            chain = Chain.connect(_rpc(proxy.url), timeout_s=0.2)
        quick_web3_retries(chain)
        vault = chain.contract("SettlementVault", t.vault.address)
        for k, account in enumerate(payees):
            try:
                rounds.claim(
                    chain=chain, vault=vault, tree=tree, sender=claimer, accounts=[account]
                )
            except TallyError as err:  # anything else is not a clear error: the test fails
                errors[err.code] += 1
                print(f"reported: [{err.code}] {err}")
                unknown.append(account)
            amount = 1_000 + k  # distinct amounts: a deposit sent twice would show
            try:
                chain.transact(vault.functions.deposit(amount), sender=consumer)
                deposits_ok.append(amount)
            except TallyError as err:
                errors[err.code] += 1
                print(f"reported: [{err.code}] {err}")
        faults = proxy.summary()
        lost_sends = proxy.lost_sends()
        proxy.enabled = False
        calm = Chain.connect(_rpc(proxy.url))  # the default timeout again
        vault = calm.contract("SettlementVault", t.vault.address)
        found_claimed = sum(
            bool(calm.call(vault.functions.isClaimed(1, tree.index_of(a)))) for a in unknown
        )
        again = rounds.claim(chain=calm, vault=vault, tree=tree, sender=claimer)  # the rest

    balances = {a: int(direct.call(t.token.functions.balanceOf(a))) for a in payees}
    claimed = t.vault.events.Claimed().get_logs(from_block=0, argument_filters={"roundId": 1})
    deposited = [
        int(e["args"]["amount"])
        for e in t.vault.events.Deposited().get_logs(
            from_block=0, argument_filters={"account": consumer.address}
        )
    ]
    sent = {a: direct.w3.eth.get_transaction_count(a) - n for a, n in nonce0.items()}
    double_paid = sum(balances[a] > payees[a] for a in payees)
    figures.update(
        faults_injected=faults["faults"],
        faults_by_kind=faults["by_kind"],
        rpc_requests=faults["requests"],
        sends_whose_reply_was_lost=lost_sends,
        claims=CLAIMS,
        deposits=CLAIMS,
        errors_reported=dict(sorted(errors.items())),
        claims_with_an_error_found_claimed=found_claimed,
        claims_sent_again_after_the_faults=sum(r.claimed_now for r in again),
        double_payments=double_paid + len(deposited) - len(set(deposited)),
        unpaid=sum(balances[a] < payees[a] for a in payees),
    )
    assert balances == payees  # every payee exactly its leaf: none twice, none missing
    assert sorted(e["args"]["account"] for e in claimed) == sorted(payees)
    assert len(deposited) == len(set(deposited)), "a deposit landed twice"
    assert set(deposits_ok) <= set(deposited)  # acknowledged deposits all landed
    assert sent[claimer.address] == CLAIMS, "a claim transaction was sent twice"
    assert sent[consumer.address] == len(deposited), "a deposit transaction was sent twice"
    assert faults["faults"] >= 50 and lost_sends > 0
