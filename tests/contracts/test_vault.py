"""SettlementVault: deposit, propose, challenge, cancel, finalize, claim, sweep, pause."""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.chain.client import Chain
from service.settlement.payout_tree import PayoutEntry, PayoutTree, build_payout_tree
from tests.contracts.helpers import (
    ADMIN_ROLE,
    CANCELLED,
    CHALLENGE_WINDOW,
    CLAIM_EXPIRY,
    DISPUTED,
    FINALIZED,
    NONE,
    ONE,
    OPERATOR_ROLE,
    PROPOSED,
    Tally,
    deploy,
    deploy_revert,
    events,
    expect_revert,
    one_event,
)

ZERO = "0x" + "00" * 20
POLICY = keccak(text="policy: by output")
REASON = keccak(text="payouts do not match the statement")


def payee(i: int, salt: str = "") -> str:
    """A fresh address (no key, no balance) for payee ``i``."""
    return to_checksum_address(keccak(text=f"payee-{salt}-{i}")[:20])


def tree_of(round_id: int, amounts: Sequence[int], salt: str = "") -> PayoutTree:
    return build_payout_tree(
        round_id=round_id, payouts={payee(i, salt): a for i, a in enumerate(amounts)}
    )


def claim_fn(t: Tally, round_id: int, e: PayoutEntry, *, amount: int | None = None) -> object:
    return t.vault.functions.claim(
        round_id, e.index, e.account, e.amount if amount is None else amount, list(e.proof)
    )


def finalized_round(t: Tally, round_id: int, tree: PayoutTree, *, extra: int = 0) -> None:
    """Fund the vault, anchor a checkpoint if none, propose ``tree`` and finalize it."""
    if t.call(t.ledger.functions.count()) == 0:
        t.anchor_first()
    t.fund(tree.total + extra)
    t.propose(round_id, tree.root, tree.total)
    t.chain.increase_time(CHALLENGE_WINDOW)
    t.finalize(round_id)


def balance(t: Tally, who: str) -> int:
    return int(t.call(t.token.functions.balanceOf(who)))


def unallocated(t: Tally) -> int:
    return int(t.call(t.vault.functions.unallocated()))


def status(t: Tally, round_id: int) -> int:
    return int(t.call(t.vault.functions.round(round_id))[7])


# --- construction ---------------------------------------------------------------------------


def test_constructor_sets_immutables(tally: Tally) -> None:
    v = tally.vault
    assert tally.call(v.functions.token()) == tally.token.address
    assert tally.call(v.functions.registry()) == tally.registry.address
    assert tally.call(v.functions.ledger()) == tally.ledger.address
    assert tally.call(v.functions.challengeWindow()) == CHALLENGE_WINDOW
    assert tally.call(v.functions.claimExpiry()) == CLAIM_EXPIRY
    assert tally.call(v.functions.unallocated()) == 0
    assert tally.call(v.functions.paused()) is False


def test_constructor_zero_address_reverts(chain: Chain, tally: Tally) -> None:
    addrs = [tally.token.address, tally.registry.address, tally.ledger.address]
    for k in range(3):
        args = [ZERO if j == k else a for j, a in enumerate(addrs)]
        got = deploy_revert(chain, "SettlementVault", *args, 0, 0, sender=tally.admin)
        assert got == ("SettlementVaultZeroAddress", ())


# --- deposit --------------------------------------------------------------------------------


def test_deposit_credits_unallocated_and_emits(tally: Tally) -> None:
    receipt = tally.fund(7 * ONE)
    assert one_event(tally.vault, receipt, "Deposited") == {
        "payer": tally.consumer.address,
        "amount": 7 * ONE,
    }
    assert unallocated(tally) == 7 * ONE
    assert balance(tally, tally.vault.address) == 7 * ONE
    tally.fund(3, payer=tally.operator)
    assert unallocated(tally) == 7 * ONE + 3


