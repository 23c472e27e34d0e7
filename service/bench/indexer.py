"""Indexer benchmark: this indexer vs a naive web3 loop vs the raw ``eth_getLogs`` fetch.

:func:`run_bench` starts its own anvil, deploys Tally, fills the chain with about
``n_events`` events of the busy kinds (registrations, updates, suspensions, checkpoints,
deposits, rounds, claims) and measures, over the same block ranges:

- ``raw``: ``eth_getLogs`` for all the deployment's contracts, JSON parsed, nothing else
  (the floor any indexer on this node pays; the indexer's own RPC client);
- ``web3_get_logs``: the same requests through ``w3.eth.get_logs`` (web3's formatters);
- ``naive``: the usual web3.py loop: ``contract.events.X.get_logs`` for every event type
  of every contract (web3 decodes each log with ``process_log``), nothing stored;
- ``indexer``: this indexer from an empty SQLite database to the head, everything
  stored (raw table, derived tables, cursor), in events per second.

:class:`BulkSender` builds volume quickly: anvil's unlocked dev accounts sign
(``eth_sendTransaction``), calldata is encoded with eth-abi, requests go out in
JSON-RPC batches with automine off, and a block is mined (``evm_mine``) every
``per_block`` transactions; the tests use it too.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from service.chain.client import Chain
from service.chain.config import Deployment, rpc_network
from service.chain.deploy import TallyContracts, deploy_tally
from service.chain.devnode import Anvil
from service.db import make_engine
from service.errors import ChainError
from service.evidence.merkle import consistency_proof, leaf_hash, root_from_leaf_hashes
from service.indexer.decode import abi_type
from service.indexer.models import create_indexer_tables
from service.indexer.runner import Indexer
from service.indexer.source import RpcSource
from service.settlement.payout_tree import build_payout_tree

log = logging.getLogger(__name__)

RPC_BATCH = 200
BENCH_RANGE = 50  # blocks per eth_getLogs, the same for every measurement
GAS = {
    "mint": 120_000,
    "approve": 80_000,
    "anchor": 400_000,
    "register": 300_000,
    "update": 200_000,
    "suspend": 80_000,
    "reinstate": 80_000,
    "deposit": 150_000,
    "propose": 300_000,
    "finalize": 100_000,
    "claim": 200_000,
    "grantRole": 150_000,
    "revokeRole": 100_000,
    "challenge": 150_000,
    "cancel": 100_000,
    "pause": 80_000,
    "unpause": 80_000,
    "transfer": 100_000,
}


class BulkSender:
    """Send many transactions from anvil's unlocked accounts, mined in explicit blocks."""

    def __init__(self, url: str, *, per_block: int = 200) -> None:
        self.url = url
        self.per_block = per_block
        self.session = requests.Session()
        self.queue: list[dict[str, Any]] = []
        self.nonces: dict[str, int] = {}
        self.sent = 0
        self._id = 0
        self._functions: dict[tuple[str, str], tuple[bytes, list[str]]] = {}

    def rpc(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        body: Any = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
        answer = self.session.post(self.url, json=body, timeout=120).json()
        if answer.get("error"):
            raise ChainError(f"{method}: {answer['error']}")
        return answer["result"]

    def _nonce(self, sender: str) -> int:
        if sender not in self.nonces:
            self.nonces[sender] = int(self.rpc("eth_getTransactionCount", [sender, "pending"]), 16)
        n = self.nonces[sender]
        self.nonces[sender] = n + 1
        return n

    def _calldata(self, contract: Contract, fn: str, args: Sequence[Any]) -> str:
        """Selector + eth-abi encoding (web3's ``encode_abi`` validates the whole ABI on
        every call: ~100x slower, the bulk of building a large chain)."""
        key = (contract.address, fn)
        if key not in self._functions:
            abi: list[dict[str, Any]] = [dict(i) for i in contract.abi]
            (item,) = [i for i in abi if i.get("type") == "function" and i.get("name") == fn]
            types = [abi_type(p) for p in item["inputs"]]
            selector = keccak(text=f"{fn}({','.join(types)})")[:4]
            self._functions[key] = (selector, types)
        selector, types = self._functions[key]
        return "0x" + (selector + abi_encode(types, list(args))).hex()

    def add(
        self, contract: Contract, fn: str, *args: Any, sender: str, gas: int | None = None
    ) -> None:
        self.queue.append(
            {
                "from": sender,
                "to": contract.address,
                "data": self._calldata(contract, fn, args),
                "gas": hex(gas or GAS[fn]),
                "nonce": hex(self._nonce(sender)),
                "maxFeePerGas": hex(10**9),
                "maxPriorityFeePerGas": "0x0",
            }
        )

    def flush(self) -> None:
        """Send everything queued with automine off, ``per_block`` transactions a block."""
        if not self.queue:
            return
        self.rpc("evm_setAutomine", [False])
        try:
            for i in range(0, len(self.queue), self.per_block):
                block = self.queue[i : i + self.per_block]
                for j in range(0, len(block), RPC_BATCH):
                    body: Any = [
                        {"jsonrpc": "2.0", "id": k, "method": "eth_sendTransaction", "params": [tx]}
                        for k, tx in enumerate(block[j : j + RPC_BATCH])
                    ]
                    answers = self.session.post(self.url, json=body, timeout=120).json()
                    bad = [a["error"] for a in answers if a.get("error")]
                    if bad:
                        raise ChainError(f"eth_sendTransaction refused: {bad[0]}")
                self._mine_all()
            self.sent += len(self.queue)
        finally:
            self.queue = []
            self.rpc("evm_setAutomine", [True])

    def _mine_all(self) -> None:
        for _ in range(1000):
            self.rpc("evm_mine", [])
            status = self.rpc("txpool_status", [])
            if int(status["pending"], 16) == 0 and int(status["queued"], 16) == 0:
                return
        raise ChainError("transactions still pending after 1000 blocks")


@dataclass
class Population:
    """What :func:`populate` put on chain (the tests check the mirror against it)."""

    events: int = 0
    participants: list[str] = field(default_factory=list)
    checkpoints: int = 0
    deposits: int = 0
    rounds: list[int] = field(default_factory=list)
    claims: int = 0


def _addresses(seed: int, n: int) -> list[str]:
    return [
        Web3.to_checksum_address(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:20])
        for i in range(n)
    ]


