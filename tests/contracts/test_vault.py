"""SettlementVault: per-depositor balances and withdrawals with notice; propose with debits over
one timeline of periods; challenge with standing, resolve by the arbiter, cancel in the window;
finalize; claim and claimMany under the payout cap; sweep back to the funders; pause."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.types import TxReceipt

from service.chain.client import Chain
from service.chain.deploy import deploy_tally
from service.settlement.payout_tree import PayoutEntry, PayoutTree, build_payout_tree
from tests.contracts.helpers import (
    ADMIN_ROLE,
    ARBITER_ROLE,
    CANCELLED,
    CHALLENGE_WINDOW,
    CLAIM_EXPIRY,
    CLOSED,
    DAY,
    DISPUTED,
    FINALIZED,
    NONE,
    ONE,
    OPERATOR_ROLE,
    POLICY,
    PROPOSED,
    WITHDRAWAL_DELAY,
    Tally,
    deploy,
    deploy_revert,
    events,
    expect_revert,
    one_event,
)

ZERO = "0x" + "00" * 20
FINDING = keccak(text="tally audit settlement --json: payouts do not match the statement")
RULING = keccak(text="ruling: the finding stands")
UINT120_MAX = 2**120 - 1

# ISettlementVault.Round as returned by round(): field positions
ROOT, POLICY_HASH, TOTAL, PAID, STATUS, SEQ, DEADLINE, FINALIZED_AT, START, END, URI = range(11)


def payee(i: int, salt: str = "") -> str:
    """A fresh address (no key, no balance) for payee ``i``."""
    return to_checksum_address(keccak(text=f"payee-{salt}-{i}")[:20])


def tree_of(round_id: int, amounts: Sequence[int], salt: str = "") -> PayoutTree:
    return build_payout_tree(
        round_id=round_id, payouts={payee(i, salt): a for i, a in enumerate(amounts)}
    )


def entry_paying(tree: PayoutTree, amount: int) -> PayoutEntry:
    (found,) = [e for e in tree.entries if e.amount == amount]
    return found


def claim_fn(t: Tally, round_id: int, e: PayoutEntry, *, amount: int | None = None) -> Any:
    return t.vault.functions.claim(
        round_id, e.index, e.account, e.amount if amount is None else amount, list(e.proof)
    )


def ensure_checkpoint(t: Tally) -> None:
    if t.call(t.ledger.functions.count()) == 0:
        t.anchor_first()


def finalized_round(
    t: Tally,
    round_id: int,
    tree: PayoutTree,
    *,
    total: int | None = None,
    extra: int = 0,
    debits: list[tuple[str, int]] | None = None,
) -> None:
    """Fund the consumer (``total + extra``, unless ``debits`` name who pays), propose
    ``tree`` and finalize it after the window."""
    ensure_checkpoint(t)
    total = tree.total if total is None else total
    if debits is None:
        t.fund(total + extra)
    t.propose(round_id, tree.root, total, debits=debits)
    t.chain.increase_time(CHALLENGE_WINDOW)
    t.finalize(round_id)


def proposed_round(t: Tally, round_id: int = 1, total: int = 50) -> None:
    ensure_checkpoint(t)
    t.fund(total)
    t.propose(round_id, keccak(text=f"root-{round_id}"), total)


def balance(t: Tally, who: str) -> int:
    return int(t.call(t.token.functions.balanceOf(who)))


def free(t: Tally, who: str) -> int:
    return int(t.call(t.vault.functions.balanceOf(who)))


def unallocated(t: Tally) -> int:
    return int(t.call(t.vault.functions.unallocated()))


def rnd(t: Tally, round_id: int) -> tuple[Any, ...]:
    return tuple(t.call(t.vault.functions.round(round_id)))


def status(t: Tally, round_id: int) -> int:
    return int(rnd(t, round_id)[STATUS])


def pending(t: Tally) -> tuple[bool, int]:
    got = t.call(t.vault.functions.pendingRound())
    return bool(got[0]), int(got[1])


def challenge_fn(t: Tally, round_id: int, e: PayoutEntry | None = None) -> Any:
    if e is None:
        return t.vault.functions.challenge(round_id, FINDING, 0, 0, [])
    return t.vault.functions.challenge(round_id, FINDING, e.index, e.amount, list(e.proof))


def resolve(t: Tally, round_id: int, upheld: bool) -> TxReceipt:
    return t.tx(t.vault.functions.resolve(round_id, upheld, RULING), t.arbiter)


def vault_event_names(t: Tally, receipt: TxReceipt) -> list[str]:
    """Names of the vault's events in ``receipt``, in log order."""
    by_topic = {
        keccak(text=f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"): item["name"]
        for item in t.vault.abi
        if item["type"] == "event"
    }
    return [
        by_topic[bytes(log["topics"][0])]
        for log in receipt["logs"]
        if log["address"] == t.vault.address
    ]


def conserved(t: Tally, round_ids: Sequence[int]) -> bool:
    """The vault holds exactly the free balances plus every live round's unpaid rest."""
    live = 0
    for rid in round_ids:
        r = rnd(t, rid)
        if r[STATUS] in (PROPOSED, DISPUTED, FINALIZED):
            live += r[TOTAL] - r[PAID]
    return balance(t, t.vault.address) == unallocated(t) + live


# --- construction ---------------------------------------------------------------------------


def test_constructor_sets_immutables(tally: Tally) -> None:
    v = tally.vault.functions
    assert tally.call(v.token()) == tally.token.address
    assert tally.call(v.registry()) == tally.registry.address
    assert tally.call(v.ledger()) == tally.ledger.address
    assert tally.call(v.challengeWindow()) == CHALLENGE_WINDOW
    assert tally.call(v.claimExpiry()) == CLAIM_EXPIRY
    assert tally.call(v.withdrawalDelay()) == WITHDRAWAL_DELAY
    assert tally.call(v.unallocated()) == 0
    assert tally.call(v.settledUntil()) == 0
    assert pending(tally) == (False, 0)
    assert tally.call(v.paused()) is False


def test_constructor_zero_address_reverts(chain: Chain, tally: Tally) -> None:
    addrs = [tally.token.address, tally.registry.address, tally.ledger.address]
    for k in range(3):
        args = [ZERO if j == k else a for j, a in enumerate(addrs)]
        got = deploy_revert(chain, "SettlementVault", *args, 0, 0, 0, sender=tally.admin)
        assert got == ("SettlementVaultZeroAddress", ())


def test_registry_exposes_the_arbiter_role(tally: Tally) -> None:
    assert tally.call(tally.registry.functions.ARBITER_ROLE()) == ARBITER_ROLE
    assert tally.call(tally.registry.functions.hasRole(ARBITER_ROLE, tally.arbiter.address))


# --- deposits -------------------------------------------------------------------------------


def test_deposit_credits_own_balance_and_emits(tally: Tally) -> None:
    receipt = tally.fund(7 * ONE)
    assert one_event(tally.vault, receipt, "Deposited") == {
        "account": tally.consumer.address,
        "payer": tally.consumer.address,
        "amount": 7 * ONE,
    }
    assert free(tally, tally.consumer.address) == 7 * ONE
    assert unallocated(tally) == 7 * ONE
    assert balance(tally, tally.vault.address) == 7 * ONE


def test_deposit_for_credits_the_named_account(tally: Tally) -> None:
    receipt = tally.fund(5, payer=tally.operator, account=tally.consumer.address)
    assert one_event(tally.vault, receipt, "Deposited") == {
        "account": tally.consumer.address,
        "payer": tally.operator.address,
        "amount": 5,
    }
    assert free(tally, tally.consumer.address) == 5
    assert free(tally, tally.operator.address) == 0
    tally.fund(3)
    assert free(tally, tally.consumer.address) == 8 == unallocated(tally)


def test_deposit_zero_or_for_zero_account_reverts(tally: Tally) -> None:
    v = tally.vault.functions
    expect_revert(lambda: tally.tx(v.deposit(0), tally.consumer), "SettlementVaultZeroAmount", ())
    expect_revert(
        lambda: tally.tx(v.depositFor(tally.consumer.address, 0), tally.operator),
        "SettlementVaultZeroAmount",
        (),
    )
    expect_revert(
        lambda: tally.tx(v.depositFor(ZERO, 5), tally.operator), "SettlementVaultZeroAccount", ()
    )


def test_deposit_without_allowance_reverts(tally: Tally) -> None:
    tally.tx(tally.token.functions.mint(tally.consumer.address, 10), tally.admin)
    expect_revert(
        lambda: tally.tx(tally.vault.functions.deposit(10), tally.consumer),
        "ERC20InsufficientAllowance",
        (tally.vault.address, 0, 10),
    )


# --- withdrawals ----------------------------------------------------------------------------


def test_request_withdrawal_records_notice_replaces_and_cancels(tally: Tally) -> None:
    v = tally.vault.functions
    who = tally.consumer.address
    tally.fund(100)
    receipt = tally.tx(v.requestWithdrawal(60), tally.consumer)
    at = tally.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] + WITHDRAWAL_DELAY
    assert one_event(tally.vault, receipt, "WithdrawalRequested") == {
        "account": who,
        "amount": 60,
        "availableAt": at,
    }
    assert tuple(tally.call(v.pendingWithdrawal(who))) == (60, at)
    receipt = tally.tx(v.requestWithdrawal(80), tally.consumer)  # replaces, with a new notice
    at2 = tally.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] + WITHDRAWAL_DELAY
    assert tuple(tally.call(v.pendingWithdrawal(who))) == (80, at2)
    receipt = tally.tx(v.requestWithdrawal(0), tally.consumer)  # cancels
    assert one_event(tally.vault, receipt, "WithdrawalRequested") == {
        "account": who,
        "amount": 0,
        "availableAt": 0,
    }
    assert tuple(tally.call(v.pendingWithdrawal(who))) == (0, 0)
    expect_revert(
        lambda: tally.tx(v.withdraw(), tally.consumer),
        "SettlementVaultNoWithdrawalRequest",
        (who,),
    )
    assert free(tally, who) == 100


