"""Helpers for the contract tests: deploy a Tally set, read events, assert reverts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.types import TxReceipt

from service.chain.client import Chain
from service.errors import TransactionReverted
from service.evidence import merkle

OPERATOR_ROLE = bytes.fromhex("97667070c54ef182b0f5858b034beac1b6f3089aa2d3188bb1e8929f4fa9b929")
AUDITOR_ROLE = bytes.fromhex("59a1c48e5837ad7a7f3dcedcbe129bf3249ec4fbf651fd4f5e2600ead39fe2f5")
ARBITER_ROLE = keccak(text="ARBITER_ROLE")
ADMIN_ROLE = bytes(32)

PROVIDER, CONSUMER, SERVICE = 1, 2, 4

# ISettlementVault.RoundStatus
NONE, PROPOSED, DISPUTED, CANCELLED, FINALIZED, CLOSED = range(6)
# IParticipantRegistry.Status
UNREGISTERED, ACTIVE, SUSPENDED = range(3)

CHALLENGE_WINDOW = 3_600
CLAIM_EXPIRY = 30 * 86_400
WITHDRAWAL_DELAY = 7 * 86_400
DAY = 86_400
POLICY = keccak(text="policy: by output")
ONE = 10**18
TX_GAS = 3_000_000


# --- evidence log -----------------------------------------------------------------------


def leaves(n: int, salt: int = 0) -> list[bytes]:
    """``n`` distinct leaf hashes."""
    return [merkle.leaf_hash(f"entry-{salt}-{i}".encode()) for i in range(n)]


# --- chain helpers ----------------------------------------------------------------------


def events(contract: Contract, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
    """Decoded ``name`` events of ``contract`` in ``receipt``, as plain dicts of args."""
    event = getattr(contract.events, name)()
    out = []
    for log in receipt["logs"]:
        if log["address"] != contract.address:
            continue
        try:
            decoded = event.process_log(log)
        except Exception:
            continue
        out.append(dict(decoded["args"]))
    return out


def one_event(contract: Contract, receipt: TxReceipt, name: str) -> dict[str, Any]:
    found = events(contract, receipt, name)
    assert len(found) == 1, f"expected one {name} event, got {found}"
    return found[0]


def _norm(value: Any) -> Any:
    """Decoded error args give addresses in lower case: compare them that way."""
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    return value


def expect_revert(
    action: Callable[[], Any], name: str, args: tuple[Any, ...] | None = None
) -> TransactionReverted:
    """Run ``action``; require a revert with custom error ``name`` (and ``args`` if given)."""
    with pytest.raises(TransactionReverted) as info:
        action()
    err = info.value
    assert err.error_name == name, f"expected {name}{args}, got {err.error_name}{err.error_args}"
    if args is not None:
        got = tuple(_norm(a) for a in err.error_args)
        want = tuple(_norm(a) for a in args)
        assert got == want, f"{name}: args {err.error_args} != {args}"
    return err


def deploy_revert(
    chain: Chain, name: str, *args: Any, sender: LocalAccount
) -> tuple[str | None, tuple[Any, ...]]:
    """Decoded revert of a constructor (nothing is deployed)."""
    try:
        chain.deploy(name, *args, sender=sender)
    except TransactionReverted as err:
        return err.error_name, err.error_args
    raise AssertionError(f"constructor of {name} did not revert")


@dataclass
class Tally:
    """One deployed contract set on a chain, with named accounts."""

    chain: Chain
    registry: Contract
    ledger: Contract
    token: Contract
    vault: Contract
    admin: LocalAccount
    operator: LocalAccount
    auditor: LocalAccount
    provider: LocalAccount
    consumer: LocalAccount
    outsider: LocalAccount
    arbiter: LocalAccount
    consumer2: LocalAccount

    def tx(self, fn: Any, sender: LocalAccount | None = None) -> TxReceipt:
        """Send ``fn`` (from the operator by default) with a fixed gas limit: no estimate, so
        one EVM run per transaction; a revert is mined and replayed by the client to decode
        it, which the tests rely on as much as on reverts caught before sending."""
        return self.chain.transact(fn, sender=sender or self.operator, gas=TX_GAS)

    def call(self, fn: Any) -> Any:
        return self.chain.call(fn)

    def now(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    def fund(
        self, amount: int, payer: LocalAccount | None = None, *, account: str | None = None
    ) -> TxReceipt:
        """Mint ``amount`` to ``payer`` (the consumer by default) and deposit it into its own
        free balance, or into ``account``'s (``depositFor``)."""
        payer = payer or self.consumer
        self.tx(self.token.functions.mint(payer.address, amount), self.admin)
        self.tx(self.token.functions.approve(self.vault.address, amount), payer)
        if account is None:
            return self.tx(self.vault.functions.deposit(amount), payer)
        return self.tx(self.vault.functions.depositFor(account, amount), payer)

    def anchor_first(self, size: int = 4) -> TxReceipt:
        return self.tx(
            self.ledger.functions.anchor(size, merkle.root_from_leaf_hashes(leaves(size)), [])
        )

    def settled_until(self) -> int:
        return int(self.call(self.vault.functions.settledUntil()))

    def propose_fn(
        self,
        round_id: int,
        root: bytes,
        total: int,
        *,
        debits: list[tuple[str, int]] | None = None,
        period: tuple[int, int] | None = None,
        seq: int = 0,
        policy: bytes = POLICY,
        uri: str = "ipfs://statement",
    ) -> Any:
        """``propose`` call; by default the consumer funds all of ``total`` and the period is
        the day after ``settledUntil()``."""
        if debits is None:
            debits = [(self.consumer.address, total)]
        if period is None:
            start = self.settled_until()
            period = (start, start + DAY)
        return self.vault.functions.propose(
            round_id, root, total, seq, policy, period[0], period[1], debits, uri
        )

    def propose(self, round_id: int, root: bytes, total: int, **kw: Any) -> TxReceipt:
        return self.tx(self.propose_fn(round_id, root, total, **kw))

    def finalize(self, round_id: int) -> TxReceipt:
        return self.tx(self.vault.functions.finalize(round_id), self.outsider)


