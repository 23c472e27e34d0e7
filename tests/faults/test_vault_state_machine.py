"""SettlementVault as a state machine: random sequences of every call, against a Python model.

Hypothesis drives deposit / depositFor / requestWithdrawal / withdraw / propose (random payout
trees from ``build_payout_tree`` and random debits) / challenge / resolve / cancel / finalize /
claim / claimMany / sweep, with the clock moving forward, on the embedded chain (one deployment,
a snapshot per example). Each call's outcome is predicted from the model first: a call the
model allows must succeed, one it refuses must revert with the error the model names. The
chain's clock is deterministic here (each transaction's block is one second after the previous
one, once the chain runs ahead of the wall clock), so window and notice boundaries are predicted
to the second (the clock also jumps to exactly a deadline, or the second before it). One
weighted rule picks the call, steered towards the life cycle (a pending round is resolved,
finalized or waited for rather than refused again and again), so each run reaches claims and
sweeps; a reverted call's error is read by replaying it on its own block (see
``VaultMachine._replay_at_own_block``) and must be the one the client named.

After every step (one ``eth_call`` through ``contracts/test/VaultProbe.sol``):
- the vault's token balance == ``unallocated()`` + sum of ``total - paid`` over Proposed,
  Disputed and Finalized rounds;
- every free balance, every round's total / paid / status, ``settledUntil()`` and the pending
  round equal the model's; ``paid <= total``;
- no payee received more than its leaves (it received exactly what its paid claims say);
- ``settledUntil()`` never goes down except on a cancel (operator or upheld dispute), and then
  to exactly the cancelled round's ``periodStart``.

The counts (steps, rounds, claims, ...) are printed as one line and written to
``vault_state_machine.json`` in the test's tmp dir (and, through the ``figures`` fixture of
this package, to ``TALLY_FAULTS_FIGURES`` when set).
"""

from __future__ import annotations

import ast
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_tester.exceptions import TransactionFailed
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from web3.contract import Contract

from service.chain.artifacts import decode_revert
from service.chain.client import Chain
from service.errors import TransactionReverted
from service.settlement.payout_tree import PayoutEntry, PayoutTree, build_payout_tree
from tests.contracts.helpers import (
    CANCELLED,
    CLOSED,
    DISPUTED,
    FINALIZED,
    NONE,
    PROPOSED,
    TX_GAS,
    Tally,
    deploy,
)

WINDOW_S = 100
EXPIRY_S = 1_000
DELAY_S = 300
# Bounded by counts, not time (~1 min on a 2-core machine); VSM_EXAMPLES / VSM_STEPS override.
MAX_EXAMPLES = int(os.environ.get("VSM_EXAMPLES", "20"))
STEPS = int(os.environ.get("VSM_STEPS", "30"))
LIVE = (PROPOSED, DISPUTED, FINALIZED)
FINDING = b"\x0f" * 32
RULING = b"\x0e" * 32
ROUND_ID_BASE = 1_000


# Calls by weight: the life cycle (propose, time, finalize, claim) more often than the rest.
ACTIONS = (
    *["propose"] * 4,
    *["advance_time"] * 4,
    *["finalize"] * 3,
    *["claim"] * 5,
    *["claim_many"] * 2,
    *["challenge"] * 3,
    *["resolve"] * 2,
    *["sweep"] * 2,
    "cancel",
    "deposit",
    "deposit_for",
    "request_withdrawal",
    *["withdraw"] * 2,
)


def rarely(data: st.DataObject, n: int = 10) -> bool:
    """True about once in ``n`` draws; False is the simple value Hypothesis shrinks to."""
    return data.draw(st.sampled_from([False] * (n - 1) + [True]))


def payee_address(i: int) -> str:
    """A fresh payee address (no key): its token balance comes only from claims."""
    return to_checksum_address(keccak(text=f"state-machine-payee-{i}")[:20])


@dataclass
class ModelRound:
    round_id: int
    tree: PayoutTree
    total: int
    debits: dict[str, int]  # account -> amount, as proposed
    start: int
    end: int
    deadline: int
    status: int = PROPOSED
    paid: int = 0
    finalized_at: int = 0
    claimed: set[int] = field(default_factory=set)
    challenged: set[str] = field(default_factory=set)

    def entry_of(self, account: str) -> PayoutEntry | None:
        for e in self.tree.entries:
            if e.account == account:
                return e
        return None