def test_consumer_withdraws_unspent_deposit_after_notice(tally: Tally) -> None:
    """The consumer gets back what no round took, but only after the notice, and the money
    stays billable during it: a round proposed in the notice still debits it."""
    v = tally.vault.functions
    who = tally.consumer.address
    tally.anchor_first()
    tally.fund(100)
    receipt = tally.tx(v.requestWithdrawal(100), tally.consumer)
    at = tally.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] + WITHDRAWAL_DELAY
    expect_revert(
        lambda: tally.tx(v.withdraw(), tally.consumer),
        "SettlementVaultWithdrawalNotReady",
        (who, at),
    )
    tree = tree_of(1, [25, 35])
    tally.propose(1, tree.root, tree.total)  # bills the consumer during the notice
    assert free(tally, who) == 40
    tally.chain.increase_time(WITHDRAWAL_DELAY)
    receipt = tally.tx(v.withdraw(), tally.consumer)
    assert one_event(tally.vault, receipt, "Withdrawn") == {"account": who, "amount": 40}
    assert events(tally.token, receipt, "Transfer") == [
        {"from": tally.vault.address, "to": who, "value": 40}
    ]
    assert balance(tally, who) == 40
    assert free(tally, who) == 0
    assert tuple(tally.call(v.pendingWithdrawal(who))) == (0, 0)
    assert balance(tally, tally.vault.address) == 60 == unallocated(tally) + tree.total
    expect_revert(
        lambda: tally.tx(v.withdraw(), tally.consumer), "SettlementVaultNoWithdrawalRequest", (who,)
    )


def test_withdraw_with_nothing_left_reverts(tally: Tally) -> None:
    v = tally.vault.functions
    who = tally.consumer.address
    tally.anchor_first()
    tally.fund(30)
    tally.tx(v.requestWithdrawal(30), tally.consumer)
    tally.propose(1, keccak(text="root"), 30)  # takes all of it
    tally.chain.increase_time(WITHDRAWAL_DELAY)
    expect_revert(
        lambda: tally.tx(v.withdraw(), tally.consumer), "SettlementVaultNothingToWithdraw", (who,)
    )
    requested, _ = tally.call(v.pendingWithdrawal(who))
    assert requested == 30  # the request stays


def test_withdraw_pays_only_the_request_when_balance_is_larger(tally: Tally) -> None:
    v = tally.vault.functions
    tally.fund(100)
    tally.tx(v.requestWithdrawal(30), tally.consumer)
    tally.chain.increase_time(WITHDRAWAL_DELAY)
    receipt = tally.tx(v.withdraw(), tally.consumer)
    assert one_event(tally.vault, receipt, "Withdrawn")["amount"] == 30
    assert free(tally, tally.consumer.address) == 70 == unallocated(tally)


# --- propose --------------------------------------------------------------------------------


def test_propose_debits_funders_and_emits(tally: Tally) -> None:
    tally.anchor_first()
    tally.fund(100)
    tally.fund(50, payer=tally.consumer2)
    a, b = sorted([tally.consumer.address, tally.consumer2.address], key=str.lower)
    debits = [(a, 40), (b, 20)]
    root = keccak(text="root")
    fn = tally.propose_fn(9, root, 60, debits=debits, period=(1_000, 2_000), uri="ipfs://r9")
    receipt = tally.tx(fn)
    deadline = tally.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] + CHALLENGE_WINDOW
    assert vault_event_names(tally, receipt) == ["RoundProposed", "RoundDebited", "RoundDebited"]
    assert one_event(tally.vault, receipt, "RoundProposed") == {
        "roundId": 9,
        "payoutRoot": root,
        "total": 60,
        "evidenceSeq": 0,
        "policyHash": POLICY,
        "periodStart": 1_000,
        "periodEnd": 2_000,
        "challengeDeadline": deadline,
    }
    assert events(tally.vault, receipt, "RoundDebited") == [
        {"roundId": 9, "account": a, "amount": 40},
        {"roundId": 9, "account": b, "amount": 20},
    ]
    assert rnd(tally, 9) == (
        root,
        POLICY,
        60,
        0,
        PROPOSED,
        0,
        deadline,
        0,
        1_000,
        2_000,
        "ipfs://r9",
    )
    assert [tuple(d) for d in tally.call(tally.vault.functions.funders(9))] == debits
    assert tally.call(tally.vault.functions.debitOf(9, a)) == 40
    assert tally.call(tally.vault.functions.debitOf(9, tally.outsider.address)) == 0
    amounts = {tally.consumer.address: 100, tally.consumer2.address: 50}
    assert free(tally, a) == amounts[a] - 40
    assert free(tally, b) == amounts[b] - 20
    assert unallocated(tally) == 90
    assert balance(tally, tally.vault.address) == 150
    assert tally.settled_until() == 2_000
    assert pending(tally) == (True, 9)


def test_propose_by_non_operator_reverts(tally: Tally) -> None:
    tally.anchor_first()
    tally.fund(100)
    for sender in (tally.admin, tally.auditor, tally.arbiter, tally.consumer):
        expect_revert(
            lambda s=sender: tally.tx(tally.propose_fn(1, b"\x01" * 32, 1), s),
            "SettlementVaultUnauthorizedAccount",
            (sender.address, OPERATOR_ROLE),
        )