def test_deposit_zero_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.vault.functions.deposit(0), tally.consumer),
        "SettlementVaultZeroAmount",
        (),
    )


def test_deposit_without_allowance_reverts(tally: Tally) -> None:
    tally.tx(tally.token.functions.mint(tally.consumer.address, 10), tally.admin)
    expect_revert(
        lambda: tally.tx(tally.vault.functions.deposit(10), tally.consumer),
        "ERC20InsufficientAllowance",
        (tally.vault.address, 0, 10),
    )


# --- propose --------------------------------------------------------------------------------


def test_propose_reserves_total_and_emits(tally: Tally) -> None:
    tally.anchor_first()
    tally.fund(100)
    root = keccak(text="root")
    receipt = tally.tx(tally.vault.functions.propose(9, root, 60, 0, POLICY, "ipfs://round-9"))
    deadline = tally.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"] + CHALLENGE_WINDOW
    assert one_event(tally.vault, receipt, "RoundProposed") == {
        "roundId": 9,
        "payoutRoot": root,
        "total": 60,
        "evidenceSeq": 0,
        "policyHash": POLICY,
        "challengeDeadline": deadline,
    }
    assert tally.call(tally.vault.functions.round(9)) == (
        root,
        POLICY,
        60,
        0,
        0,
        deadline,
        0,
        PROPOSED,
        "ipfs://round-9",
    )
    assert unallocated(tally) == 40
    assert balance(tally, tally.vault.address) == 100


def test_propose_by_non_operator_reverts(tally: Tally) -> None:
    tally.anchor_first()
    tally.fund(100)
    for sender in (tally.admin, tally.auditor, tally.consumer):
        expect_revert(
            lambda s=sender: tally.tx(
                tally.vault.functions.propose(1, b"\x01" * 32, 1, 0, POLICY, ""), s
            ),
            "SettlementVaultUnauthorizedAccount",
            (sender.address, OPERATOR_ROLE),
        )


def test_propose_reverts_by_name(tally: Tally) -> None:
    root = b"\x01" * 32
    expect_revert(
        lambda: tally.propose(1, root, 1), "SettlementVaultInsufficientUnallocated", (1, 0)
    )
    tally.fund(100)
    expect_revert(
        lambda: tally.propose(1, root, 1, seq=0), "SettlementVaultUnknownCheckpoint", (0, 0)
    )
    tally.anchor_first()
    expect_revert(
        lambda: tally.propose(1, root, 1, seq=1), "SettlementVaultUnknownCheckpoint", (1, 1)
    )
    expect_revert(
        lambda: tally.propose(1, root, 101), "SettlementVaultInsufficientUnallocated", (101, 100)
    )
    expect_revert(lambda: tally.propose(1, root, 0), "SettlementVaultZeroAmount", ())
    expect_revert(lambda: tally.propose(1, bytes(32), 5), "SettlementVaultZeroPayoutRoot", ())
    tally.propose(1, root, 100)  # all of it
    expect_revert(
        lambda: tally.propose(2, root, 1), "SettlementVaultInsufficientUnallocated", (1, 0)
    )
    tally.fund(10)
    expect_revert(lambda: tally.propose(1, root, 1), "SettlementVaultRoundExists", (1,))


# --- challenge ------------------------------------------------------------------------------


def _proposed(t: Tally, round_id: int = 1, total: int = 50) -> None:
    if t.call(t.ledger.functions.count()) == 0:
        t.anchor_first()
    t.fund(total)
    t.propose(round_id, keccak(text=f"root-{round_id}"), total)


def test_challenge_by_auditor_disputes_round(tally: Tally) -> None:
    _proposed(tally)
    receipt = tally.tx(tally.vault.functions.challenge(1, REASON), tally.auditor)
    assert one_event(tally.vault, receipt, "RoundChallenged") == {
        "roundId": 1,
        "challenger": tally.auditor.address,
        "reasonHash": REASON,
    }
    assert status(tally, 1) == DISPUTED