def populate(
    contracts: TallyContracts,
    url: str,
    n_events: int,
    *,
    admin: str,
    per_block: int = 200,
    seed: int = 7,
) -> Population:
    """About ``n_events`` events of the busy kinds, from ``admin`` (operator and payer).

    The deployment must have a zero challenge window (rounds finalize at once).
    """
    s = BulkSender(url, per_block=per_block)
    reg, ledger, vault, token = (
        contracts.registry,
        contracts.ledger,
        contracts.vault,
        contracts.token,
    )
    pop = Population()
    n_ckpt = max(2, n_events // 200)
    n_reg = max(3, n_events // 10)
    n_upd = max(1, n_events // 50)
    n_susp = max(1, n_events // 100)
    n_rounds = max(1, n_events // 5000)
    fixed = 2 + n_ckpt + n_reg + n_upd + 2 * n_susp + 2 * n_rounds
    rest = max(4, n_events - fixed)
    n_dep = max(1, rest * 2 // 5 // 2)
    n_claims = max(1, (rest - 2 * n_dep) // 2)
    per_round = -(-n_claims // n_rounds)
    unit = 10**15

    s.add(token, "mint", admin, 10**30, sender=admin)
    s.add(token, "approve", vault.address, 2**256 - 1, sender=admin)
    pop.events += 2

    leaves = [leaf_hash(f"entry-{i}".encode()) for i in range(4 * n_ckpt)]
    for k in range(1, n_ckpt + 1):
        size = 4 * k
        proof = consistency_proof(leaves[:size], 4 * (k - 1)) if k > 1 else []
        s.add(ledger, "anchor", size, root_from_leaf_hashes(leaves[:size]), proof, sender=admin)
    pop.checkpoints = n_ckpt

    people = _addresses(seed, n_reg)
    for i, who in enumerate(people):
        ident = hashlib.sha256(who.encode()).digest()
        s.add(reg, "register", who, 1 + i % 7, ident, f"https://example.org/p/{i}", sender=admin)
    for i in range(n_upd):
        who = people[i % n_reg]
        s.add(reg, "update", who, 7, bytes(32), f"https://example.org/u/{i}", sender=admin)
    for i in range(n_susp):
        s.add(reg, "suspend", people[i], sender=admin)
    for i in range(n_susp):
        s.add(reg, "reinstate", people[i], sender=admin)
    pop.participants = people

    for i in range(n_dep):
        s.add(vault, "deposit", unit * (1000 + i), sender=admin)
    pop.deposits = n_dep
    s.flush()

    payees = _addresses(seed + 1, per_round)
    claims_left = n_claims
    for r in range(n_rounds):
        round_id = 1000 + r
        tree = build_payout_tree(
            round_id=round_id, payouts={p: unit * (1 + (i % 97)) for i, p in enumerate(payees)}
        )
        s.add(
            vault,
            "propose",
            round_id,
            tree.root,
            tree.total,
            0,
            bytes(32),
            1_000 * r,  # one period per round: the vault refuses overlaps
            1_000 * (r + 1),
            [(admin, tree.total)],  # funded from the admin's own deposits
            "ipfs://s",
            sender=admin,
        )
        s.add(vault, "finalize", round_id, sender=admin)
        for e in tree.entries[: min(per_round, claims_left)]:
            s.add(
                vault, "claim", round_id, e.index, e.account, e.amount, list(e.proof), sender=admin
            )
            claims_left -= 1
        pop.rounds.append(round_id)
    pop.claims = n_claims
    s.flush()
    # a propose logs RoundProposed + one RoundDebited; a finalize RoundFinalized
    pop.events += n_ckpt + n_reg + n_upd + 2 * n_susp + 2 * n_dep + 3 * n_rounds + 2 * n_claims
    return pop


# --- the measurements ---------------------------------------------------------------------


def _ranges(start: int, end: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size - 1, end)) for a in range(start, end + 1, size)]


def measure_raw(
    url: str, addresses: Sequence[str], ranges: Sequence[tuple[int, int]]
) -> tuple[int, float]:
    """``eth_getLogs`` per range, JSON parsed, nothing else (the indexer's own client)."""
    source = RpcSource(url)
    t0 = time.perf_counter()
    n = sum(len(source.get_logs(addresses, a, b)) for a, b in ranges)
    return n, time.perf_counter() - t0


def measure_web3_get_logs(
    url: str, addresses: Sequence[str], ranges: Sequence[tuple[int, int]]
) -> tuple[int, float]:
    """``w3.eth.get_logs`` per range: the same fetch through web3's result formatters."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    checksummed = [Web3.to_checksum_address(a) for a in addresses]
    t0 = time.perf_counter()
    n = 0
    for a, b in ranges:
        n += len(w3.eth.get_logs({"fromBlock": a, "toBlock": b, "address": checksummed}))
    return n, time.perf_counter() - t0


def measure_naive(
    url: str, contracts: Sequence[Contract], ranges: Sequence[tuple[int, int]]
) -> tuple[int, float]:
    """The usual web3 loop: ``contract.events.X.get_logs`` (decoded by ``process_log``)
    for every event type of every contract, range by range; nothing stored."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    handles = [w3.eth.contract(address=c.address, abi=c.abi) for c in contracts]
    t0 = time.perf_counter()
    n = 0
    for a, b in ranges:
        for c in handles:
            for item in c.abi:
                name = dict(item).get("name")
                if item.get("type") == "event" and isinstance(name, str):
                    event = c.events[name]
                    n += len(list(event.get_logs(from_block=a, to_block=b)))
    return n, time.perf_counter() - t0


def measure_indexer(
    url: str, deployment: Deployment, db_url: str, *, max_range: int, prefetch: bool = True
) -> tuple[int, float]:
    """This indexer from an empty database to the head (raw, derived tables, cursor)."""
    engine = make_engine(db_url)
    create_indexer_tables(engine)
    indexer = Indexer(
        source=RpcSource(url),
        engine=engine,
        deployment=deployment,
        network="bench",
        max_range=max_range,
        prefetch=prefetch,
    )
    t0 = time.perf_counter()
    summary = indexer.run()
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return summary.events, elapsed


def run_bench(
    n_events: int = 20_000,
    *,
    quick: bool = False,
    repeat: int = 3,
    per_block: int = 50,
    block_range: int = BENCH_RANGE,
    db_dir: Path | None = None,
) -> dict[str, Any]:
    """Build an anvil chain of about ``n_events`` Tally events (5,000 if ``quick``), then
    measure the indexer, the naive web3 loop and the raw fetch on the same block ranges
    (``block_range`` blocks each; ``per_block`` transactions a block, about two events
    each). Each rate is the best of ``repeat`` runs (the naive loop runs once: it is the
    slow one). Returns events/s, the ratios and the goals (>= 2.5x naive, >= 0.7 raw)."""
    if quick:
        n_events = min(n_events, 5_000)
    node = Anvil(accounts=2).start()
    try:
        chain = Chain.connect(rpc_network(node.url, chain_id=31337))
        admin = chain.accounts[0]
        t0 = time.perf_counter()
        contracts = deploy_tally(chain, admin=admin, challenge_window_s=0, network="bench")
        populate(contracts, node.url, n_events, admin=admin.address, per_block=per_block)
        build_s = time.perf_counter() - t0
        head = chain.w3.eth.block_number
        dep = contracts.deployment
        addresses = sorted(c.address.lower() for c in dep.contracts.values())
        ranges = _ranges(dep.deploy_block, head, block_range)
        handles = [contracts.registry, contracts.ledger, contracts.vault, contracts.token]
        runs: dict[str, list[tuple[int, float]]] = {"raw": [], "web3_get_logs": [], "indexer": []}
        with tempfile.TemporaryDirectory(dir=db_dir) as tmp:
            for k in range(repeat):  # interleaved, so a busy moment hits all alike
                runs["raw"].append(measure_raw(node.url, addresses, ranges))
                runs["web3_get_logs"].append(measure_web3_get_logs(node.url, addresses, ranges))
                runs["indexer"].append(
                    measure_indexer(
                        node.url, dep, f"sqlite:///{tmp}/bench-{k}.db", max_range=block_range
                    )
                )
            runs["naive"] = [measure_naive(node.url, handles, ranges)]
    finally:
        node.stop()
    counts = {n for results in runs.values() for n, _ in results}
    if len(counts) != 1:
        raise ChainError(f"the measurements saw different event counts: {sorted(counts)}")
    (events,) = counts
    rates = {name: max(n / s for n, s in results) for name, results in runs.items()}
    return {
        "events": events,
        "blocks": head - dep.deploy_block + 1,
        "ranges": len(ranges),
        "block_range": block_range,
        "build_s": round(build_s, 2),
        "events_per_s": {k: round(v, 1) for k, v in rates.items()},
        "indexer_vs_naive": round(rates["indexer"] / rates["naive"], 2),
        "indexer_vs_raw": round(rates["indexer"] / rates["raw"], 2),
        "indexer_vs_web3_get_logs": round(rates["indexer"] / rates["web3_get_logs"], 2),
        "goals": {"indexer_vs_naive": 2.5, "indexer_vs_raw": 0.7},
    }


if __name__ == "__main__":  # pragma: no cover - manual runs: python -m service.bench.indexer [N]
    import json
    import sys

    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(run_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000), indent=2))
