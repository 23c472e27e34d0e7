"""Helpers of the indexer tests: a scenario with every event type, mirror dumps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.abi import event_abi_to_log_topic
from sqlalchemy import select
from sqlalchemy.engine import Engine
from web3 import Web3

from service.bench.indexer import Population
from service.chain.artifacts import load_artifact
from service.chain.client import Chain
from service.chain.config import Deployment
from service.chain.deploy import TallyContracts, deploy_tally
from service.db import create_schema, make_engine
from service.evidence.merkle import consistency_proof, leaf_hash, root_from_leaf_hashes
from service.indexer import handlers
from service.indexer.runner import Indexer
from service.indexer.source import RpcSource
from service.settlement.payout_tree import PayoutTree, build_payout_tree

AUDITOR_ROLE = Web3.keccak(text="AUDITOR_ROLE")
ARBITER_ROLE = Web3.keccak(text="ARBITER_ROLE")
UNIT = 10**18
PERIOD = 86_400  # round n of the scenario settles [n x PERIOD, (n + 1) x PERIOD)


# --- the scenario: every event type of the four contracts ----------------------------------


@dataclass
class Scenario:
    chain: Chain
    contracts: TallyContracts
    url: str
    accounts: dict[str, str]  # role in the story -> checksummed address
    trees: dict[int, PayoutTree] = field(default_factory=dict)
    head: int = 0

    @property
    def deployment(self) -> Deployment:
        return self.contracts.deployment


def anchor_checkpoints(chain: Chain, ledger: Any, sender: Any, sizes: list[int]) -> None:
    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(max(sizes))]
    previous = 0
    for size in sizes:
        proof = consistency_proof(leaves[:size], previous) if previous else []
        root = root_from_leaf_hashes(leaves[:size])
        chain.transact(ledger.functions.anchor(size, root, proof), sender=sender)
        previous = size


def run_scenario(chain: Chain, url: str) -> Scenario:
    """Deploy and exercise every event: registry (register, update, suspend, reinstate,
    grant, revoke), ledger (three checkpoints), vault (deposits for oneself and for another,
    four rounds over consecutive periods: round 2 challenged, the dispute rejected, then
    challenged again and upheld (cancelled, debits refunded); round 3 cancelled by the
    operator in its window; round 1 finalized, claimed with claim and claimMany, swept;
    round 4 proposed over round 2's period after the cancel; a withdrawal requested and
    made; pause, unpause), token (mint, approve, transfers)."""
    acc = chain.accounts
    admin, prov, cons, serv, payee, auditor, temp = (
        acc[0],
        acc[1],
        acc[2],
        acc[3],
        acc[4],
        acc[5],
        acc[6],
    )
    t = deploy_tally(
        chain,
        admin=admin,
        challenge_window_s=100,
        claim_expiry_s=10,
        withdrawal_delay_s=5,
        network="anvil",
    )
    reg, ledger, vault, token = t.registry, t.ledger, t.vault, t.token
    tx = chain.transact
    tx(reg.functions.grantRole(AUDITOR_ROLE, auditor.address), sender=admin)
    tx(reg.functions.grantRole(ARBITER_ROLE, temp.address), sender=admin)
    tx(reg.functions.grantRole(AUDITOR_ROLE, temp.address), sender=admin)
    tx(reg.functions.revokeRole(AUDITOR_ROLE, temp.address), sender=admin)
    tx(reg.functions.register(prov.address, 1, b"\x01" * 32, "https://p.example/1"), sender=admin)
    tx(reg.functions.register(cons.address, 2, b"\x02" * 32, "https://p.example/2"), sender=admin)
    tx(reg.functions.register(serv.address, 4, b"\x03" * 32, "https://p.example/3"), sender=admin)
    tx(reg.functions.update(prov.address, 5, b"\x11" * 32, "https://p.example/1b"), sender=admin)
    tx(reg.functions.suspend(serv.address), sender=admin)
    tx(reg.functions.reinstate(serv.address), sender=admin)
    tx(reg.functions.suspend(cons.address), sender=admin)
    anchor_checkpoints(chain, ledger, admin, [2, 4, 7])

    tx(token.functions.mint(cons.address, 1000 * UNIT), sender=admin)
    tx(token.functions.mint(admin.address, 1000 * UNIT), sender=admin)
    tx(token.functions.approve(vault.address, 2**256 - 1), sender=cons)
    tx(token.functions.approve(vault.address, 2**256 - 1), sender=admin)
    tx(token.functions.transfer(payee.address, 3 * UNIT), sender=cons)
    tx(vault.functions.deposit(300 * UNIT), sender=cons)
    tx(vault.functions.deposit(200 * UNIT), sender=cons)
    tx(vault.functions.depositFor(cons.address, 2**64 * 7), sender=admin)  # exact big ints

    sc = Scenario(chain=chain, contracts=t, url=url, accounts={
        "admin": admin.address, "provider": prov.address, "consumer": cons.address,
        "service": serv.address, "payee": payee.address, "auditor": auditor.address,
        "temp": temp.address,
    })  # fmt: skip
    pay = {prov.address: 70 * UNIT, cons.address: 20 * UNIT, payee.address: 10 * UNIT}

    def propose(round_id: int, period: int) -> None:
        tree = build_payout_tree(round_id=round_id, payouts=pay)
        sc.trees[round_id] = tree
        debits = [(cons.address, tree.total)]
        tx(
            vault.functions.propose(
                round_id, tree.root, tree.total, 2, bytes([round_id]) * 32,
                PERIOD * period, PERIOD * (period + 1), debits, f"ipfs://s{round_id}",
            ),
            sender=admin,
        )  # fmt: skip

    propose(1, 1)
    chain.increase_time(101)
    tx(vault.functions.finalize(1), sender=admin)
    propose(2, 2)
    tx(vault.functions.challenge(2, b"\x99" * 32, 0, 0, []), sender=auditor)
    tx(vault.functions.resolve(2, False, b"\x55" * 32), sender=temp)  # rejected
    tx(vault.functions.challenge(2, b"\x98" * 32, 0, 0, []), sender=cons)  # a funder
    tx(vault.functions.resolve(2, True, b"\x56" * 32), sender=temp)  # upheld: cancelled
    propose(3, 2)  # the same period again, after the cancel
    tx(vault.functions.cancel(3), sender=admin)  # inside its window
    propose(4, 2)
    tree = sc.trees[1]
    e = tree.entries[tree.index_of(prov.address)]
    tx(vault.functions.claim(1, e.index, e.account, e.amount, list(e.proof)), sender=payee)
    e = tree.entries[tree.index_of(cons.address)]
    tx(
        vault.functions.claimMany([1], [e.index], e.account, [e.amount], [list(e.proof)]),
        sender=cons,
    )
    tx(vault.functions.pause(), sender=admin)
    tx(vault.functions.unpause(), sender=admin)
    chain.increase_time(11)
    tx(vault.functions.sweep(1), sender=admin)  # the payee's 10 were not claimed
    tx(vault.functions.requestWithdrawal(50 * UNIT), sender=cons)
    chain.increase_time(6)
    tx(vault.functions.withdraw(), sender=cons)
    sc.head = chain.w3.eth.block_number
    return sc


@dataclass
class Bulk:
    contracts: TallyContracts
    population: Population
    head: int
    deployment_file: Path


# --- comparing mirrors ------------------------------------------------------------------


MIRROR_TABLES = (handlers.T_EVENTS, *handlers.STATE, *handlers.PER_EVENT)


def dump(engine: Engine, *, chain_id: int | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the mirror and derived tables, sorted, without surrogate ids."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for t in MIRROR_TABLES:
            cols = [c for c in t.columns if c.name != "id"]
            query = select(*cols)
            if chain_id is not None:
                query = query.where(t.c.chain_id == chain_id)
            rows = [tuple(r) for r in conn.execute(query)]
            out[t.name] = sorted(rows, key=repr)
    return out


def fresh_index(
    url: str, deployment: Deployment, path: Path, *, confirmations: int = 0
) -> dict[str, list[tuple[Any, ...]]]:
    """Index ``deployment`` from scratch into a new SQLite file; its dump."""
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    Indexer(
        source=RpcSource(url), engine=engine, deployment=deployment, network="anvil",
        confirmations=confirmations,
    ).run()  # fmt: skip
    try:
        return dump(engine)
    finally:
        engine.dispose()


def node_logs(url: str, deployment: Deployment, to_block: int) -> list[dict[str, Any]]:
    """The node's own eth_getLogs answer for the deployment, in one request."""
    src = RpcSource(url)
    addresses = sorted(c.address.lower() for c in deployment.contracts.values())
    return src.get_logs(addresses, deployment.deploy_block, to_block)