def test_challenge_by_active_participant(tally: Tally) -> None:
    _proposed(tally)
    receipt = tally.tx(tally.vault.functions.challenge(1, REASON), tally.provider)
    assert (
        one_event(tally.vault, receipt, "RoundChallenged")["challenger"] == tally.provider.address
    )
    assert status(tally, 1) == DISPUTED


def test_challenge_by_outsider_or_suspended_participant_reverts(tally: Tally) -> None:
    _proposed(tally)
    tally.tx(tally.registry.functions.suspend(tally.provider.address))
    for sender in (tally.outsider, tally.provider, tally.operator):
        expect_revert(
            lambda s=sender: tally.tx(tally.vault.functions.challenge(1, REASON), s),
            "SettlementVaultNotAuditorOrParticipant",
            (sender.address,),
        )
    assert status(tally, 1) == PROPOSED


def test_challenge_after_deadline_reverts(tally: Tally) -> None:
    _proposed(tally)
    deadline = tally.call(tally.vault.functions.round(1))[5]
    tally.chain.increase_time(CHALLENGE_WINDOW)
    assert tally.now() >= deadline
    expect_revert(
        lambda: tally.tx(tally.vault.functions.challenge(1, REASON), tally.auditor),
        "SettlementVaultChallengeWindowClosed",
        (1, deadline),
    )


def test_challenge_wrong_status_reverts(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.vault.functions.challenge(5, REASON), tally.auditor),
        "SettlementVaultRoundNotProposed",
        (5, NONE),
    )
    _proposed(tally)
    tally.tx(tally.vault.functions.challenge(1, REASON), tally.auditor)
    expect_revert(
        lambda: tally.tx(tally.vault.functions.challenge(1, REASON), tally.consumer),
        "SettlementVaultRoundNotProposed",
        (1, DISPUTED),
    )


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_proposed_releases_reservation(tally: Tally) -> None:
    _proposed(tally, total=50)
    assert unallocated(tally) == 0
    receipt = tally.tx(tally.vault.functions.cancel(1))
    assert one_event(tally.vault, receipt, "RoundCancelled") == {"roundId": 1}
    assert status(tally, 1) == CANCELLED
    assert unallocated(tally) == 50
    expect_revert(lambda: tally.propose(1, b"\x01" * 32, 1), "SettlementVaultRoundExists", (1,))
    tally.propose(2, b"\x02" * 32, 50)  # the corrected round, under a new id


def test_cancel_disputed_round(tally: Tally) -> None:
    _proposed(tally, total=50)
    tally.tx(tally.vault.functions.challenge(1, REASON), tally.auditor)
    tally.tx(tally.vault.functions.cancel(1))
    assert status(tally, 1) == CANCELLED
    assert unallocated(tally) == 50


def test_cancel_reverts_by_name(tally: Tally) -> None:
    expect_revert(
        lambda: tally.tx(tally.vault.functions.cancel(3)),
        "SettlementVaultRoundNotCancellable",
        (3, NONE),
    )
    _proposed(tally)
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
    tree = tree_of(2, [5, 6])
    finalized_round(tally, 2, tree)
    expect_revert(
        lambda: tally.tx(tally.vault.functions.cancel(2)),
        "SettlementVaultRoundNotCancellable",
        (2, FINALIZED),
    )


# --- finalize -------------------------------------------------------------------------------


def test_finalize_after_window(tally: Tally) -> None:
    _proposed(tally)
    deadline = tally.call(tally.vault.functions.round(1))[5]
    expect_revert(lambda: tally.finalize(1), "SettlementVaultChallengeWindowOpen", (1, deadline))
    tally.chain.increase_time(CHALLENGE_WINDOW)
    receipt = tally.finalize(1)  # by anyone
    assert one_event(tally.vault, receipt, "RoundFinalized") == {"roundId": 1}
    finalized_at = tally.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    stored = tally.call(tally.vault.functions.round(1))
    assert (stored[6], stored[7]) == (finalized_at, FINALIZED)
    expect_revert(lambda: tally.finalize(1), "SettlementVaultRoundNotProposed", (1, FINALIZED))


