"""Settlement rounds on chain: deposit, propose, challenge, resolve, cancel, finalize,
claim, sweep, withdraw.

The SettlementVault holds the money (see ``contracts/interfaces/ISettlementVault.sol``).
Money is per depositor: :func:`deposit` credits the sender's free balance (or, with
``account``, another account's: the operator funding a consumer). :func:`propose` sends a
round with its period and its **debits**: each funding consumer's bill for the round,
exactly :attr:`RoundResult.debits <service.settlement.engine.RoundResult.debits>` (checked
to sum to the pool before sending), which the vault takes from their free balances. One
timeline of periods for the whole space: a round's period must start at or after the end
of every settled or pending round (``settledUntil``), and only one round is pending.

During the challenge window a party with standing (an auditor, a consumer the round
debits, a payee proving its leaf) may :func:`challenge` with the keccak256 of its
published finding (:func:`finding_hash` of the ``tally audit settlement --json`` report
bytes); an arbiter (registry ``ARBITER_ROLE``) (:func:`resolve`) rules on the dispute: upheld
cancels the round and refunds its debits, rejected puts it back to Proposed. The operator
may :func:`cancel` inside the window only. After the window anyone may :func:`finalize`
an undisputed round; then anyone may :func:`claim` a payout (the vault pays the leaf's
account, never more than the round's total in all); :func:`claim_many` claims one
account's payouts of several rounds in one transaction. After the claim period the
operator sweeps (:func:`sweep`) what was not paid back to the funders (status ``Closed``).
A depositor takes its free balance out with notice: :func:`request_withdrawal`, then
:func:`withdraw` after the vault's ``withdrawalDelay``.

Round files (:func:`write_round_files`), under ``<data_dir>/rounds/<round_id>/``:

==================  =================================================================
``policy.json``     the policy's canonical bytes: ``sha256sum`` gives the on-chain hash
``statement.json``  the statement (per participant: receipts, units, factors, exact
                    shares, payout, proof; per agreement; bills; ignored evidence)
``statement.csv``   the same per participant and agreement, one row each
``bills.csv``       what each consumer owes for the period
``payouts.json``    the claim file: every payout with its proof + OpenZeppelin's tree
==================  =================================================================

Every function takes keyword-only arguments and raises :class:`~service.errors.TallyError`
subclasses; a revert surfaces as :class:`~service.errors.TransactionReverted` carrying the
vault's custom error name (``SettlementVaultAlreadyClaimed``, …) and a one-line message
that says what it means (:func:`explain_revert`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from service import jsonsafe
from service.chain.client import Chain
from service.errors import (
    InsufficientBalance,
    InvalidInput,
    RoundExists,
    RoundMismatch,
    RoundNotFound,
    SettlementError,
    TransactionReverted,
)
from service.evidence.anchor import read_checkpoint
from service.evidence.eip712 import keccak256, to_checksum_address
from service.settlement.engine import RoundResult
from service.settlement.payout_tree import PayoutTree, build_payout_tree

__all__ = [
    "ROUND_STATUS",
    "ClaimResult",
    "ClaimsSummary",
    "OnChainRound",
    "ProposedRound",
    "RoundFiles",
    "balance_of",
    "cancel",
    "challenge",
    "claim",
    "claim_all",
    "claim_many",
    "debits_of",
    "deposit",
    "explain_revert",
    "finalize",
    "finding_hash",
    "ledger_of",
    "load_payouts",
    "pending_round",
    "pending_withdrawal",
    "propose",
    "read_round",
    "request_withdrawal",
    "resolve",
    "round_dir",
    "settled_until",
    "sweep",
    "unallocated",
    "withdraw",
    "write_round_files",
]

ROUND_STATUS = ("None", "Proposed", "Disputed", "Cancelled", "Finalized", "Closed")
"""``ISettlementVault.RoundStatus`` names by value."""


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _tx(receipt: TxReceipt) -> str:
    return _hex(bytes(receipt["transactionHash"]))


# --- files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundFiles:
    """Where a round's files were written."""

    directory: Path
    policy: Path
    statement_json: Path
    statement_csv: Path
    bills_csv: Path
    payouts: Path


def round_dir(data_dir: Path, round_id: int) -> Path:
    """``<data_dir>/rounds/<round_id>``."""
    return Path(data_dir) / "rounds" / str(round_id)