def test_propose_reverts_by_name(tally: Tally) -> None:
    root = b"\x01" * 32
    c = tally.consumer.address
    expect_revert(lambda: tally.propose(1, root, 1), "SettlementVaultUnknownCheckpoint", (0, 0))
    tally.anchor_first()
    expect_revert(
        lambda: tally.propose(1, root, 1, seq=1), "SettlementVaultUnknownCheckpoint", (1, 1)
    )
    expect_revert(lambda: tally.propose(1, root, 0), "SettlementVaultZeroAmount", ())
    expect_revert(
        lambda: tally.propose(1, root, UINT120_MAX + 1),
        "SettlementVaultTotalTooLarge",
        (UINT120_MAX + 1, UINT120_MAX),
    )
    expect_revert(lambda: tally.propose(1, bytes(32), 5), "SettlementVaultZeroPayoutRoot", ())
    for period in ((10, 10), (11, 10)):
        expect_revert(
            lambda p=period: tally.propose(1, root, 5, period=p),
            "SettlementVaultInvalidPeriod",
            period,
        )
    expect_revert(lambda: tally.propose(1, root, 5, debits=[]), "SettlementVaultNoDebits", ())
    expect_revert(
        lambda: tally.propose(1, root, 5), "SettlementVaultInsufficientBalance", (c, 5, 0)
    )
    tally.fund(100)
    tally.fund(100, payer=tally.consumer2)
    lo, hi = sorted([c, tally.consumer2.address], key=str.lower)
    expect_revert(
        lambda: tally.propose(1, root, 5, debits=[(ZERO, 5)]),
        "SettlementVaultDebitsNotAscending",
        (ZERO, ZERO),
    )
    expect_revert(
        lambda: tally.propose(1, root, 10, debits=[(hi, 5), (lo, 5)]),
        "SettlementVaultDebitsNotAscending",
        (hi, lo),
    )
    expect_revert(
        lambda: tally.propose(1, root, 10, debits=[(lo, 5), (lo, 5)]),
        "SettlementVaultDebitsNotAscending",
        (lo, lo),
    )
    expect_revert(
        lambda: tally.propose(1, root, 5, debits=[(lo, 5), (hi, 0)]),
        "SettlementVaultZeroDebit",
        (hi,),
    )
    expect_revert(
        lambda: tally.propose(1, root, 101, debits=[(lo, 101)]),
        "SettlementVaultInsufficientBalance",
        (lo, 101, 100),
    )
    expect_revert(
        lambda: tally.propose(1, root, 10, debits=[(lo, 4), (hi, 5)]),
        "SettlementVaultDebitsMismatch",
        (9, 10),
    )
    expect_revert(
        lambda: tally.propose(1, root, 10, debits=[(lo, 6), (hi, 5)]),
        "SettlementVaultDebitsMismatch",
        (11, 10),
    )
    tally.propose(1, root, 100)  # all of the consumer's balance
    tally.chain.increase_time(CHALLENGE_WINDOW)
    tally.finalize(1)
    expect_revert(lambda: tally.propose(1, root, 1), "SettlementVaultRoundExists", (1,))
    assert unallocated(tally) == 100  # the failed proposals took nothing


def test_operator_cannot_fund_round_with_another_consumers_deposit(tally: Tally) -> None:
    """The vault holds 110, but a round billed to the consumer can take only the consumer's
    10: the other consumer's deposit is out of reach; naming that consumer as funder instead
    gives it standing to challenge, and the arbiter's upheld ruling refunds it."""
    tally.anchor_first()
    c, other = tally.consumer.address, tally.consumer2.address
    tally.fund(10)
    tally.fund(100, payer=tally.consumer2)
    assert unallocated(tally) == 110
    expect_revert(
        lambda: tally.propose(1, keccak(text="root"), 50, debits=[(c, 50)]),
        "SettlementVaultInsufficientBalance",
        (c, 50, 10),
    )
    assert free(tally, other) == 100
    tally.propose(1, keccak(text="root"), 50, debits=[(other, 50)])
    receipt = tally.tx(challenge_fn(tally, 1), tally.consumer2)  # a funder has standing
    assert one_event(tally.vault, receipt, "RoundChallenged")["challenger"] == other
    receipt = resolve(tally, 1, upheld=True)
    assert one_event(tally.vault, receipt, "RoundRefunded") == {
        "roundId": 1,
        "account": other,
        "amount": 50,
    }
    assert free(tally, other) == 100 and free(tally, c) == 10
    assert unallocated(tally) == 110 == balance(tally, tally.vault.address)


def test_overlapping_round_is_refused(tally: Tally) -> None:
    tally.anchor_first()
    tally.fund(100)
    tally.propose(1, keccak(text="r1"), 10, period=(0, 100))
    expect_revert(
        lambda: tally.propose(2, keccak(text="r2"), 10, period=(100, 200)),
        "SettlementVaultRoundPending",
        (1,),
    )
    tally.chain.increase_time(CHALLENGE_WINDOW)
    tally.finalize(1)
    assert pending(tally) == (False, 0)
    for period in ((50, 150), (99, 100), (0, 100)):
        expect_revert(
            lambda p=period: tally.propose(2, keccak(text="r2"), 10, period=p),
            "SettlementVaultPeriodOverlap",
            (2, period[0], 100),
        )
    tally.propose(2, keccak(text="r2"), 10, period=(100, 200))  # adjacent is fine
    assert tally.settled_until() == 200


def test_cancel_rolls_settled_until_back_to_period_start(tally: Tally) -> None:
    tally.anchor_first()
    tally.fund(100)
    tally.propose(1, keccak(text="r1"), 10, period=(0, 100))
    tally.chain.increase_time(CHALLENGE_WINDOW)
    tally.finalize(1)
    tally.propose(2, keccak(text="r2"), 10, period=(150, 300))  # leaves [100, 150) unsettled
    assert tally.settled_until() == 300
    tally.tx(tally.vault.functions.cancel(2))
    assert tally.settled_until() == 150  # exactly its periodStart
    assert pending(tally) == (False, 0)
    tally.propose(3, keccak(text="r3"), 10, period=(150, 300))  # the corrected round


# --- challenge ------------------------------------------------------------------------------


def _payee_round(t: Tally, round_id: int = 1) -> PayoutTree:
    """A proposed round whose payees are the provider (who has a key) and a fresh address."""
    ensure_checkpoint(t)
    tree = build_payout_tree(round_id=round_id, payouts={t.provider.address: 30, payee(1): 20})
    t.fund(tree.total)
    t.propose(round_id, tree.root, tree.total)
    return tree


def test_challenge_by_auditor_disputes_round(tally: Tally) -> None:
    proposed_round(tally)
    receipt = tally.tx(challenge_fn(tally, 1), tally.auditor)
    assert vault_event_names(tally, receipt) == ["RoundChallenged"]
    assert one_event(tally.vault, receipt, "RoundChallenged") == {
        "roundId": 1,
        "challenger": tally.auditor.address,
        "findingHash": FINDING,
    }
    assert status(tally, 1) == DISPUTED
    assert pending(tally) == (True, 1)


def test_challenge_by_funding_consumer(tally: Tally) -> None:
    proposed_round(tally)
    receipt = tally.tx(challenge_fn(tally, 1), tally.consumer)
    assert (
        one_event(tally.vault, receipt, "RoundChallenged")["challenger"] == tally.consumer.address
    )
    assert status(tally, 1) == DISPUTED