def test_finalize_disputed_round_reverts(tally: Tally) -> None:
    _proposed(tally)
    tally.tx(tally.vault.functions.challenge(1, REASON), tally.auditor)
    tally.chain.increase_time(CHALLENGE_WINDOW)
    expect_revert(lambda: tally.finalize(1), "SettlementVaultRoundDisputed", (1,))


def test_finalize_unknown_or_cancelled_round_reverts(tally: Tally) -> None:
    expect_revert(lambda: tally.finalize(4), "SettlementVaultRoundNotProposed", (4, NONE))
    _proposed(tally)
    tally.tx(tally.vault.functions.cancel(1))
    expect_revert(lambda: tally.finalize(1), "SettlementVaultRoundNotProposed", (1, CANCELLED))


def test_zero_challenge_window_finalizes_at_once(chain: Chain) -> None:
    t = deploy(chain, challenge_window=0)
    _proposed(t)
    expect_revert(
        lambda: t.tx(t.vault.functions.challenge(1, REASON), t.auditor),
        "SettlementVaultChallengeWindowClosed",
        (1, t.call(t.vault.functions.round(1))[5]),
    )
    t.finalize(1)
    assert status(t, 1) == FINALIZED


# --- claim ----------------------------------------------------------------------------------


def test_claim_pays_account_and_emits(tally: Tally) -> None:
    tree = tree_of(3, [10 * ONE, 20 * ONE, 30 * ONE])
    finalized_round(tally, 3, tree)
    for e in tree.entries:
        assert not tally.call(tally.vault.functions.isClaimed(3, e.index))
        receipt = tally.tx(claim_fn(tally, 3, e), tally.outsider)  # anyone may send it
        assert one_event(tally.vault, receipt, "Claimed") == {
            "roundId": 3,
            "account": e.account,
            "amount": e.amount,
        }
        assert balance(tally, e.account) == e.amount
        assert tally.call(tally.vault.functions.isClaimed(3, e.index))
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
    tally.tx(tally.vault.functions.challenge(3, REASON), tally.auditor)
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 3, e)), "SettlementVaultRoundNotFinalized", (3, DISPUTED)
    )
    tally.tx(tally.vault.functions.cancel(3))
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 3, e)), "SettlementVaultRoundNotFinalized", (3, CANCELLED)
    )


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
    expect_revert(lambda: tally.tx(fn), "SettlementVaultAlreadyClaimed", (1, e1.index))


def test_claim_many_reverts_as_a_whole(tally: Tally) -> None:
    who = payee(0, "many")
    t1 = build_payout_tree(round_id=1, payouts={who: 11})
    t2 = build_payout_tree(round_id=2, payouts={who: 22, payee(2): 2})
    finalized_round(tally, 1, t1)
    finalized_round(tally, 2, t2)
    e1, e2 = t1.entries[0], t2.entries[t2.index_of(who)]
    v = tally.vault.functions
    bad = v.claimMany([1, 2], [e1.index, e2.index], who, [11, 23], [list(e1.proof), list(e2.proof)])
    expect_revert(lambda: tally.tx(bad), "SettlementVaultInvalidProof", (2, e2.index, who, 23))
    assert not tally.call(v.isClaimed(1, e1.index))  # the valid first item was rolled back
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
    t.propose(1, tree.root, tree.total)
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
    assert balance(t, t.vault.address) == 10_000 - e.amount


# --- sweep ----------------------------------------------------------------------------------


def _payouts(tree: PayoutTree, indexes: Sequence[int]) -> list[tuple[int, str, int, list[bytes]]]:
    return [
        (e.index, e.account, e.amount, list(e.proof)) for e in (tree.entries[i] for i in indexes)
    ]