def _norm(value: Any) -> Any:
    """web3's decoded values in the mirror's JSON form."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and Web3.is_address(value) and value.startswith("0x"):
        return value.lower()
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


def reference_events(chain: Chain, deployment: Deployment, to_block: int) -> list[tuple[Any, ...]]:
    """The node's eth_getLogs for the deployment, decoded by web3 (process_log)."""
    w3 = chain.w3
    routes: dict[tuple[str, str], Any] = {}
    for name, c in deployment.contracts.items():
        contract = w3.eth.contract(
            address=Web3.to_checksum_address(c.address), abi=load_artifact(name).abi
        )
        for item in load_artifact(name).abi:
            if item["type"] == "event":
                topic = "0x" + event_abi_to_log_topic(item).hex()
                routes[(c.address.lower(), topic)] = contract.events[item["name"]]()
    logs = w3.eth.get_logs(
        {
            "fromBlock": deployment.deploy_block,
            "toBlock": to_block,
            "address": [Web3.to_checksum_address(c.address) for c in deployment.contracts.values()],
        }
    )
    out = []
    for log in logs:
        event = routes[(log["address"].lower(), "0x" + log["topics"][0].hex())]
        decoded = event.process_log(log)
        out.append(
            (
                log["blockNumber"],
                "0x" + log["blockHash"].hex(),
                "0x" + log["transactionHash"].hex(),
                log["logIndex"],
                log["address"].lower(),
                decoded["event"],
                {k: _norm(v) for k, v in decoded["args"].items()},
            )
        )
    return out


def mirror_events(engine: Engine, chain_id: int = 31337) -> list[tuple[Any, ...]]:
    t = handlers.T_EVENTS
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                t.c.block_number,
                t.c.block_hash,
                t.c.tx_hash,
                t.c.log_index,
                t.c.address,
                t.c.event,
                t.c.args,
            )
            .where(t.c.chain_id == chain_id)
            .order_by(t.c.block_number, t.c.log_index)
        ).all()
    return [tuple(r) for r in rows]


def rows(engine: Engine, table: Any, **where: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        q = select(table)
        for k, v in where.items():
            q = q.where(table.c[k] == v)
        return [dict(r) for r in conn.execute(q).mappings()]