def test_challenge_by_payee_with_its_leaf(tally: Tally) -> None:
    tree = _payee_round(tally)
    mine = tree.entries[tree.index_of(tally.provider.address)]
    receipt = tally.tx(challenge_fn(tally, 1, mine), tally.provider)
    assert (
        one_event(tally.vault, receipt, "RoundChallenged")["challenger"] == tally.provider.address
    )
    assert status(tally, 1) == DISPUTED


def test_griefing_participant_cannot_block_correct_round(tally: Tally) -> None:
    """Without standing nobody can hold a round; a payee who challenges a correct round is
    rejected by the arbiter, cannot challenge again, and the round finalizes after its window."""
    tree = _payee_round(tally)
    mine = tree.entries[tree.index_of(tally.provider.address)]
    other = tree.entries[tree.index_of(payee(1))]
    # An active participant with no part in the round, an outsider, the operator: no standing.
    tally.tx(tally.registry.functions.register(tally.outsider.address, 1, b"\x09" * 32, "ipfs://o"))
    for sender in (tally.outsider, tally.operator, tally.consumer2, tally.arbiter):
        expect_revert(
            lambda s=sender: tally.tx(challenge_fn(tally, 1), s),
            "SettlementVaultNoStanding",
            (1, sender.address),
        )
    # Someone else's leaf, or an inflated amount, proves nothing for the caller.
    for e, amount in ((other, other.amount), (mine, mine.amount + 1)):
        expect_revert(
            lambda e=e, a=amount: tally.tx(
                tally.vault.functions.challenge(1, FINDING, e.index, a, list(e.proof)),
                tally.provider,
            ),
            "SettlementVaultNoStanding",
            (1, tally.provider.address),
        )
    assert status(tally, 1) == PROPOSED
    tally.tx(challenge_fn(tally, 1, mine), tally.provider)  # a payee with standing
    expect_revert(lambda: tally.finalize(1), "SettlementVaultRoundDisputed", (1,))
    receipt = resolve(tally, 1, upheld=False)
    assert vault_event_names(tally, receipt) == ["DisputeResolved"]
    assert one_event(tally.vault, receipt, "DisputeResolved") == {
        "roundId": 1,
        "arbiter": tally.arbiter.address,
        "upheld": False,
        "rulingHash": RULING,
    }
    assert status(tally, 1) == PROPOSED
    expect_revert(
        lambda: tally.tx(challenge_fn(tally, 1, mine), tally.provider),
        "SettlementVaultAlreadyChallenged",
        (1, tally.provider.address),
    )
    deadline = rnd(tally, 1)[DEADLINE]
    expect_revert(lambda: tally.finalize(1), "SettlementVaultChallengeWindowOpen", (1, deadline))
    tally.chain.increase_time(CHALLENGE_WINDOW)
    tally.finalize(1)
    assert status(tally, 1) == FINALIZED
    tally.tx(claim_fn(tally, 1, other), tally.outsider)
    assert balance(tally, other.account) == other.amount


def test_challenge_after_deadline_reverts(tally: Tally) -> None:
    proposed_round(tally)
    deadline = rnd(tally, 1)[DEADLINE]
    tally.chain.increase_time(CHALLENGE_WINDOW)
    assert tally.now() >= deadline
    expect_revert(
        lambda: tally.tx(challenge_fn(tally, 1), tally.auditor),
        "SettlementVaultChallengeWindowClosed",
        (1, deadline),
    )


def test_challenge_wrong_status_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(challenge_fn(tally, 5), tally.auditor),
        "SettlementVaultRoundNotProposed",
        (5, NONE),
    )
    proposed_round(tally)
    tally.tx(challenge_fn(tally, 1), tally.auditor)
    expect_revert(
        lambda: tally.tx(challenge_fn(tally, 1), tally.consumer),
        "SettlementVaultRoundNotProposed",
        (1, DISPUTED),
    )


# --- resolve --------------------------------------------------------------------------------


def test_upheld_challenge_stops_wrong_round(tally: Tally) -> None:
    """A wrong round disputed in its window cannot be finalized or claimed, even after the
    window; the arbiter upholds: the debits come back, the period is open again."""
    tally.anchor_first()
    tally.fund(60)
    wrong = tree_of(1, [10, 20, 30], "wrong")
    tally.propose(1, wrong.root, 60, period=(0, DAY))
    tally.tx(challenge_fn(tally, 1), tally.auditor)
    tally.chain.increase_time(CHALLENGE_WINDOW)
    expect_revert(lambda: tally.finalize(1), "SettlementVaultRoundDisputed", (1,))
    expect_revert(
        lambda: tally.tx(tally.vault.functions.cancel(1)),
        "SettlementVaultChallengeWindowClosed",
        (1, rnd(tally, 1)[DEADLINE]),
    )
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 1, wrong.entries[0]), tally.outsider),
        "SettlementVaultRoundNotFinalized",
        (1, DISPUTED),
    )
    receipt = resolve(tally, 1, upheld=True)
    assert vault_event_names(tally, receipt) == [
        "DisputeResolved",
        "RoundRefunded",
        "RoundCancelled",
    ]
    assert one_event(tally.vault, receipt, "DisputeResolved") == {
        "roundId": 1,
        "arbiter": tally.arbiter.address,
        "upheld": True,
        "rulingHash": RULING,
    }
    assert one_event(tally.vault, receipt, "RoundRefunded") == {
        "roundId": 1,
        "account": tally.consumer.address,
        "amount": 60,
    }
    assert one_event(tally.vault, receipt, "RoundCancelled") == {"roundId": 1}
    assert status(tally, 1) == CANCELLED
    assert free(tally, tally.consumer.address) == 60 == unallocated(tally)
    assert tally.settled_until() == 0 and pending(tally) == (False, 0)
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 1, wrong.entries[0]), tally.outsider),
        "SettlementVaultRoundNotFinalized",
        (1, CANCELLED),
    )
    right = tree_of(2, [10, 20, 30], "right")
    tally.propose(2, right.root, 60, period=(0, DAY))  # the same period, corrected


def test_resolve_by_non_arbiter_reverts(tally: Tally) -> None:
    proposed_round(tally)
    tally.tx(challenge_fn(tally, 1), tally.auditor)
    for sender in (tally.operator, tally.auditor, tally.admin):
        expect_revert(
            lambda s=sender: tally.tx(tally.vault.functions.resolve(1, True, RULING), s),
            "SettlementVaultUnauthorizedAccount",
            (sender.address, ARBITER_ROLE),
        )


def test_resolve_round_not_disputed_reverts(tally: Tally) -> None:
    expect_revert(lambda: resolve(tally, 4, True), "SettlementVaultRoundNotDisputed", (4, NONE))
    proposed_round(tally)
    expect_revert(
        lambda: resolve(tally, 1, False), "SettlementVaultRoundNotDisputed", (1, PROPOSED)
    )
    tally.tx(challenge_fn(tally, 1), tally.auditor)
    resolve(tally, 1, upheld=True)
    expect_revert(
        lambda: resolve(tally, 1, True), "SettlementVaultRoundNotDisputed", (1, CANCELLED)
    )