def test_sweep_returns_unclaimed_after_expiry(tally: Tally) -> None:
    tree = tree_of(4, [10, 20, 30, 40, 50])
    finalized_round(tally, 4, tree)
    finalized_at = tally.call(tally.vault.functions.round(4))[6]
    tally.tx(claim_fn(tally, 4, tree.entries[1]), tally.outsider)
    unclaimed = [0, 2, 3, 4]
    expect_revert(
        lambda: tally.tx(tally.vault.functions.sweep(4, _payouts(tree, unclaimed))),
        "SettlementVaultClaimPeriodNotOver",
        (4, finalized_at + CLAIM_EXPIRY),
    )
    tally.chain.increase_time(CLAIM_EXPIRY)
    receipt = tally.tx(tally.vault.functions.sweep(4, _payouts(tree, unclaimed[:2])))
    swept = sum(tree.entries[i].amount for i in unclaimed[:2])
    assert one_event(tally.vault, receipt, "RoundSwept") == {"roundId": 4, "amount": swept}
    receipt = tally.tx(tally.vault.functions.sweep(4, _payouts(tree, unclaimed[2:])))
    rest = sum(tree.entries[i].amount for i in unclaimed[2:])
    assert one_event(tally.vault, receipt, "RoundSwept") == {"roundId": 4, "amount": rest}
    assert unallocated(tally) == tree.total - tree.entries[1].amount
    assert balance(tally, tally.vault.address) == unallocated(tally)
    assert tally.call(tally.vault.functions.round(4))[3] == swept + rest
    e = tree.entries[0]
    expect_revert(
        lambda: tally.tx(claim_fn(tally, 4, e)), "SettlementVaultAlreadyClaimed", (4, e.index)
    )


def test_sweep_reverts_by_name(tally: Tally) -> None:
    tree = tree_of(4, [10, 20, 30])
    v = tally.vault.functions
    expect_revert(
        lambda: tally.tx(v.sweep(4, _payouts(tree, [0]))),
        "SettlementVaultRoundNotFinalized",
        (4, NONE),
    )
    finalized_round(tally, 4, tree)
    tally.tx(claim_fn(tally, 4, tree.entries[0]), tally.outsider)
    tally.chain.increase_time(CLAIM_EXPIRY)
    expect_revert(
        lambda: tally.tx(v.sweep(4, _payouts(tree, [1])), tally.admin),
        "SettlementVaultUnauthorizedAccount",
        (tally.admin.address, OPERATOR_ROLE),
    )
    expect_revert(lambda: tally.tx(v.sweep(4, [])), "SettlementVaultBadBatch", ())
    expect_revert(
        lambda: tally.tx(v.sweep(4, _payouts(tree, [1, 0]))),
        "SettlementVaultAlreadyClaimed",
        (4, tree.entries[0].index),
    )
    e = tree.entries[2]
    expect_revert(
        lambda: tally.tx(v.sweep(4, [(e.index, e.account, e.amount + 1, list(e.proof))])),
        "SettlementVaultInvalidProof",
        (4, e.index, e.account, e.amount + 1),
    )
    expect_revert(
        lambda: tally.tx(v.sweep(4, _payouts(tree, [1, 1]))),
        "SettlementVaultAlreadyClaimed",
        (4, tree.entries[1].index),
    )


def test_sweep_cannot_exceed_round_total(tally: Tally) -> None:
    """A round proposed with a total below its tree's sum: sweeping cannot inflate the
    unallocated balance beyond what the round reserved."""
    tree = tree_of(6, [10, 20, 30])
    tally.anchor_first()
    tally.fund(100)
    tally.propose(6, tree.root, 50)
    tally.chain.increase_time(CHALLENGE_WINDOW)
    tally.finalize(6)
    tally.chain.increase_time(CLAIM_EXPIRY)
    expect_revert(
        lambda: tally.tx(tally.vault.functions.sweep(6, _payouts(tree, [0, 1, 2]))),
        "SettlementVaultSweepExceedsTotal",
        (6, 60, 50),
    )