def write_round_files(*, result: RoundResult, data_dir: Path) -> RoundFiles:
    """Write the round's policy, statement (JSON, CSV), bills and claim file."""
    directory = round_dir(data_dir, result.round_id)
    directory.mkdir(parents=True, exist_ok=True)
    files = RoundFiles(
        directory=directory,
        policy=directory / "policy.json",
        statement_json=directory / "statement.json",
        statement_csv=directory / "statement.csv",
        bills_csv=directory / "bills.csv",
        payouts=directory / "payouts.json",
    )
    files.policy.write_bytes(result.policy.canonical_bytes)
    files.statement_json.write_text(json.dumps(result.statement(), indent=2) + "\n", "utf-8")
    files.statement_csv.write_text(result.statement_csv(), "utf-8")
    files.bills_csv.write_text(result.bills_csv(), "utf-8")
    files.payouts.write_text(json.dumps(result.payouts_document(), indent=2) + "\n", "utf-8")
    return files


def load_payouts(source: Path | Mapping[str, Any]) -> PayoutTree:
    """Rebuild a round's payout tree from its claim file (``payouts.json``) or its JSON.

    The tree is rebuilt from the listed ``(account, amount)`` pairs; its root must equal
    the file's ``payout_root`` (:class:`RoundMismatch` otherwise).
    """
    if isinstance(source, Mapping):
        doc: Any = source
        name = "payouts document"
    else:
        name = Path(source).name
        try:
            doc = jsonsafe.loads(Path(source).read_text(encoding="utf-8"), what=name)
        except FileNotFoundError:
            raise InvalidInput(f"no payout file {source}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InvalidInput(f"{name} is not JSON: {err}") from None
    try:
        round_id = int(doc["round_id"])
        payouts = {str(c["account"]): int(c["amount"]) for c in doc["claims"]}
        root = str(doc["payout_root"]).lower()
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidInput(f"{name} is not a payout file: {err!r}") from None
    tree = build_payout_tree(round_id=round_id, payouts=payouts)
    if _hex(tree.root) != root:
        raise RoundMismatch(f"{name}: its payouts give root {_hex(tree.root)}, it says {root}")
    return tree


# --- reverts, in words ----------------------------------------------------------------------


def _status_name(value: Any) -> str:
    try:
        return ROUND_STATUS[int(value)]
    except (IndexError, TypeError, ValueError):
        return str(value)


def _addr(value: Any) -> str:
    return to_checksum_address(str(value))


_EXPLAIN: dict[str, Callable[[tuple[Any, ...]], str]] = {
    "SettlementVaultUnauthorizedAccount": lambda a: (
        f"{_addr(a[0])} lacks the registry role this needs ({_hex(a[1])})"
    ),
    "SettlementVaultZeroAmount": lambda a: "the amount must be positive",
    "SettlementVaultZeroAccount": lambda a: "the account must not be the zero address",
    "SettlementVaultNoWithdrawalRequest": lambda a: (
        f"{_addr(a[0])} has no withdrawal request: run `tally withdraw request AMOUNT` first"
    ),
    "SettlementVaultWithdrawalNotReady": lambda a: (
        f"the withdrawal of {_addr(a[0])} can be made from {a[1]} (unix seconds) on"
    ),
    "SettlementVaultNothingToWithdraw": lambda a: (
        f"{_addr(a[0])} has no free balance left on the vault to withdraw"
    ),
    "SettlementVaultZeroPayoutRoot": lambda a: "a round needs a non-zero payout root",
    "SettlementVaultTotalTooLarge": lambda a: f"the total {a[0]} is above the maximum {a[1]}",
    "SettlementVaultRoundExists": lambda a: (
        f"round id {a[0]} is already used on the vault (cancelled ids stay used): pick a new id"
    ),
    "SettlementVaultUnknownCheckpoint": lambda a: (
        f"evidence checkpoint {a[0]} is not on the ledger (it holds {a[1]})"
    ),
    "SettlementVaultInvalidPeriod": lambda a: f"the period [{a[0]}, {a[1]}) is empty",
    "SettlementVaultRoundPending": lambda a: (
        f"round {a[0]} is still pending (Proposed or Disputed): finalize, resolve or cancel it "
        "before proposing another"
    ),
    "SettlementVaultPeriodOverlap": lambda a: (
        f"round {a[0]}'s period starts at {a[1]}, before {a[2]}, where the periods already "
        "settled or pending end: rounds may not overlap"
    ),
    "SettlementVaultNoDebits": lambda a: "a round needs at least one debit",
    "SettlementVaultDebitsNotAscending": lambda a: (
        f"debit accounts must be non-zero and strictly ascending: {_addr(a[1])} follows "
        f"{_addr(a[0])}"
    ),
    "SettlementVaultZeroDebit": lambda a: f"the debit of {_addr(a[0])} is zero",
    "SettlementVaultInsufficientBalance": lambda a: (
        f"{_addr(a[0])} must fund {a[1]} but its free balance on the vault is {a[2]}"
    ),
    "SettlementVaultDebitsMismatch": lambda a: f"the debits sum to {a[0]}, the total is {a[1]}",
    "SettlementVaultNoStanding": lambda a: (
        f"{_addr(a[1])} has no standing in round {a[0]}: only auditors, the consumers it "
        "debits and its payees (with their payout proof) may challenge"
    ),
    "SettlementVaultAlreadyChallenged": lambda a: f"{_addr(a[1])} already challenged round {a[0]}",
    "SettlementVaultRoundNotProposed": lambda a: (
        f"round {a[0]} is {_status_name(a[1])}, not Proposed"
    ),
    "SettlementVaultRoundDisputed": lambda a: (
        f"round {a[0]} is disputed: an arbiter must rule first (`tally settle resolve`)"
    ),
    "SettlementVaultRoundNotDisputed": lambda a: (
        f"round {a[0]} is {_status_name(a[1])}, not Disputed: there is nothing to resolve"
    ),
    "SettlementVaultRoundNotCancellable": lambda a: (
        f"round {a[0]} is {_status_name(a[1])}: only Proposed or Disputed rounds can be cancelled"
    ),
    "SettlementVaultRoundNotFinalized": lambda a: (
        f"round {a[0]} is {_status_name(a[1])}, not Finalized"
    ),
    "SettlementVaultChallengeWindowClosed": lambda a: (
        f"the challenge window of round {a[0]} closed at {a[1]}: after it only an upheld "
        "dispute cancels, and challenges are over"
    ),
    "SettlementVaultChallengeWindowOpen": lambda a: (
        f"the challenge window of round {a[0]} is open until {a[1]}"
    ),
    "SettlementVaultAlreadyClaimed": lambda a: f"payout {a[1]} of round {a[0]} is already claimed",
    "SettlementVaultInvalidProof": lambda a: (
        f"the proof does not prove payout {a[1]} of round {a[0]} ({a[3]} to {_addr(a[2])})"
    ),
    "SettlementVaultPayoutExceedsTotal": lambda a: (
        f"paying it would bring round {a[0]}'s payouts to {a[1]}, above its total {a[2]}"
    ),
    "SettlementVaultClaimPeriodNotOver": lambda a: (
        f"round {a[0]} can be swept from {a[1]} (unix seconds) on"
    ),
    "SettlementVaultBadBatch": lambda a: "the batch is empty or its arrays differ in length",
    "EnforcedPause": lambda a: "the vault is paused",
}


def explain_revert(err: TransactionReverted) -> str:
    """One line saying what a vault revert means (the raw message if it is not known)."""
    explain = _EXPLAIN.get(err.error_name or "")
    if explain is None:
        return err.message
    try:
        text = explain(tuple(err.error_args))
    except (IndexError, TypeError, ValueError):
        return err.message
    return f"{text} ({err.error_name})"


def _send(chain: Chain, fn: ContractFunction, *, sender: LocalAccount) -> TxReceipt:
    """Send ``fn``; a revert is re-raised with its meaning in the message."""
    try:
        return chain.transact(fn, sender=sender)
    except TransactionReverted as err:
        raise TransactionReverted(
            explain_revert(err),
            error_name=err.error_name,
            error_args=err.error_args,
            tx_hash=err.tx_hash,
        ) from None


# --- reading the vault ----------------------------------------------------------------------


@dataclass(frozen=True)
class OnChainRound:
    """``SettlementVault.round(roundId)``."""

    round_id: int
    payout_root: bytes
    policy_hash: bytes
    total: int
    paid: int
    status: str
    evidence_seq: int
    challenge_deadline: int
    finalized_at: int
    period_start: int
    period_end: int
    statement_uri: str

    @property
    def unpaid(self) -> int:
        """What the round still holds for its payees (0 once Cancelled or Closed)."""
        return self.total - self.paid if self.status in ("Proposed", "Disputed", "Finalized") else 0


def read_round(*, chain: Chain, vault: Contract, round_id: int) -> OnChainRound:
    """The round as stored; :class:`RoundNotFound` when the id is unused."""
    (root, policy, total, paid, status, seq, deadline, finalized, p_start, p_end, uri) = chain.call(
        vault.functions.round(round_id)
    )
    if int(status) == 0:
        raise RoundNotFound(f"round {round_id} does not exist on the vault")
    return OnChainRound(
        round_id=round_id,
        payout_root=bytes(root),
        policy_hash=bytes(policy),
        total=int(total),
        paid=int(paid),
        status=ROUND_STATUS[int(status)],
        evidence_seq=int(seq),
        challenge_deadline=int(deadline),
        finalized_at=int(finalized),
        period_start=int(p_start),
        period_end=int(p_end),
        statement_uri=str(uri),
    )


def debits_of(*, chain: Chain, vault: Contract, round_id: int) -> dict[str, int]:
    """``funders(roundId)``: checksummed account -> what the round took from it."""
    return {_addr(a): int(v) for a, v in chain.call(vault.functions.funders(round_id))}


def unallocated(*, chain: Chain, vault: Contract) -> int:
    """The sum of every depositor's free balance."""
    return int(chain.call(vault.functions.unallocated()))


def balance_of(*, chain: Chain, vault: Contract, account: str) -> int:
    """``account``'s free balance: deposited, not debited by a round, not withdrawn."""
    return int(chain.call(vault.functions.balanceOf(to_checksum_address(account))))


def pending_withdrawal(*, chain: Chain, vault: Contract, account: str) -> tuple[int, int]:
    """``account``'s withdrawal request ``(amount, available_at)``; ``(0, 0)``: none."""
    amount, at = chain.call(vault.functions.pendingWithdrawal(to_checksum_address(account)))
    return int(amount), int(at)


def settled_until(*, chain: Chain, vault: Contract) -> int:
    """Where the settled or pending periods end: the earliest start of the next round."""
    return int(chain.call(vault.functions.settledUntil()))


def pending_round(*, chain: Chain, vault: Contract) -> int | None:
    """The id of the round that is Proposed or Disputed, if any."""
    pending, round_id = chain.call(vault.functions.pendingRound())
    return int(round_id) if pending else None


def ledger_of(*, chain: Chain, vault: Contract) -> Contract:
    """The EvidenceLedger the vault checks checkpoints against."""
    return chain.contract("EvidenceLedger", str(chain.call(vault.functions.ledger())))


# --- money in and out of the free balances --------------------------------------------------


def deposit(
    *,
    chain: Chain,
    vault: Contract,
    token: Contract,
    sender: LocalAccount,
    amount: int,
    account: str | None = None,
) -> TxReceipt:
    """Approve the vault for ``amount`` of ``sender``'s tokens, then deposit them into
    ``sender``'s free balance, or into ``account``'s (``depositFor``: the sender pays)."""
    if type(amount) is not int or amount <= 0:
        raise InvalidInput(f"a deposit must be a positive integer amount, got {amount!r}")
    chain.transact(token.functions.approve(vault.address, amount), sender=sender)
    if account is None or account.lower() == sender.address.lower():
        return _send(chain, vault.functions.deposit(amount), sender=sender)
    return _send(
        chain, vault.functions.depositFor(to_checksum_address(account), amount), sender=sender
    )


def request_withdrawal(
    *, chain: Chain, vault: Contract, sender: LocalAccount, amount: int
) -> tuple[TxReceipt, int]:
    """Ask to withdraw ``amount`` of ``sender``'s free balance after the notice (0 cancels);
    returns the receipt and the time (unix seconds) from which :func:`withdraw` pays."""
    if type(amount) is not int or amount < 0:
        raise InvalidInput(f"a withdrawal must be a non-negative integer amount, got {amount!r}")
    receipt = _send(chain, vault.functions.requestWithdrawal(amount), sender=sender)
    (event,) = vault.events.WithdrawalRequested().process_receipt(receipt, errors=DISCARD)
    return receipt, int(event["args"]["availableAt"])


def withdraw(*, chain: Chain, vault: Contract, sender: LocalAccount) -> tuple[TxReceipt, int]:
    """Pay ``sender`` its requested withdrawal (after the notice); returns the amount paid."""
    receipt = _send(chain, vault.functions.withdraw(), sender=sender)
    (event,) = vault.events.Withdrawn().process_receipt(receipt, errors=DISCARD)
    return receipt, int(event["args"]["amount"])


# --- the round's life -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProposedRound:
    round_id: int
    payout_root: bytes
    total: int
    evidence_seq: int
    policy_hash: bytes
    period_start: int
    period_end: int
    debits: tuple[tuple[str, int], ...]
    challenge_deadline: int
    statement_uri: str
    tx_hash: str
    block_number: int
    files: RoundFiles | None


def propose(
    *,
    chain: Chain,
    vault: Contract,
    result: RoundResult,
    sender: LocalAccount,
    evidence_seq: int | None = None,
    data_dir: Path | None = None,
    statement_uri: str | None = None,
) -> ProposedRound:
    """Propose ``result`` as its round on the vault, with its period and its debits.

    ``evidence_seq`` (default ``result.checkpoint_seq``) is the ledger checkpoint: its tree
    size on chain must be the size the round was computed from (:class:`RoundMismatch`).
    The debits are ``result.debits`` (the round's bills); they must sum to the pool
    (:class:`SettlementError`) and each consumer's free balance must cover its bill
    (:class:`InsufficientBalance`), both checked before sending. With ``data_dir`` the
    round files are written first, and ``statement_uri`` defaults to the claim file's
    ``file://`` URI.
    """
    seq = result.checkpoint_seq if evidence_seq is None else evidence_seq
    if seq is None:
        raise SettlementError("propose needs the evidence checkpoint seq the round was built on")
    try:
        taken = read_round(chain=chain, vault=vault, round_id=result.round_id)
    except RoundNotFound:
        pass
    else:
        raise RoundExists(
            f"round id {result.round_id} is already used on chain ({taken.status}); ids are "
            "never reused, not even cancelled ones: choose a new round id"
        )
    checkpoint = read_checkpoint(chain, ledger_of(chain=chain, vault=vault), seq)
    if checkpoint.tree_size != result.checkpoint_size:
        raise RoundMismatch(
            f"checkpoint {seq} on chain has size {checkpoint.tree_size}; round "
            f"{result.round_id} was computed at size {result.checkpoint_size}"
        )
    debits = result.debits
    if sum(amount for _, amount in debits) != result.pool:
        raise SettlementError(
            f"round {result.round_id}: the bills sum to {sum(a for _, a in debits)}, "
            f"the pool is {result.pool}"
        )
    for account, amount in debits:
        free = balance_of(chain=chain, vault=vault, account=account)
        if free < amount:
            raise InsufficientBalance(
                f"round {result.round_id} debits {account} its bill {amount}; its free balance "
                f"on the vault is {free}: deposit {amount - free} more "
                f"(`tally deposit {amount - free} --for {account}`)",
                needed=amount,
                unallocated=free,
            )
    files = write_round_files(result=result, data_dir=data_dir) if data_dir is not None else None
    uri = statement_uri
    if uri is None:
        uri = files.payouts.resolve().as_uri() if files is not None else ""  # T15: no usage
    receipt = _send(
        chain,
        vault.functions.propose(
            result.round_id,
            result.root,
            result.pool,
            seq,
            result.policy_hash,
            result.period_start,
            result.period_end,
            [(account, amount) for account, amount in debits],
            uri,
        ),
        sender=sender,
    )
    (event,) = vault.events.RoundProposed().process_receipt(receipt, errors=DISCARD)
    return ProposedRound(
        round_id=result.round_id,
        payout_root=result.root,
        total=result.pool,
        evidence_seq=seq,
        policy_hash=result.policy_hash,
        period_start=result.period_start,
        period_end=result.period_end,
        debits=debits,
        challenge_deadline=int(event["args"]["challengeDeadline"]),
        statement_uri=uri,
        tx_hash=_tx(receipt),
        block_number=int(receipt["blockNumber"]),
        files=files,
    )


def finding_hash(finding: bytes) -> bytes:
    """What a challenge commits to: keccak256 of the published finding's bytes (the file
    ``tally audit settlement --json`` wrote, exactly as published)."""
    return keccak256(bytes(finding))


def challenge(
    *,
    chain: Chain,
    vault: Contract,
    round_id: int,
    sender: LocalAccount,
    finding: bytes,
    payouts: PayoutTree | None = None,
) -> TxReceipt:
    """Dispute a proposed round with ``finding`` (the bytes of the published audit report;
    its :func:`finding_hash` goes on chain).

    Standing: an auditor, or a consumer the round debits, needs nothing more; a payee gives
    the round's ``payouts`` tree, from which its index, amount and proof are sent (the tree
    must be the round's: :class:`RoundMismatch`). Without standing the vault reverts with
    ``SettlementVaultNoStanding``.
    """
    index, amount, proof = 0, 0, []
    if payouts is not None:
        on_chain = read_round(chain=chain, vault=vault, round_id=round_id)
        if payouts.round_id != round_id or payouts.root != on_chain.payout_root:
            raise RoundMismatch(
                f"the payout file is not round {round_id}'s (root {_hex(payouts.root)}, on chain "
                f"{_hex(on_chain.payout_root)})"
            )
        if sender.address.lower() in {e.account.lower() for e in payouts.entries}:
            entry = payouts.entry(payouts.index_of(sender.address))
            index, amount, proof = entry.index, entry.amount, list(entry.proof)
    return _send(
        chain,
        vault.functions.challenge(round_id, finding_hash(finding), index, amount, proof),
        sender=sender,
    )


def resolve(
    *,
    chain: Chain,
    vault: Contract,
    round_id: int,
    sender: LocalAccount,
    upheld: bool,
    ruling: bytes,
) -> TxReceipt:
    """Rule on a disputed round (arbiter): ``upheld`` cancels it and refunds its debits;
    rejected makes it Proposed again. ``keccak256(ruling)`` goes on chain as the ruling hash
    (publish the ruling document next to it)."""
    return _send(
        chain, vault.functions.resolve(round_id, bool(upheld), keccak256(ruling)), sender=sender
    )


def cancel(*, chain: Chain, vault: Contract, round_id: int, sender: LocalAccount) -> TxReceipt:
    """Cancel a proposed or disputed round inside its challenge window (operator): its debits
    go back to the funders' free balances."""
    return _send(chain, vault.functions.cancel(round_id), sender=sender)


def finalize(*, chain: Chain, vault: Contract, round_id: int, sender: LocalAccount) -> TxReceipt:
    """Finalize an undisputed round after its challenge window (anyone may)."""
    return _send(chain, vault.functions.finalize(round_id), sender=sender)


def sweep(
    *, chain: Chain, vault: Contract, round_id: int, sender: LocalAccount
) -> tuple[TxReceipt, int, dict[str, int]]:
    """Close a finalized round after its claim period (operator): ``total - paid`` goes back
    to the funders pro rata. Returns the receipt, the amount returned and the refund per
    funder (checksummed)."""
    receipt = _send(chain, vault.functions.sweep(round_id), sender=sender)
    (swept,) = vault.events.RoundSwept().process_receipt(receipt, errors=DISCARD)
    refunds = {
        _addr(ev["args"]["account"]): int(ev["args"]["amount"])
        for ev in vault.events.RoundRefunded().process_receipt(receipt, errors=DISCARD)
    }
    return receipt, int(swept["args"]["amount"]), refunds


# --- money out ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimResult:
    """One payout: claimed now (``tx_hash``), or found already claimed (``tx_hash`` None)."""

    index: int
    account: str
    amount: int
    tx_hash: str | None
    round_id: int = 0

    @property
    def claimed_now(self) -> bool:
        return self.tx_hash is not None


def _check_tree(chain: Chain, vault: Contract, tree: PayoutTree) -> None:
    on_chain = read_round(chain=chain, vault=vault, round_id=tree.round_id)
    if on_chain.payout_root != tree.root:
        raise RoundMismatch(
            f"round {tree.round_id}: the payout file's root {_hex(tree.root)} is not the "
            f"root on chain {_hex(on_chain.payout_root)}"
        )


def claim(
    *,
    chain: Chain,
    vault: Contract,
    tree: PayoutTree,
    sender: LocalAccount,
    accounts: Sequence[str] | None = None,
) -> list[ClaimResult]:
    """Claim payouts of round ``tree.round_id``; the vault pays each leaf's own account.

    ``accounts``: claim exactly these (an account already paid makes the vault revert
    with ``SettlementVaultAlreadyClaimed``, raised as ``TransactionReverted``). ``None``:
    claim every payout not claimed yet, skipping the paid ones. One transaction per payout:
    the vault batches claims per account over rounds (:func:`claim_many`), not over
    accounts. The tree's root must be the round's root on chain (:class:`RoundMismatch`).
    """
    _check_tree(chain, vault, tree)
    if accounts is None:
        wanted = list(range(len(tree)))
        skip_claimed = True
    else:
        wanted = [tree.index_of(a) for a in accounts]
        skip_claimed = False
    results: list[ClaimResult] = []
    fns = vault.functions
    rid = tree.round_id
    for index in wanted:
        entry = tree.entry(index)
        if skip_claimed and chain.call(fns.isClaimed(rid, index)):
            results.append(ClaimResult(index, entry.account, entry.amount, None, rid))
            continue
        receipt = _send(
            chain,
            fns.claim(rid, index, entry.account, entry.amount, list(entry.proof)),
            sender=sender,
        )
        results.append(ClaimResult(index, entry.account, entry.amount, _tx(receipt), rid))
    return results


def claim_many(
    *,
    chain: Chain,
    vault: Contract,
    trees: Sequence[PayoutTree],
    account: str,
    sender: LocalAccount,
) -> TxReceipt:
    """Claim ``account``'s payouts of several finalized rounds in one transaction (one
    token transfer): ``claimMany``. Every tree must be its round's and pay ``account``."""
    ids, indexes, amounts, proofs = [], [], [], []
    for tree in trees:
        entry = tree.entry(tree.index_of(account))
        ids.append(tree.round_id)
        indexes.append(entry.index)
        amounts.append(entry.amount)
        proofs.append(list(entry.proof))
    return _send(
        chain,
        vault.functions.claimMany(ids, indexes, to_checksum_address(account), amounts, proofs),
        sender=sender,
    )


@dataclass(frozen=True)
class ClaimsSummary:
    """What :func:`claim_all` did: every payout, and how many transactions it took."""

    results: tuple[ClaimResult, ...]
    transactions: int

    @property
    def claimed_now(self) -> int:
        return sum(1 for r in self.results if r.claimed_now)


def claim_all(
    *, chain: Chain, vault: Contract, trees: Sequence[PayoutTree], sender: LocalAccount
) -> ClaimsSummary:
    """Claim every unclaimed payout of the given rounds with as few transactions as the
    vault allows: an account paid in several of the rounds gets one ``claimMany``; an
    account paid in one round gets one ``claim`` (the vault has no batch over accounts)."""
    for tree in trees:
        _check_tree(chain, vault, tree)
    if len({t.round_id for t in trees}) != len(trees):
        raise InvalidInput("each round may be given once")
    pending: dict[str, list[tuple[PayoutTree, int]]] = {}
    results: list[ClaimResult] = []
    for tree in trees:
        for entry in tree.entries:
            if chain.call(vault.functions.isClaimed(tree.round_id, entry.index)):
                results.append(
                    ClaimResult(entry.index, entry.account, entry.amount, None, tree.round_id)
                )
            else:
                pending.setdefault(entry.account.lower(), []).append((tree, entry.index))
    sent = 0
    for _, items in sorted(pending.items()):
        account = items[0][0].entry(items[0][1]).account
        if len(items) == 1:
            tree, index = items[0]
            results.extend(
                claim(chain=chain, vault=vault, tree=tree, sender=sender, accounts=[account])
            )
        else:
            receipt = claim_many(
                chain=chain,
                vault=vault,
                trees=[t for t, _ in items],
                account=account,
                sender=sender,
            )
            for tree, index in items:
                entry = tree.entry(index)
                results.append(
                    ClaimResult(index, entry.account, entry.amount, _tx(receipt), tree.round_id)
                )
        sent += 1
    results.sort(key=lambda r: (r.round_id, r.index))
    return ClaimsSummary(results=tuple(results), transactions=sent)