def test_rejected_challenge_before_deadline_leaves_window_to_others(tally: Tally) -> None:
    proposed_round(tally)
    tally.tx(challenge_fn(tally, 1), tally.consumer)
    resolve(tally, 1, upheld=False)
    tally.tx(challenge_fn(tally, 1), tally.auditor)  # another party with standing
    assert status(tally, 1) == DISPUTED
    resolve(tally, 1, upheld=True)
    assert status(tally, 1) == CANCELLED


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_proposed_refunds_debits_and_emits(tally: Tally) -> None:
    tally.anchor_first()
    tally.fund(50)
    tally.fund(50, payer=tally.consumer2)
    lo, hi = sorted([tally.consumer.address, tally.consumer2.address], key=str.lower)
    tally.propose(1, keccak(text="r"), 70, debits=[(lo, 30), (hi, 40)])
    assert unallocated(tally) == 30
    receipt = tally.tx(tally.vault.functions.cancel(1))
    assert vault_event_names(tally, receipt) == ["RoundRefunded", "RoundRefunded", "RoundCancelled"]
    assert events(tally.vault, receipt, "RoundRefunded") == [
        {"roundId": 1, "account": lo, "amount": 30},
        {"roundId": 1, "account": hi, "amount": 40},
    ]
    assert status(tally, 1) == CANCELLED
    assert free(tally, lo) == 50 == free(tally, hi)
    assert unallocated(tally) == 100
    expect_revert(lambda: tally.propose(1, b"\x01" * 32, 1), "SettlementVaultRoundExists", (1,))
    tally.propose(2, b"\x02" * 32, 50)  # the corrected round, under a new id


def test_cancel_disputed_round_in_window(tally: Tally) -> None:
    proposed_round(tally, total=50)
    tally.tx(challenge_fn(tally, 1), tally.auditor)
    tally.tx(tally.vault.functions.cancel(1))
    assert status(tally, 1) == CANCELLED
    assert unallocated(tally) == 50


def test_operator_cannot_cancel_after_window(tally: Tally) -> None:
    proposed_round(tally)
    deadline = rnd(tally, 1)[DEADLINE]
    tally.chain.increase_time(CHALLENGE_WINDOW)
    expect_revert(
        lambda: tally.tx(tally.vault.functions.cancel(1)),
        "SettlementVaultChallengeWindowClosed",
        (1, deadline),
    )
    tally.finalize(1)
    expect_revert(
        lambda: tally.tx(tally.vault.functions.cancel(1)),
        "SettlementVaultRoundNotCancellable",
        (1, FINALIZED),
    )
    assert status(tally, 1) == FINALIZED


def test_cancel_reverts_by_name(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.vault.functions.cancel(3)),
        "SettlementVaultRoundNotCancellable",
        (3, NONE),
    )
    proposed_round(tally)
    expect_revert(
        lambda: tally.tx(tally.vault.functions.cancel(1), tally.auditor),
        "SettlementVaultUnauthorizedAccount",
        (tally.auditor.address, OPERATOR_ROLE),
    )
    tally.tx(tally.vault.functions.cancel(1))
    expect_revert(
        lambda: tally.tx(tally.vault.functions.cancel(1)),
        "SettlementVaultRoundNotCancellable",
        (1, CANCELLED),
    )


# --- finalize -------------------------------------------------------------------------------


def test_finalize_after_window(tally: Tally) -> None:
    proposed_round(tally)
    deadline = rnd(tally, 1)[DEADLINE]
    expect_revert(lambda: tally.finalize(1), "SettlementVaultChallengeWindowOpen", (1, deadline))
    tally.chain.increase_time(CHALLENGE_WINDOW)
    receipt = tally.finalize(1)  # by anyone
    assert vault_event_names(tally, receipt) == ["RoundFinalized"]
    assert one_event(tally.vault, receipt, "RoundFinalized") == {"roundId": 1}
    finalized_at = tally.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    stored = rnd(tally, 1)
    assert (stored[FINALIZED_AT], stored[STATUS]) == (finalized_at, FINALIZED)
    assert pending(tally) == (False, 0)
    assert tally.settled_until() == stored[END]
    expect_revert(lambda: tally.finalize(1), "SettlementVaultRoundNotProposed", (1, FINALIZED))


def test_finalize_unknown_or_cancelled_round_reverts(tally: Tally) -> None:
    expect_revert(lambda: tally.finalize(4), "SettlementVaultRoundNotProposed", (4, NONE))
    proposed_round(tally)
    tally.tx(tally.vault.functions.cancel(1))
    expect_revert(lambda: tally.finalize(1), "SettlementVaultRoundNotProposed", (1, CANCELLED))


def test_zero_challenge_window_finalizes_at_once(chain: Chain) -> None:
    t = deploy(chain, challenge_window=0)
    proposed_round(t)
    deadline = rnd(t, 1)[DEADLINE]
    expect_revert(
        lambda: t.tx(challenge_fn(t, 1), t.auditor),
        "SettlementVaultChallengeWindowClosed",
        (1, deadline),
    )
    expect_revert(
        lambda: t.tx(t.vault.functions.cancel(1)),
        "SettlementVaultChallengeWindowClosed",
        (1, deadline),
    )
    t.finalize(1)
    assert status(t, 1) == FINALIZED


# --- claim ----------------------------------------------------------------------------------


def test_claim_pays_account_adds_to_paid_and_emits(tally: Tally) -> None:
    tree = tree_of(3, [10 * ONE, 20 * ONE, 30 * ONE])
    finalized_round(tally, 3, tree)
    paid = 0
    for e in tree.entries:
        assert not tally.call(tally.vault.functions.isClaimed(3, e.index))
        receipt = tally.tx(claim_fn(tally, 3, e), tally.outsider)  # anyone may send it
        assert vault_event_names(tally, receipt) == ["Claimed"]
        assert one_event(tally.vault, receipt, "Claimed") == {
            "roundId": 3,
            "account": e.account,
            "amount": e.amount,
        }
        paid += e.amount
        assert balance(tally, e.account) == e.amount
        assert tally.call(tally.vault.functions.isClaimed(3, e.index))
        stored = rnd(tally, 3)
        assert (stored[TOTAL], stored[PAID], stored[STATUS]) == (tree.total, paid, FINALIZED)
    assert balance(tally, tally.vault.address) == 0
    assert unallocated(tally) == 0


def test_claim_twice_reverts(tally: Tally) -> None:
    tree = tree_of(3, [10, 20, 30])
    finalized_round(tally, 3, tree, extra=100)
    e = tree.entries[1]
    tally.tx(claim_fn(tally, 3, e), tally.outsider)
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 3, e), tally.outsider),
        "SettlementVaultAlreadyClaimed",
        (3, e.index),
    )
    assert balance(tally, e.account) == e.amount
    assert rnd(tally, 3)[PAID] == e.amount


def test_claim_wrong_amount_account_or_index_reverts(tally: Tally) -> None:
    tree = tree_of(3, [10, 20, 30, 40])
    finalized_round(tally, 3, tree, extra=1_000)
    e, other = tree.entries[2], tree.entries[0]
    tally.tx(claim_fn(tally, 3, other), tally.outsider)  # its word is non-zero from now on
    v = tally.vault.functions
    cases = [
        (e.index, e.account, e.amount + 1, list(e.proof)),  # more than the leaf says
        (e.index, e.account, e.amount - 1, list(e.proof)),
        (e.index, tally.outsider.address, e.amount, list(e.proof)),  # someone else's account
        (other.index, e.account, e.amount, list(e.proof)),  # another index
        (e.index, e.account, e.amount, list(e.proof)[:-1]),  # short proof
        (e.index, e.account, e.amount, list(other.proof)),  # another leaf's proof
        (e.index, e.account, e.amount, []),
    ]
    for index, account, amount, proof in cases:
        expect_revert(
            lambda i=index, a=account, m=amount, p=proof: tally.tx(
                v.claim(3, i, a, m, p), tally.outsider
            ),
            "SettlementVaultInvalidProof",
            (3, index, account, amount),
        )
    tally.tx(claim_fn(tally, 3, e), tally.outsider)  # the genuine claim still works