class VaultMachine(RuleBasedStateMachine):
    # Set by the test before the run.
    t: Tally
    probe: Contract
    counts: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        t = self.t
        self.snap = t.chain.snapshot()
        self.consumers = [t.consumer, t.consumer2, t.outsider]
        self.payees = sorted([t.provider.address, *(payee_address(i) for i in range(3))])
        self.free: dict[str, int] = {c.address: 0 for c in self.consumers}
        self.requests: dict[str, tuple[int, int]] = {}  # account -> (amount, availableAt)
        self.rounds: dict[int, ModelRound] = {}
        self.received: dict[str, int] = dict.fromkeys(self.payees, 0)
        self.settled = 0
        self.pending: int | None = None
        self.next_id = ROUND_ID_BASE
        self.last_settled = 0
        self.rollback_to: int | None = None
        self.now = self._latest()
        self.counts["examples"] += 1

    def teardown(self) -> None:
        self.t.chain.revert(self.snap)

    # --- plumbing -----------------------------------------------------------------------

    def _latest(self) -> int:
        return int(self.t.chain.w3.eth.get_block("latest")["timestamp"])

    def _send(self, fn: Any, sender: Any, expected: str | None, action: str) -> bool:
        """Send ``fn``; it must succeed when ``expected`` is None, else revert with it."""
        self.counts["steps"] += 1
        try:
            self.t.tx(fn, sender)
        except TransactionReverted as err:
            name = self._replay_at_own_block(fn, sender, err)
            # the client's own decoding (Chain._replay_failure) names the same error
            assert err.error_name == name, f"{action}: client says {err.error_name}, was {name}"
            assert expected is not None, f"{action}: unexpected revert {name}"
            assert name == expected, f"{action}: {name}, model: {expected}"
            self.counts["reverts"] += 1
            self.counts[f"revert {expected}"] += 1
            return False
        finally:
            self.now = self._latest()
        assert expected is None, f"{action}: succeeded, model expected {expected}"
        self.counts[action] += 1
        return True

    def _replay_at_own_block(self, fn: Any, sender: Any, err: TransactionReverted) -> str | None:
        """The error a failed transaction reverted with, found here independently of the
        client: replayed as a call on the transaction's own block (the state after a failed
        transaction is the state before it, one transaction per block here), with the
        timestamp it ran at. The client once replayed on the block before, with that block's
        timestamp, and misnamed reverts that depend on the second (a challenge landing
        exactly on its deadline: NoStanding for ChallengeWindowClosed, or nothing)."""
        assert err.tx_hash is not None
        block = self.t.chain.w3.eth.get_transaction_receipt(err.tx_hash)["blockNumber"]
        try:
            fn.call({"from": sender.address, "gas": TX_GAS}, block_identifier=block)
        except TransactionFailed as replayed:  # eth-tester: "execution reverted: b'...'"
            text = str(replayed.args[0]).removeprefix("execution reverted: ")
            return decode_revert(ast.literal_eval(text))[0]
        return None

    def _tx_time(self) -> int:
        """Timestamp of the block the next transaction lands in."""
        return self.now + 1

    def _cancel_model(self, r: ModelRound) -> None:
        r.status = CANCELLED
        for account, amount in r.debits.items():
            self.free[account] += amount
        self.settled = r.start
        self.rollback_to = r.start
        self.pending = None

    def _round_ids(self) -> list[int]:
        return sorted(self.rounds)

    # --- deposits and withdrawals -------------------------------------------------------

    @initialize(amounts=st.lists(st.integers(50, 500), min_size=3, max_size=3))
    def fund_consumers(self, amounts: list[int]) -> None:
        """Start with some free balances, so that the first proposals have debits."""
        for c, amount in zip(self.consumers, amounts, strict=True):
            if self._send(self.t.vault.functions.deposit(amount), c, None, "deposit"):
                self.free[c.address] += amount

    def deposit(self, data: st.DataObject) -> None:
        who, amount = data.draw(st.integers(0, 2)), data.draw(st.integers(1, 500))
        c = self.consumers[who]
        if self._send(self.t.vault.functions.deposit(amount), c, None, "deposit"):
            self.free[c.address] += amount

    def deposit_for(self, data: st.DataObject) -> None:
        who, amount = data.draw(st.integers(0, 2)), data.draw(st.integers(1, 500))
        account = self.consumers[who].address
        fn = self.t.vault.functions.depositFor(account, amount)
        if self._send(fn, self.t.operator, None, "depositFor"):
            self.free[account] += amount

    def request_withdrawal(self, data: st.DataObject) -> None:
        who, amount = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 600))
        c = self.consumers[who]
        at = self._tx_time() + DELAY_S
        if self._send(self.t.vault.functions.requestWithdrawal(amount), c, None, "request"):
            if amount == 0:
                self.requests.pop(c.address, None)
            else:
                self.requests[c.address] = (amount, at)

    def withdraw(self, data: st.DataObject) -> None:
        who = data.draw(st.integers(0, 2))
        c = self.consumers[who]
        req = self.requests.get(c.address)
        expected: str | None = None
        pay = 0
        if req is None:
            expected = "SettlementVaultNoWithdrawalRequest"
        elif self._tx_time() < req[1]:
            expected = "SettlementVaultWithdrawalNotReady"
        else:
            pay = min(req[0], self.free[c.address])
            if pay == 0:
                expected = "SettlementVaultNothingToWithdraw"
        if self._send(self.t.vault.functions.withdraw(), c, expected, "withdraw"):
            self.free[c.address] -= pay
            del self.requests[c.address]

    # --- rounds -------------------------------------------------------------------------

    def propose(self, data: st.DataObject) -> None:
        reuse = bool(self.rounds) and rarely(data)
        rid = data.draw(st.sampled_from(self._round_ids())) if reuse else self.next_id
        over = rarely(data)  # one debit a unit above the balance
        # debits: one or more consumers with a free balance (rarely none), each at most it
        if all(self.free[c.address] == 0 for c in self.consumers):
            self.deposit(data)  # someone must be able to pay
        funded = [c.address for c in self.consumers if self.free[c.address] > 0]
        debits: dict[str, int] = {}
        if funded and not rarely(data, 20):
            for a in data.draw(st.lists(st.sampled_from(funded), min_size=1, unique=True)):
                debits[a] = data.draw(st.integers(1, self.free[a]))
        if over and debits:
            first = next(iter(debits))
            debits[first] = self.free[first] + 1
        total = sum(debits.values())
        # payouts: the total split over 1-4 payees; rarely a tree that pays more, or less,
        # than the total (the cap and the sweep must hold either way)
        chosen = sorted(data.draw(st.lists(st.sampled_from(self.payees), min_size=1, unique=True)))
        share, spare = divmod(max(total, len(chosen)), len(chosen))
        payouts = {a: share + (1 if i < spare else 0) for i, a in enumerate(chosen)}
        skew = data.draw(st.sampled_from([0] * 6 + [1, -1]))
        if skew:
            a = data.draw(st.sampled_from(chosen))
            payouts[a] = max(1, payouts[a] + skew * data.draw(st.integers(1, 50)))
        tree = build_payout_tree(round_id=rid, payouts=payouts)
        start = max(0, self.settled + data.draw(st.sampled_from([0, 0, 0, 1, 2, -1])))
        end = start + data.draw(st.integers(1, 5))

        expected: str | None = None
        if rid in self.rounds:
            expected = "SettlementVaultRoundExists"
        elif total == 0:
            expected = "SettlementVaultZeroAmount"
        elif self.pending is not None:
            expected = "SettlementVaultRoundPending"
        elif start < self.settled:
            expected = "SettlementVaultPeriodOverlap"
        elif any(amount > self.free[a] for a, amount in debits.items()):
            expected = "SettlementVaultInsufficientBalance"
        ordered = sorted(debits.items(), key=lambda d: d[0].lower())
        fn = self.t.propose_fn(rid, tree.root, total, debits=ordered, period=(start, end))
        deadline = self._tx_time() + WINDOW_S
        if self._send(fn, self.t.operator, expected, "propose"):
            for account, amount in debits.items():
                self.free[account] -= amount
            self.rounds[rid] = ModelRound(rid, tree, total, debits, start, end, deadline)
            self.settled = end
            self.pending = rid
            self.next_id += 1

    def _pick_round(
        self, data: st.DataObject, *, among: list[int] | None = None, pending_in_20: int = 14
    ) -> int:
        """A round id to act on: mostly one of ``among`` (when given and not empty) or else
        the pending round (``pending_in_20`` times in 20); else any known round, rarely an
        id never proposed."""
        # 0 (the value Hypothesis starts from and shrinks to) is the preferred pick
        roll = data.draw(st.integers(0, 19))
        if not self.rounds or roll == 19:
            return self.next_id + 7  # never proposed
        if among is not None:
            if among and roll < 16:
                return data.draw(st.sampled_from(sorted(among)))
        elif self.pending is not None and roll < pending_in_20:
            return self.pending
        return data.draw(st.sampled_from(self._round_ids()))

    def challenge(self, data: st.DataObject) -> None:
        challenger = data.draw(st.sampled_from(["auditor", "funder", "payee", "other"]))
        t = self.t
        rid = self._pick_round(data)
        r = self.rounds.get(rid)
        sender = {"auditor": t.auditor, "payee": t.provider, "other": t.arbiter}.get(challenger)
        if challenger == "funder":
            sender = self.consumers[data.draw(st.integers(0, 2))]
        assert sender is not None
        index, amount, proof = 0, 0, []
        leaf = r.entry_of(sender.address) if r is not None and challenger == "payee" else None
        if leaf is not None:
            index, amount, proof = leaf.index, leaf.amount, list(leaf.proof)

        expected: str | None = None
        if r is None or r.status != PROPOSED:
            expected = "SettlementVaultRoundNotProposed"
        elif self._tx_time() >= r.deadline:
            expected = "SettlementVaultChallengeWindowClosed"
        elif not (
            challenger == "auditor" or r.debits.get(sender.address, 0) > 0 or leaf is not None
        ):
            expected = "SettlementVaultNoStanding"
        elif sender.address in r.challenged:
            expected = "SettlementVaultAlreadyChallenged"
        fn = t.vault.functions.challenge(rid, FINDING, index, amount, proof)
        if self._send(fn, sender, expected, "challenge"):
            assert r is not None
            r.status = DISPUTED
            r.challenged.add(sender.address)

    def resolve(self, data: st.DataObject) -> None:
        upheld = data.draw(st.booleans())
        rid = self._pick_round(data)
        r = self.rounds.get(rid)
        expected = (
            None if r is not None and r.status == DISPUTED else "SettlementVaultRoundNotDisputed"
        )
        fn = self.t.vault.functions.resolve(rid, upheld, RULING)
        if self._send(
            fn, self.t.arbiter, expected, "resolve upheld" if upheld else "resolve rejected"
        ):
            assert r is not None
            if upheld:
                self._cancel_model(r)
            else:
                r.status = PROPOSED

    def cancel(self, data: st.DataObject) -> None:
        rid = self._pick_round(data, pending_in_20=4)  # rarely: a cancel ends the round
        r = self.rounds.get(rid)
        expected: str | None = None
        if r is None or r.status not in (PROPOSED, DISPUTED):
            expected = "SettlementVaultRoundNotCancellable"
        elif self._tx_time() >= r.deadline:
            expected = "SettlementVaultChallengeWindowClosed"
        if self._send(self.t.vault.functions.cancel(rid), self.t.operator, expected, "cancel"):
            assert r is not None
            self._cancel_model(r)

    def finalize(self, data: st.DataObject) -> None:
        rid = self._pick_round(data)
        r = self.rounds.get(rid)
        expected: str | None = None
        if r is not None and r.status == DISPUTED:
            expected = "SettlementVaultRoundDisputed"
        elif r is None or r.status != PROPOSED:
            expected = "SettlementVaultRoundNotProposed"
        elif self._tx_time() < r.deadline:
            expected = "SettlementVaultChallengeWindowOpen"
        at = self._tx_time()
        if self._send(self.t.vault.functions.finalize(rid), self.t.admin, expected, "finalize"):
            assert r is not None
            r.status = FINALIZED
            r.finalized_at = at
            self.pending = None

    # --- claims -------------------------------------------------------------------------

    def _claim_error(
        self, r: ModelRound | None, e: PayoutEntry, paid: int, claimed: set[int]
    ) -> str | None:
        """The error a claim of ``e`` gets, given the round's paid sum and claimed set."""
        if r is not None and e.index in claimed:
            return "SettlementVaultAlreadyClaimed"
        if r is None or r.status != FINALIZED:
            return "SettlementVaultRoundNotFinalized"
        if paid + e.amount > r.total:
            return "SettlementVaultPayoutExceedsTotal"
        return None

    def claim(self, data: st.DataObject) -> None:
        forged = rarely(data)
        if not self.rounds:
            return
        claimable = [
            rid
            for rid, r in self.rounds.items()
            if r.status == FINALIZED and len(r.claimed) < len(r.tree) and r.paid < r.total
        ]
        rid = self._pick_round(data, among=claimable)
        if rid not in self.rounds:
            return
        r = self.rounds[rid]
        open_ = [e for e in r.tree.entries if e.index not in r.claimed]
        e = data.draw(st.sampled_from(open_ if open_ and not rarely(data) else r.tree.entries))
        amount = e.amount
        expected = self._claim_error(r, e, r.paid, r.claimed)
        if forged:  # one more than the leaf: a proof of nothing
            amount += 1
            bad = r.status != FINALIZED
            expected = "SettlementVaultRoundNotFinalized" if bad else "SettlementVaultInvalidProof"
        fn = self.t.vault.functions.claim(rid, e.index, e.account, amount, list(e.proof))
        if self._send(fn, self.t.admin, expected, "claim"):
            r.claimed.add(e.index)
            r.paid += e.amount
            self.received[e.account] += e.amount

    def claim_many(self, data: st.DataObject) -> None:
        account = data.draw(st.sampled_from(self.payees))
        items = [(r, e) for r in self.rounds.values() if (e := r.entry_of(account)) is not None]
        if not items:
            return
        batch = data.draw(st.lists(st.sampled_from(items), min_size=1, max_size=3))
        # simulate in order: the first failing item reverts the whole batch
        claimed = {r.round_id: set(r.claimed) for r, _ in batch}
        paid = {r.round_id: r.paid for r, _ in batch}
        expected: str | None = None
        for r, e in batch:
            expected = self._claim_error(r, e, paid[r.round_id], claimed[r.round_id])
            if expected is not None:
                break
            claimed[r.round_id].add(e.index)
            paid[r.round_id] += e.amount
        fn = self.t.vault.functions.claimMany(
            [r.round_id for r, _ in batch],
            [e.index for _, e in batch],
            account,
            [e.amount for _, e in batch],
            [list(e.proof) for _, e in batch],
        )
        if self._send(fn, self.t.admin, expected, "claimMany"):
            for r, e in batch:
                r.claimed.add(e.index)
                r.paid += e.amount
                self.received[account] += e.amount
            self.counts["claims in claimMany"] += len(batch)

    def sweep(self, data: st.DataObject) -> None:
        due = [
            rid
            for rid, r in self.rounds.items()
            if r.status == FINALIZED and self._tx_time() >= r.finalized_at + EXPIRY_S
        ]
        rid = self._pick_round(data, among=due)
        r = self.rounds.get(rid)
        expected: str | None = None
        if r is None or r.status != FINALIZED:
            expected = "SettlementVaultRoundNotFinalized"
        elif self._tx_time() < r.finalized_at + EXPIRY_S:
            expected = "SettlementVaultClaimPeriodNotOver"
        if self._send(self.t.vault.functions.sweep(rid), self.t.operator, expected, "sweep"):
            assert r is not None
            rest = r.total - r.paid
            funders = sorted(r.debits, key=str.lower)
            shares = [r.debits[a] * rest // r.total for a in funders]
            remainder = rest - sum(shares)
            assert 0 <= remainder < len(funders) or rest == 0
            for i, a in enumerate(funders):
                self.free[a] += shares[i] + (1 if i < remainder else 0)
            r.status = CLOSED

    def advance_time(self, data: st.DataObject) -> None:
        """Mostly to the second of the next boundary (a challenge deadline, a claim period's
        end, a withdrawal's notice) or the one before it; else by a fixed step."""
        boundaries = sorted(
            b
            for b in (
                *(r.deadline for r in self.rounds.values() if r.status in (PROPOSED, DISPUTED)),
                *(r.finalized_at + EXPIRY_S for r in self.rounds.values() if r.status == FINALIZED),
                *(at for _, at in self.requests.values()),
            )
            if b > self._tx_time()
        )
        if boundaries and not rarely(data, 4):
            target = boundaries[0] - data.draw(st.sampled_from([0, 1]))
            seconds = max(1, target - self._tx_time())  # the next transaction lands on target
        else:
            seconds = data.draw(st.sampled_from([1, 30, WINDOW_S, EXPIRY_S]))
        self.t.chain.increase_time(seconds)
        self.now = self._latest()
        self.counts["time advances"] += 1

    # --- one rule: a weighted choice of the calls above ---------------------------------

    @rule(data=st.data(), action=st.sampled_from(ACTIONS))
    def step(self, data: st.DataObject, action: str) -> None:
        """One call, picked by weight. (One rule rather than one per call: Hypothesis'
        swarm testing disables a random subset of rules in each example, and runs where
        propose, the clock, finalize and claim are not all enabled never reach a claim.)"""
        claimable = any(
            r.status == FINALIZED and len(r.claimed) < len(r.tree) and r.paid < r.total
            for r in self.rounds.values()
        )
        pending = self.rounds[self.pending] if self.pending is not None else None
        stuck = (
            (action == "propose" and pending is not None)
            or (action in ("claim", "claim_many") and not claimable)
            or (action in ("challenge", "resolve", "cancel", "finalize") and pending is None)
            or (action == "finalize" and pending is not None and pending.status == DISPUTED)
        )
        if stuck and not rarely(data, 4):
            # mostly move the life cycle along instead of being refused (RoundPending,
            # RoundNotFinalized, RoundNotProposed, RoundDisputed): the arbiter rules on a
            # disputed round, a due one is finalized, time passes towards a deadline, or
            # with nothing pending the next round is proposed
            if pending is None:
                action = "propose"
            elif pending.status == DISPUTED:
                action = "resolve"
            elif self._tx_time() >= pending.deadline:
                action = "finalize"
            else:
                action = "advance_time"
        getattr(self, action)(data)

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def chain_matches_model(self) -> None:
        ids = self._round_ids()
        accounts = [c.address for c in self.consumers] + self.payees
        # an explicit "from" spares web3's eth_tester middleware guessing one (half the call)
        s = self.probe.functions.read(self.t.vault.address, ids, accounts).call(
            {"from": self.t.admin.address}
        )
        tokens, unalloc, settled, pending, pending_id, totals, paids, statuses, frees, held = s
        rounds = list(zip(totals, paids, statuses, strict=True))
        live = sum(tot - pd for tot, pd, st_ in rounds if st_ in LIVE)
        assert tokens == unalloc + live, "vault tokens != free balances + live rounds' rest"
        assert unalloc == sum(self.free.values())
        for rid, tot, pd, st_ in zip(ids, totals, paids, statuses, strict=True):
            r = self.rounds[rid]
            assert (tot, pd, st_) == (r.total, r.paid, r.status), rid
            assert pd <= tot
            assert st_ != NONE
        n = len(self.consumers)
        assert list(frees[:n]) == [self.free[c.address] for c in self.consumers]
        for account, got in zip(self.payees, held[n:], strict=True):
            leaves = sum(
                e.amount
                for r in self.rounds.values()
                if r.status in (FINALIZED, CLOSED) and (e := r.entry_of(account)) is not None
            )
            assert got == self.received[account] <= leaves, account
        assert settled == self.settled
        assert (pending, pending_id if pending else None) == (
            self.pending is not None,
            self.pending,
        )
        if self.rollback_to is not None:
            assert settled == self.rollback_to  # exactly the cancelled round's start
            self.rollback_to = None
        else:
            assert settled >= self.last_settled, "settledUntil went down without a cancel"
        self.last_settled = settled


def test_vault_state_machine_keeps_money_and_periods_consistent(
    chain: Chain, tmp_path: Path, figures: dict[str, Any]
) -> None:
    t = deploy(chain, challenge_window=WINDOW_S, claim_expiry=EXPIRY_S, withdrawal_delay=DELAY_S)
    probe, _ = chain.deploy("VaultProbe", sender=t.admin)
    t.anchor_first()
    for c in (t.consumer, t.consumer2, t.outsider, t.operator):
        t.tx(t.token.functions.mint(c.address, 10**9), t.admin)
        t.tx(t.token.functions.approve(t.vault.address, 2**256 - 1), c)
    chain.increase_time(86_400)  # run ahead of the wall clock: one second per block from here

    counts: Counter[str] = Counter()
    VaultMachine.t, VaultMachine.probe, VaultMachine.counts = t, probe, counts
    run_state_machine_as_test(
        VaultMachine,
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,  # the same sequences (and counts) on every run
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    claims = counts["claim"] + counts["claims in claimMany"]
    summary = {
        "examples": counts["examples"],
        "steps": counts["steps"],
        "rounds proposed": counts["propose"],
        "finalized": counts["finalize"],
        "cancelled": counts["cancel"] + counts["resolve upheld"],
        "challenges": counts["challenge"],
        "swept": counts["sweep"],
        "claims paid": claims,
        "withdrawals": counts["withdraw"],
        "expected reverts": counts["reverts"],
        "time advances": counts["time advances"],
    }
    (tmp_path / "vault_state_machine.json").write_text(
        json.dumps({"summary": summary, "counts": dict(counts)}, indent=2) + "\n", encoding="utf-8"
    )
    figures.update(summary)
    print("\nvault state machine: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    # the run must have reached the interesting states, not only refused calls
    assert summary["rounds proposed"] > 0 and summary["finalized"] > 0 and claims > 0
