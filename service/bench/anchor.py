"""Anchor section: gas of checkpointing the log vs storing each receipt hash on chain.

On the embedded chain, Tally is deployed (:func:`~service.chain.deploy.deploy_tally`) and
the operator anchors ``checkpoints`` checkpoints of a synthetic log growing by
``receipts_per_checkpoint`` leaves each (real RFC 9162 roots and consistency proofs from
:mod:`service.evidence.merkle`; the ledger verifies each proof on chain). The median gas
of the checkpoints that carry a consistency proof (all but the first), divided by the
receipts each covers, is compared with ``NaiveHashStore.store``: one transaction per
receipt hash (median of ``naive_samples`` distinct hashes, each a fresh storage slot).
Gas is the receipt's ``gasUsed`` (21,000 intrinsic and calldata included on both sides).
"""

from __future__ import annotations

import statistics
from typing import Any

from eth_utils.crypto import keccak

from service.chain.client import Chain
from service.chain.deploy import deploy_tally
from service.evidence import merkle

__all__ = ["GOAL_RATIO", "bench_anchor"]

GOAL_RATIO = 0.001
TX_GAS = 5_000_000


def bench_anchor(
    checkpoints: int = 10,
    *,
    receipts_per_checkpoint: int = 10_000,
    naive_samples: int = 5,
) -> dict[str, Any]:
    """Anchor ``checkpoints`` checkpoints and store ``naive_samples`` hashes naively."""
    if checkpoints < 2:
        raise ValueError("at least two checkpoints: the first one carries no proof")
    chain = Chain.embedded(accounts=2)
    operator = chain.accounts[0]
    contracts = deploy_tally(chain, admin=operator, challenge_window_s=0)
    ledger = contracts.ledger

    hashes = [
        merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(checkpoints * receipts_per_checkpoint)
    ]
    gas: list[int] = []
    proof_lengths: list[int] = []
    previous = 0
    for k in range(1, checkpoints + 1):
        size = k * receipts_per_checkpoint
        prefix = hashes[:size]
        proof = merkle.consistency_proof(prefix, previous) if previous else []
        receipt = chain.transact(
            ledger.functions.anchor(size, merkle.root_from_leaf_hashes(prefix), proof),
            sender=operator,
            gas=TX_GAS,
        )
        if previous:
            gas.append(int(receipt["gasUsed"]))
            proof_lengths.append(len(proof))
        previous = size
    anchored = chain.call(ledger.functions.count())
    if anchored != checkpoints:
        raise AssertionError(f"{anchored} checkpoints on chain, {checkpoints} anchored")

    store, _ = chain.deploy("NaiveHashStore", sender=operator)
    naive = [
        int(
            chain.transact(
                store.functions.store(keccak(text=f"receipt-{i}")), sender=operator, gas=TX_GAS
            )["gasUsed"]
        )
        for i in range(naive_samples)
    ]

    per_checkpoint = statistics.median(gas)
    per_receipt = per_checkpoint / receipts_per_checkpoint
    naive_per_receipt = statistics.median(naive)
    ratio = per_receipt / naive_per_receipt
    return {
        "checkpoints": checkpoints,
        "checkpoints_with_proof": len(gas),
        "receipts_per_checkpoint": receipts_per_checkpoint,
        "log_size": checkpoints * receipts_per_checkpoint,
        "consistency_proof_hashes": [min(proof_lengths), max(proof_lengths)],
        "gas_per_checkpoint": int(per_checkpoint),
        "gas_per_checkpoint_max": max(gas),
        "gas_per_receipt": round(per_receipt, 3),
        "naive_samples": naive_samples,
        "naive_gas_per_receipt": int(naive_per_receipt),
        "ratio": round(ratio, 6),
        "goal": GOAL_RATIO,
        "met": ratio <= GOAL_RATIO,
    }