def test_claim_with_another_rounds_proof_reverts(tally: Tally) -> None:
    first, second = tree_of(1, [5, 6], "a"), tree_of(2, [7, 8], "b")
    finalized_round(tally, 1, first)
    finalized_round(tally, 2, second)
    e = first.entries[0]
    expect_revert(
        lambda: tally.tx(
            tally.vault.functions.claim(2, e.index, e.account, e.amount, list(e.proof))
        ),
        "SettlementVaultInvalidProof",
        (2, e.index, e.account, e.amount),
    )


def test_claim_before_finalize_reverts(tally: Tally) -> None:
    tree = tree_of(3, [10, 20])
    e = tree.entries[0]
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 3, e)), "SettlementVaultRoundNotFinalized", (3, NONE)
    )
    tally.anchor_first()
    tally.fund(tree.total)
    tally.propose(3, tree.root, tree.total)
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 3, e)), "SettlementVaultRoundNotFinalized", (3, PROPOSED)
    )
    tally.tx(challenge_fn(tally, 3), tally.auditor)
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 3, e)), "SettlementVaultRoundNotFinalized", (3, DISPUTED)
    )
    tally.tx(tally.vault.functions.cancel(3))
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 3, e)), "SettlementVaultRoundNotFinalized", (3, CANCELLED)
    )


def test_claims_plus_sweep_never_exceed_round_total(tally: Tally) -> None:
    """The issue's example: a 10/20/30 tree (60) under a total of 50. Claims of 10 and 20 are
    paid, the 30 claim would bring the round to 60 and reverts; after the claim period the sweep
    returns the other 20 to the funders, pro rata to their debits, and the round pays no more."""
    tree = tree_of(6, [10, 20, 30], "cap")
    tally.anchor_first()
    tally.fund(30)
    tally.fund(20, payer=tally.consumer2)
    lo, hi = sorted([tally.consumer.address, tally.consumer2.address], key=str.lower)
    debit = {tally.consumer.address: 30, tally.consumer2.address: 20}
    finalized_round(tally, 6, tree, total=50, debits=[(lo, debit[lo]), (hi, debit[hi])])
    for amount in (10, 20):
        tally.tx(claim_fn(tally, 6, entry_paying(tree, amount)), tally.outsider)
    big = entry_paying(tree, 30)
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 6, big), tally.outsider),
        "SettlementVaultPayoutExceedsTotal",
        (6, 60, 50),
    )
    assert not tally.call(tally.vault.functions.isClaimed(6, big.index))
    assert rnd(tally, 6)[PAID] == 30
    tally.chain.increase_time(CLAIM_EXPIRY)
    receipt = tally.tx(tally.vault.functions.sweep(6))
    assert vault_event_names(tally, receipt) == ["RoundRefunded", "RoundRefunded", "RoundSwept"]
    assert events(tally.vault, receipt, "RoundRefunded") == [
        {"roundId": 6, "account": lo, "amount": debit[lo] * 20 // 50},
        {"roundId": 6, "account": hi, "amount": debit[hi] * 20 // 50},
    ]
    assert one_event(tally.vault, receipt, "RoundSwept") == {"roundId": 6, "amount": 20}
    assert status(tally, 6) == CLOSED
    assert free(tally, tally.consumer.address) == 12 and free(tally, tally.consumer2.address) == 8
    assert balance(tally, tally.vault.address) == unallocated(tally) == 20
    paid_out = sum(balance(tally, e.account) for e in tree.entries)
    assert paid_out + unallocated(tally) == 50  # claims plus sweep: exactly the round's total
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 6, big), tally.outsider),
        "SettlementVaultRoundNotFinalized",
        (6, CLOSED),
    )
    assert tally.call(tally.vault.functions.isClaimed(6, entry_paying(tree, 10).index))


def test_round_total_above_tree_sum_is_returned_after_claim_period(tally: Tally) -> None:
    tree = tree_of(7, [10, 20, 30], "above")
    finalized_round(tally, 7, tree, total=100)
    for e in tree.entries:
        tally.tx(claim_fn(tally, 7, e), tally.outsider)
    assert rnd(tally, 7)[PAID] == 60
    assert free(tally, tally.consumer.address) == 0
    finalized_at = rnd(tally, 7)[FINALIZED_AT]
    expect_revert(
        lambda: tally.tx(tally.vault.functions.sweep(7)),
        "SettlementVaultClaimPeriodNotOver",
        (7, finalized_at + CLAIM_EXPIRY),
    )
    tally.chain.increase_time(CLAIM_EXPIRY)
    receipt = tally.tx(tally.vault.functions.sweep(7))
    assert one_event(tally.vault, receipt, "RoundRefunded") == {
        "roundId": 7,
        "account": tally.consumer.address,
        "amount": 40,
    }
    assert one_event(tally.vault, receipt, "RoundSwept") == {"roundId": 7, "amount": 40}
    assert free(tally, tally.consumer.address) == 40 == balance(tally, tally.vault.address)


def test_claim_many_pays_once_per_account(tally: Tally) -> None:
    who = payee(0, "many")
    t1 = build_payout_tree(round_id=1, payouts={who: 11, payee(1): 1})
    t2 = build_payout_tree(round_id=2, payouts={who: 22, payee(2): 2, payee(3): 3})
    finalized_round(tally, 1, t1)
    finalized_round(tally, 2, t2)
    e1, e2 = t1.entries[t1.index_of(who)], t2.entries[t2.index_of(who)]
    fn = tally.vault.functions.claimMany(
        [1, 2], [e1.index, e2.index], who, [11, 22], [list(e1.proof), list(e2.proof)]
    )
    receipt = tally.tx(fn, tally.outsider)
    assert events(tally.vault, receipt, "Claimed") == [
        {"roundId": 1, "account": who, "amount": 11},
        {"roundId": 2, "account": who, "amount": 22},
    ]
    transfers = events(tally.token, receipt, "Transfer")
    assert transfers == [{"from": tally.vault.address, "to": who, "value": 33}]
    assert tally.call(tally.vault.functions.isClaimed(1, e1.index))
    assert tally.call(tally.vault.functions.isClaimed(2, e2.index))
    assert (rnd(tally, 1)[PAID], rnd(tally, 2)[PAID]) == (11, 22)
    expect_revert(lambda: tally.tx(fn), "SettlementVaultAlreadyClaimed", (1, e1.index))


def test_claim_many_reverts_as_a_whole(tally: Tally) -> None:
    who = payee(0, "many")
    t1 = build_payout_tree(round_id=1, payouts={who: 11})
    t2 = build_payout_tree(round_id=2, payouts={who: 22, payee(2): 2})
    finalized_round(tally, 1, t1)
    finalized_round(tally, 2, t2, total=20)  # 24 in the tree, 20 in the round
    e1, e2 = t1.entries[0], t2.entries[t2.index_of(who)]
    v = tally.vault.functions
    proofs = [list(e1.proof), list(e2.proof)]
    bad = v.claimMany([1, 2], [e1.index, e2.index], who, [11, 23], proofs)
    expect_revert(lambda: tally.tx(bad), "SettlementVaultInvalidProof", (2, e2.index, who, 23))
    over = v.claimMany([1, 2], [e1.index, e2.index], who, [11, 22], proofs)
    expect_revert(lambda: tally.tx(over), "SettlementVaultPayoutExceedsTotal", (2, 22, 20))
    assert not tally.call(v.isClaimed(1, e1.index))  # the valid first item was rolled back
    assert rnd(tally, 1)[PAID] == 0
    for args in (
        ([], [], who, [], []),
        ([1], [0, 1], who, [11], [list(e1.proof)]),
        ([1], [0], who, [11, 1], [list(e1.proof)]),
        ([1], [0], who, [11], []),
    ):
        expect_revert(lambda a=args: tally.tx(v.claimMany(*a)), "SettlementVaultBadBatch", ())