# --- pause ----------------------------------------------------------------------------------


def test_pause_stops_money_paths_and_unpause_resumes(tally: Tally) -> None:
    tree = tree_of(3, [10, 20])
    finalized_round(tally, 3, tree, extra=100)
    _proposed(tally, round_id=8, total=10)
    v = tally.vault.functions
    receipt = tally.tx(v.pause(), tally.admin)
    assert one_event(tally.vault, receipt, "Paused") == {"account": tally.admin.address}
    assert tally.call(v.paused()) is True
    e = tree.entries[0]
    tally.tx(tally.token.functions.mint(tally.consumer.address, 5), tally.admin)
    tally.tx(tally.token.functions.approve(tally.vault.address, 5), tally.consumer)
    stopped = [
        (v.deposit(5), tally.consumer),
        (v.propose(9, b"\x01" * 32, 1, 0, POLICY, ""), tally.operator),
        (v.claim(3, e.index, e.account, e.amount, list(e.proof)), tally.outsider),
        (v.claimMany([3], [e.index], e.account, [e.amount], [list(e.proof)]), tally.outsider),
        (v.finalize(8), tally.outsider),
        (v.sweep(3, _payouts(tree, [1])), tally.operator),
    ]
    for fn, sender in stopped:
        expect_revert(lambda f=fn, s=sender: tally.tx(f, s), "EnforcedPause", ())
    # views, challenges and cancels still work
    assert tally.call(v.round(3))[7] == FINALIZED
    assert tally.call(v.isClaimed(3, e.index)) is False
    tally.tx(v.challenge(8, REASON), tally.auditor)
    tally.tx(v.cancel(8))
    expect_revert(lambda: tally.tx(v.pause(), tally.admin), "EnforcedPause", ())
    receipt = tally.tx(v.unpause(), tally.admin)
    assert one_event(tally.vault, receipt, "Unpaused") == {"account": tally.admin.address}
    tally.tx(claim_fn(tally, 3, e), tally.outsider)
    assert balance(tally, e.account) == e.amount
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


def test_thousand_leaf_tree_claims(tally: Tally) -> None:
    tree = tree_of(77, [ONE + 7 * i for i in range(1_000)], salt="k")
    finalized_round(tally, 77, tree)
    for i in (0, 255, 256, 511, 999):  # both edges of bitmap words
        e = tree.entries[i]
        tally.tx(claim_fn(tally, 77, e), tally.outsider)
        assert balance(tally, e.account) == e.amount
        assert tally.call(tally.vault.functions.isClaimed(77, i))
    assert not tally.call(tally.vault.functions.isClaimed(77, 1))
    assert not tally.call(tally.vault.functions.isClaimed(77, 257))


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
    spare=st.integers(0, 10**20),
    round_id=st.integers(0, 2**256 - 1),
)
def test_random_payouts_claim_once_and_leave_the_remainder(
    tally: Tally, amounts: list[int], spare: int, round_id: int
) -> None:
    chain = tally.chain
    snap = chain.snapshot()
    try:
        tree = tree_of(round_id, amounts, salt=str(round_id))
        finalized_round(tally, round_id, tree, extra=spare)
        assert unallocated(tally) == spare
        for e in tree.entries:
            tally.tx(claim_fn(tally, round_id, e), tally.outsider)
            assert balance(tally, e.account) == e.amount
        e = tree.entries[len(amounts) // 2]
        expect_revert(
            lambda: tally.tx(claim_fn(tally, round_id, e), tally.outsider),
            "SettlementVaultAlreadyClaimed",
            (round_id, e.index),
        )
        assert balance(tally, tally.vault.address) == spare == unallocated(tally)
    finally:
        chain.revert(snap)