def deploy(
    chain: Chain,
    *,
    challenge_window: int = CHALLENGE_WINDOW,
    claim_expiry: int = CLAIM_EXPIRY,
    withdrawal_delay: int = WITHDRAWAL_DELAY,
    token_name: str = "DemoToken",
) -> Tally:
    """Registry, ledger, token and vault; roles granted (operator, auditor, arbiter);
    provider and two consumers registered."""
    admin, operator, auditor, provider, consumer, outsider, arbiter, consumer2 = chain.accounts[:8]
    registry, _ = chain.deploy("ParticipantRegistry", admin.address, sender=admin)
    chain.transact(registry.functions.grantRole(OPERATOR_ROLE, operator.address), sender=admin)
    chain.transact(registry.functions.grantRole(AUDITOR_ROLE, auditor.address), sender=admin)
    chain.transact(registry.functions.grantRole(ARBITER_ROLE, arbiter.address), sender=admin)
    ledger, _ = chain.deploy("EvidenceLedger", registry.address, sender=admin)
    if token_name == "DemoToken":
        token, _ = chain.deploy("DemoToken", "Demo", "DEMO", admin.address, sender=admin)
    else:
        token, _ = chain.deploy(token_name, sender=admin)
    vault, _ = chain.deploy(
        "SettlementVault",
        token.address,
        registry.address,
        ledger.address,
        challenge_window,
        claim_expiry,
        withdrawal_delay,
        sender=admin,
    )
    chain.transact(
        registry.functions.register(provider.address, PROVIDER, b"\x01" * 32, "ipfs://p"),
        sender=operator,
    )
    chain.transact(
        registry.functions.register(consumer.address, CONSUMER, b"\x02" * 32, "ipfs://c"),
        sender=operator,
    )
    chain.transact(
        registry.functions.register(consumer2.address, CONSUMER, b"\x03" * 32, "ipfs://c2"),
        sender=operator,
    )
    return Tally(
        chain=chain,
        registry=registry,
        ledger=ledger,
        token=token,
        vault=vault,
        admin=admin,
        operator=operator,
        auditor=auditor,
        provider=provider,
        consumer=consumer,
        outsider=outsider,
        arbiter=arbiter,
        consumer2=consumer2,
    )