def test_claim_reentry_from_token_cannot_double_pay(chain: Chain) -> None:
    t = deploy(chain, challenge_window=0, token_name="ReentrantToken")
    tree = tree_of(1, [100, 200])
    t.anchor_first()
    t.tx(t.token.functions.mint(t.consumer.address, 10_000), t.admin)
    t.tx(t.token.functions.approve(t.vault.address, 10_000), t.consumer)
    t.tx(t.vault.functions.deposit(10_000), t.consumer)
    t.propose(1, tree.root, 1_000)
    t.finalize(1)
    e = tree.entries[0]
    call = claim_fn(t, 1, e)
    t.tx(t.token.functions.arm(t.vault.address, call._encode_transaction_data()), t.admin)
    receipt = t.tx(call, t.outsider)
    (attempt,) = events(t.token, receipt, "ReentryAttempted")
    assert attempt["success"] is False
    selector = keccak(text="SettlementVaultAlreadyClaimed(uint256,uint256)")[:4]
    assert attempt["returnData"][:4] == selector
    assert balance(t, e.account) == e.amount  # paid once
    assert rnd(t, 1)[PAID] == e.amount
    assert balance(t, t.vault.address) == 10_000 - e.amount


def test_withdraw_reentry_from_token_cannot_double_pay(chain: Chain) -> None:
    t = deploy(chain, withdrawal_delay=0, token_name="ReentrantToken")
    t.tx(t.token.functions.mint(t.consumer.address, 100), t.admin)
    t.tx(t.token.functions.approve(t.vault.address, 100), t.consumer)
    t.tx(t.vault.functions.deposit(100), t.consumer)
    t.tx(t.vault.functions.requestWithdrawal(40), t.consumer)
    call = t.vault.functions.withdraw()
    # the token re-enters as itself: no request of its own, so the nested withdraw fails
    t.tx(t.token.functions.arm(t.vault.address, call._encode_transaction_data()), t.admin)
    receipt = t.tx(call, t.consumer)
    (attempt,) = events(t.token, receipt, "ReentryAttempted")
    assert attempt["success"] is False
    assert balance(t, t.consumer.address) == 40
    assert free(t, t.consumer.address) == 60 == balance(t, t.vault.address)


# --- sweep ----------------------------------------------------------------------------------


def test_sweep_splits_rest_pro_rata_with_remainder_in_address_order(tally: Tally) -> None:
    """Three funders of 1 each, one unit paid: the rest of 2 floors to 0 each, and the
    remainder goes one unit each to the first two funders by ascending address."""
    payers = [tally.consumer, tally.consumer2, tally.outsider]
    for p in payers:
        tally.fund(1, payer=p)
    funders = sorted((p.address for p in payers), key=str.lower)
    tree = tree_of(5, [1], "rem")
    finalized_round(tally, 5, tree, total=3, debits=[(a, 1) for a in funders])
    tally.tx(claim_fn(tally, 5, tree.entries[0]), tally.outsider)
    tally.chain.increase_time(CLAIM_EXPIRY)
    receipt = tally.tx(tally.vault.functions.sweep(5))
    assert events(tally.vault, receipt, "RoundRefunded") == [
        {"roundId": 5, "account": funders[0], "amount": 1},
        {"roundId": 5, "account": funders[1], "amount": 1},
    ]
    assert [free(tally, a) for a in funders] == [1, 1, 0]
    assert balance(tally, tally.vault.address) == 2 == unallocated(tally)


def test_sweep_with_everything_paid_closes_with_zero(tally: Tally) -> None:
    tree = tree_of(4, [10, 20])
    finalized_round(tally, 4, tree)
    for e in tree.entries:
        tally.tx(claim_fn(tally, 4, e), tally.outsider)
    tally.chain.increase_time(CLAIM_EXPIRY)
    receipt = tally.tx(tally.vault.functions.sweep(4))
    assert vault_event_names(tally, receipt) == ["RoundSwept"]
    assert one_event(tally.vault, receipt, "RoundSwept") == {"roundId": 4, "amount": 0}
    assert status(tally, 4) == CLOSED


def test_sweep_reverts_by_name(tally: Tally) -> None:
    tree = tree_of(4, [10, 20, 30])
    v = tally.vault.functions
    expect_revert(lambda: tally.tx(v.sweep(4)), "SettlementVaultRoundNotFinalized", (4, NONE))
    finalized_round(tally, 4, tree)
    tally.chain.increase_time(CLAIM_EXPIRY)
    expect_revert(
        lambda: tally.tx(v.sweep(4), tally.admin),
        "SettlementVaultUnauthorizedAccount",
        (tally.admin.address, OPERATOR_ROLE),
    )
    tally.tx(v.sweep(4))
    expect_revert(lambda: tally.tx(v.sweep(4)), "SettlementVaultRoundNotFinalized", (4, CLOSED))


# --- every transition emits its event -------------------------------------------------------


def test_every_transition_emits_its_event(tally: Tally) -> None:
    """One round through every transition, one with the rest: each call's vault events, in
    order, are exactly the ones its transition announces."""
    v = tally.vault.functions
    tally.anchor_first()
    tree = tree_of(1, [10, 20], "all")

    def names(fn: Any, sender: LocalAccount | None = None) -> list[str]:
        return vault_event_names(tally, tally.tx(fn, sender))

    assert vault_event_names(tally, tally.fund(100)) == ["Deposited"]
    assert names(v.requestWithdrawal(5), tally.consumer) == ["WithdrawalRequested"]
    assert names(tally.propose_fn(1, tree.root, 30)) == ["RoundProposed", "RoundDebited"]
    assert names(challenge_fn(tally, 1), tally.auditor) == ["RoundChallenged"]
    assert names(v.resolve(1, False, RULING), tally.arbiter) == ["DisputeResolved"]
    assert names(challenge_fn(tally, 1), tally.consumer) == ["RoundChallenged"]
    assert names(v.resolve(1, True, RULING), tally.arbiter) == [
        "DisputeResolved",
        "RoundRefunded",
        "RoundCancelled",
    ]
    assert names(tally.propose_fn(2, keccak(text="x"), 30)) == ["RoundProposed", "RoundDebited"]
    assert names(v.cancel(2)) == ["RoundRefunded", "RoundCancelled"]
    fixed = tree_of(3, [10, 20], "all")
    assert names(tally.propose_fn(3, fixed.root, 40)) == ["RoundProposed", "RoundDebited"]
    tally.chain.increase_time(max(CHALLENGE_WINDOW, WITHDRAWAL_DELAY))
    assert names(v.finalize(3), tally.outsider) == ["RoundFinalized"]
    e = fixed.entries[0]
    assert names(claim_fn(tally, 3, e), tally.outsider) == ["Claimed"]
    e = fixed.entries[1]
    assert names(
        v.claimMany([3], [e.index], e.account, [e.amount], [list(e.proof)]), tally.outsider
    ) == ["Claimed"]
    assert names(v.withdraw(), tally.consumer) == ["Withdrawn"]
    tally.chain.increase_time(CLAIM_EXPIRY)
    assert names(v.sweep(3)) == ["RoundRefunded", "RoundSwept"]
    assert conserved(tally, [1, 2, 3])


# --- pause ----------------------------------------------------------------------------------


