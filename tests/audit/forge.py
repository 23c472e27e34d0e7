"""Receipts an attacker can make that are flawless in themselves: a ledger of their own on
the same chain, or unregistered keys anchored by a dishonest operator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from service.audit.trust import TrustedDeployment
from service.chain.client import Chain
from service.evidence.directory import CONSUMER, PROVIDER
from service.evidence.eip712 import Domain
from service.evidence.entries import SignedEntry, UsageReceipt, sign_entry
from service.evidence.merkle import leaf_hash
from tests.space import Space

Doc = dict[str, Any]
UNITS = 10**9


def pin(space: Space) -> TrustedDeployment:
    """The real data space's deployment, as an auditor pins it."""
    return TrustedDeployment.from_deployment(space.contracts.deployment, source="the test space")


def usage(domain: Domain, consumer: LocalAccount, provider: LocalAccount) -> SignedEntry:
    """A UsageReceipt for 1e9 units, signed by ``consumer`` and ``provider``."""
    entry = UsageReceipt(
        agreementId=b"\x66" * 32,
        consumer=consumer.address,
        provider=provider.address,
        units=UNITS,
        periodStart=1_767_225_600,
        periodEnd=1_767_229_200,
        detailHash=b"\x77" * 32,
        nonce=1,
    )
    return sign_entry(entry, domain, [bytes(consumer.key), bytes(provider.key)])


def one_leaf_receipt(
    signed: SignedEntry,
    *,
    chain_id: int,
    contract: str,
    seq: int = 0,
    tx_hash: str = "0x" + "00" * 32,
    block_number: int = 1,
) -> Doc:
    """The receipt document of a one-leaf log holding ``signed``: offline it is flawless."""
    body = signed.to_json()
    leaf = leaf_hash(signed.encode())
    return {
        "version": 1,
        "entry_type": body["entry_type"],
        "entry": body["entry"],
        "signatures": body["signatures"],
        "entry_id": "0x" + signed.id().hex(),
        "leaf_index": 0,
        "tree_size": 1,
        "root": "0x" + leaf.hex(),
        "inclusion_proof": [],
        "anchor": {
            "chain_id": chain_id,
            "contract": contract,
            "checkpoint_seq": seq,
            "tx_hash": tx_hash,
            "block_number": block_number,
        },
    }


def anchor_alone(
    chain: Chain, ledger: Contract, signed: SignedEntry, operator: LocalAccount
) -> Doc:
    """Anchor a one-leaf log holding ``signed`` as the ledger's first checkpoint; its receipt."""
    assert chain.call(ledger.functions.count()) == 0
    tx = chain.transact(ledger.functions.anchor(1, leaf_hash(signed.encode()), []), sender=operator)
    return one_leaf_receipt(
        signed,
        chain_id=chain.chain_id,
        contract=ledger.address,
        tx_hash="0x" + bytes(tx["transactionHash"]).hex(),
        block_number=int(tx["blockNumber"]),
    )


@dataclass
class ForeignLedger:
    registry: Contract
    ledger: Contract
    doc: Doc  # a receipt for 1e9 units between two fresh keys, anchored on ``ledger``
    pinned: TrustedDeployment  # what a fooled auditor would pin: the forger's own


def foreign_ledger(
    chain: Chain, forger: LocalAccount, keys: tuple[LocalAccount, LocalAccount]
) -> ForeignLedger:
    """Deploy a registry and a ledger of the forger's own, admit two fresh keys as consumer
    and provider, and anchor a receipt between them."""
    consumer, provider = keys
    registry, _ = chain.deploy("ParticipantRegistry", forger.address, sender=forger)
    role = chain.call(registry.functions.OPERATOR_ROLE())
    chain.transact(registry.functions.grantRole(role, forger.address), sender=forger)
    ledger, _ = chain.deploy("EvidenceLedger", registry.address, sender=forger)
    for acct, bit in ((consumer, CONSUMER), (provider, PROVIDER)):
        chain.transact(
            registry.functions.register(acct.address, bit, b"\x01" * 32, "did:forged"),
            sender=forger,
        )
    signed = usage(
        Domain(chain_id=chain.chain_id, verifying_contract=ledger.address), consumer, provider
    )
    doc = anchor_alone(chain, ledger, signed, forger)
    own = TrustedDeployment(
        ledger=ledger.address,
        source="the forger's own",
        chain_id=chain.chain_id,
        registry=registry.address,
    )
    return ForeignLedger(registry, ledger, doc, own)