def test_pause_stops_money_paths_and_unpause_resumes(tally: Tally) -> None:
    tree = tree_of(3, [10, 20])
    finalized_round(tally, 3, tree, extra=100)
    tally.tx(tally.vault.functions.requestWithdrawal(5), tally.consumer)
    tally.chain.increase_time(max(CLAIM_EXPIRY, WITHDRAWAL_DELAY))  # sweep and withdraw due
    proposed_round(tally, round_id=8, total=10)
    v = tally.vault.functions
    receipt = tally.tx(v.pause(), tally.admin)
    assert one_event(tally.vault, receipt, "Paused") == {"account": tally.admin.address}
    assert tally.call(v.paused()) is True
    e = tree.entries[0]
    tally.tx(tally.token.functions.mint(tally.consumer.address, 5), tally.admin)
    tally.tx(tally.token.functions.approve(tally.vault.address, 5), tally.consumer)
    stopped = [
        (v.deposit(5), tally.consumer),
        (v.depositFor(tally.consumer2.address, 5), tally.consumer),
        (v.requestWithdrawal(1), tally.consumer),
        (v.withdraw(), tally.consumer),
        (tally.propose_fn(9, b"\x01" * 32, 1), tally.operator),
        (v.claim(3, e.index, e.account, e.amount, list(e.proof)), tally.outsider),
        (v.claimMany([3], [e.index], e.account, [e.amount], [list(e.proof)]), tally.outsider),
        (v.finalize(8), tally.outsider),
        (v.sweep(3), tally.operator),
    ]
    for fn, sender in stopped:
        expect_revert(lambda f=fn, s=sender: tally.tx(f, s), "EnforcedPause", ())
    # views, challenges, rulings and cancels still work
    assert status(tally, 3) == FINALIZED
    assert tally.call(v.isClaimed(3, e.index)) is False
    tally.tx(challenge_fn(tally, 8), tally.auditor)
    resolve(tally, 8, upheld=False)
    tally.tx(v.cancel(8))
    expect_revert(lambda: tally.tx(v.pause(), tally.admin), "EnforcedPause", ())
    receipt = tally.tx(v.unpause(), tally.admin)
    assert one_event(tally.vault, receipt, "Unpaused") == {"account": tally.admin.address}
    tally.tx(claim_fn(tally, 3, e), tally.outsider)
    assert balance(tally, e.account) == e.amount
    tally.tx(v.withdraw(), tally.consumer)
    expect_revert(lambda: tally.tx(v.unpause(), tally.admin), "ExpectedPause", ())


def test_pause_by_non_admin_reverts(tally: Tally) -> None:
    for fn in (tally.vault.functions.pause(), tally.vault.functions.unpause()):
        expect_revert(
            lambda f=fn: tally.tx(f, tally.operator),
            "SettlementVaultUnauthorizedAccount",
            (tally.operator.address, ADMIN_ROLE),
        )


# --- payout trees from service.settlement.payout_tree, end to end ---------------------------


def test_trees_of_1_2_3_7_leaves_claim_fully(tally: Tally) -> None:
    for n in (1, 2, 3, 7):
        tree = tree_of(100 + n, [ONE + i for i in range(n)], salt=f"n{n}")
        finalized_round(tally, 100 + n, tree)
        for e in tree.entries:
            tally.tx(claim_fn(tally, 100 + n, e), tally.outsider)
            assert balance(tally, e.account) == e.amount
    assert balance(tally, tally.vault.address) == 0 == unallocated(tally)


def test_thousand_leaf_tree_claims_at_bitmap_word_edges(tally: Tally) -> None:
    tree = tree_of(77, [ONE + 7 * i for i in range(1_000)], salt="k")
    finalized_round(tally, 77, tree)
    paid = 0
    for i in (0, 255, 256, 511, 999):  # both edges of bitmap words
        e = tree.entries[i]
        tally.tx(claim_fn(tally, 77, e), tally.outsider)
        paid += e.amount
        assert balance(tally, e.account) == e.amount
        assert tally.call(tally.vault.functions.isClaimed(77, i))
    assert not tally.call(tally.vault.functions.isClaimed(77, 1))
    assert not tally.call(tally.vault.functions.isClaimed(77, 257))
    assert rnd(tally, 77)[PAID] == paid


def test_minimal_distributor_pays_the_same_tree(tally: Tally, chain: Chain) -> None:
    tree = tree_of(5, [3, 4, 5])
    mini, _ = chain.deploy(
        "MinimalDistributor", tally.token.address, tree.root, 5, sender=tally.admin
    )
    tally.tx(tally.token.functions.mint(mini.address, tree.total), tally.admin)
    e = tree.entries[1]
    receipt = tally.tx(mini.functions.claim(e.index, e.account, e.amount, list(e.proof)))
    assert one_event(mini, receipt, "Claimed") == {
        "index": e.index,
        "account": e.account,
        "amount": e.amount,
    }
    assert balance(tally, e.account) == e.amount
    expect_revert(
        lambda: tally.tx(mini.functions.claim(e.index, e.account, e.amount, list(e.proof))),
        "MinimalDistributorAlreadyClaimed",
        (e.index,),
    )
    expect_revert(
        lambda: tally.tx(mini.functions.claim(0, e.account, e.amount, list(e.proof))),
        "MinimalDistributorInvalidProof",
        (),
    )


def test_naive_hash_store_records_block(tally: Tally, chain: Chain) -> None:
    store, _ = chain.deploy("NaiveHashStore", sender=tally.admin)
    h = keccak(text="receipt")
    receipt = tally.tx(store.functions.store(h))
    assert tally.call(store.functions.storedAt(h)) == receipt["blockNumber"]


# --- property: random payout sets -----------------------------------------------------------


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    amounts=st.lists(st.integers(1, 10**24), min_size=1, max_size=7),
    total_delta=st.integers(-(10**24), 10**20),
    round_id=st.integers(0, 2**256 - 1),
)
def test_random_payouts_claim_within_total_and_sweep_the_rest(
    tally: Tally, amounts: list[int], total_delta: int, round_id: int
) -> None:
    chain = tally.chain
    snap = chain.snapshot()
    try:
        tree = tree_of(round_id, amounts, salt=str(round_id))
        total = max(1, tree.total + total_delta)
        finalized_round(tally, round_id, tree, total=total)
        paid = 0
        for e in tree.entries:
            if paid + e.amount <= total:
                tally.tx(claim_fn(tally, round_id, e), tally.outsider)
                paid += e.amount
                assert balance(tally, e.account) == e.amount
            else:
                expect_revert(
                    lambda e=e: tally.tx(claim_fn(tally, round_id, e), tally.outsider),
                    "SettlementVaultPayoutExceedsTotal",
                    (round_id, paid + e.amount, total),
                )
            assert conserved(tally, [round_id])
        tally.chain.increase_time(CLAIM_EXPIRY)
        tally.tx(tally.vault.functions.sweep(round_id))
        assert free(tally, tally.consumer.address) == total - paid
        assert balance(tally, tally.vault.address) == total - paid == unallocated(tally)
    finally:
        chain.revert(snap)


# --- deployment -----------------------------------------------------------------------------


def test_deploy_tally_takes_withdrawal_delay_from_network_or_argument(chain: Chain) -> None:
    admin = chain.accounts[0]
    assert chain.network.withdrawal_delay_s == 3_600  # chain-config/embedded.toml
    default = deploy_tally(chain, admin=admin, challenge_window_s=60, claim_expiry_s=120)
    v = default.vault.functions
    assert (chain.call(v.withdrawalDelay()), chain.call(v.challengeWindow())) == (3_600, 60)
    assert chain.call(v.claimExpiry()) == 120
    explicit = deploy_tally(chain, admin=admin, withdrawal_delay_s=0)
    assert chain.call(explicit.vault.functions.withdrawalDelay()) == 0
