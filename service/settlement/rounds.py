"""Settlement rounds on chain: deposit, propose, challenge, cancel, finalize, claim.

The SettlementVault holds the money (see ``contracts/interfaces/ISettlementVault.sol``):
deposits go into its unallocated balance; :func:`propose` reserves a round's pool under
its payout root, with the evidence checkpoint and the policy hash it was computed from;
during the challenge window an auditor or participant may :func:`challenge`; the
operator may :func:`cancel` a proposed or disputed round (its reservation goes back) and
propose a corrected one under a new id; after the window anyone may :func:`finalize` an
undisputed round; then anyone may :func:`claim` a payout, which the vault always pays to
the account in the leaf.

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
vault's custom error name (``SettlementVaultAlreadyClaimed``, …).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.types import TxReceipt

from service.chain.client import Chain
from service.errors import (
    InsufficientUnallocated,
    InvalidInput,
    RoundMismatch,
    RoundNotFound,
    SettlementError,
)
from service.evidence.anchor import read_checkpoint
from service.evidence.eip712 import keccak256
from service.settlement.engine import RoundResult
from service.settlement.payout_tree import PayoutTree, build_payout_tree

__all__ = [
    "ROUND_STATUS",
    "ClaimResult",
    "OnChainRound",
    "ProposedRound",
    "RoundFiles",
    "cancel",
    "challenge",
    "claim",
    "deposit",
    "finalize",
    "ledger_of",
    "load_payouts",
    "propose",
    "read_round",
    "round_dir",
    "unallocated",
    "write_round_files",
]

ROUND_STATUS = ("None", "Proposed", "Disputed", "Cancelled", "Finalized")
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
            doc = json.loads(Path(source).read_text(encoding="utf-8"))
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


# --- reading the vault ----------------------------------------------------------------------


@dataclass(frozen=True)
class OnChainRound:
    """``SettlementVault.round(roundId)``."""

    round_id: int
    payout_root: bytes
    policy_hash: bytes
    total: int
    swept: int
    evidence_seq: int
    challenge_deadline: int
    finalized_at: int
    status: str
    statement_uri: str


def read_round(*, chain: Chain, vault: Contract, round_id: int) -> OnChainRound:
    """The round as stored; :class:`RoundNotFound` when the id is unused."""
    root, policy, total, swept, seq, deadline, finalized, status, uri = chain.call(
        vault.functions.round(round_id)
    )
    if int(status) == 0:
        raise RoundNotFound(f"round {round_id} does not exist on the vault")
    return OnChainRound(
        round_id=round_id,
        payout_root=bytes(root),
        policy_hash=bytes(policy),
        total=int(total),
        swept=int(swept),
        evidence_seq=int(seq),
        challenge_deadline=int(deadline),
        finalized_at=int(finalized),
        status=ROUND_STATUS[int(status)],
        statement_uri=str(uri),
    )


def unallocated(*, chain: Chain, vault: Contract) -> int:
    """Deposited tokens not reserved by any round."""
    return int(chain.call(vault.functions.unallocated()))


def ledger_of(*, chain: Chain, vault: Contract) -> Contract:
    """The EvidenceLedger the vault checks checkpoints against."""
    return chain.contract("EvidenceLedger", str(chain.call(vault.functions.ledger())))


# --- money in -------------------------------------------------------------------------------


def deposit(
    *, chain: Chain, vault: Contract, token: Contract, sender: LocalAccount, amount: int
) -> TxReceipt:
    """Approve the vault for ``amount`` of ``sender``'s tokens, then deposit them."""
    if type(amount) is not int or amount <= 0:
        raise InvalidInput(f"a deposit must be a positive integer amount, got {amount!r}")
    chain.transact(token.functions.approve(vault.address, amount), sender=sender)
    return chain.transact(vault.functions.deposit(amount), sender=sender)


# --- the round's life -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProposedRound:
    round_id: int
    payout_root: bytes
    total: int
    evidence_seq: int
    policy_hash: bytes
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
    """Propose ``result`` as its round on the vault.

    ``evidence_seq`` (default ``result.checkpoint_seq``) is the ledger checkpoint: its tree
    size on chain must be the size the round was computed from (:class:`RoundMismatch`).
    The vault's unallocated balance must cover the pool (:class:`InsufficientUnallocated`,
    checked before sending). With ``data_dir`` the round files are written first, and
    ``statement_uri`` defaults to the statement file's ``file://`` URI.
    """
    seq = result.checkpoint_seq if evidence_seq is None else evidence_seq
    if seq is None:
        raise SettlementError("propose needs the evidence checkpoint seq the round was built on")
    checkpoint = read_checkpoint(chain, ledger_of(chain=chain, vault=vault), seq)
    if checkpoint.tree_size != result.checkpoint_size:
        raise RoundMismatch(
            f"checkpoint {seq} on chain has size {checkpoint.tree_size}; round "
            f"{result.round_id} was computed at size {result.checkpoint_size}"
        )
    free = unallocated(chain=chain, vault=vault)
    if free < result.pool:
        raise InsufficientUnallocated(
            f"round {result.round_id} needs {result.pool}; the vault's unallocated balance is "
            f"{free}: deposit {result.pool - free} more",
            needed=result.pool,
            unallocated=free,
        )
    files = write_round_files(result=result, data_dir=data_dir) if data_dir is not None else None
    uri = statement_uri
    if uri is None:
        uri = files.statement_json.resolve().as_uri() if files is not None else ""
    receipt = chain.transact(
        vault.functions.propose(
            result.round_id, result.root, result.pool, seq, result.policy_hash, uri
        ),
        sender=sender,
    )
    (event,) = vault.events.RoundProposed().process_receipt(receipt)
    return ProposedRound(
        round_id=result.round_id,
        payout_root=result.root,
        total=result.pool,
        evidence_seq=seq,
        policy_hash=result.policy_hash,
        challenge_deadline=int(event["args"]["challengeDeadline"]),
        statement_uri=uri,
        tx_hash=_tx(receipt),
        block_number=int(receipt["blockNumber"]),
        files=files,
    )


def challenge(
    *, chain: Chain, vault: Contract, round_id: int, sender: LocalAccount, reason: str
) -> TxReceipt:
    """Dispute a proposed round; ``keccak256(reason as UTF-8)`` goes on chain as the
    ``reasonHash`` (publish the reason text, e.g. the audit report, next to it)."""
    return chain.transact(
        vault.functions.challenge(round_id, keccak256(reason.encode("utf-8"))), sender=sender
    )


def cancel(*, chain: Chain, vault: Contract, round_id: int, sender: LocalAccount) -> TxReceipt:
    """Cancel a proposed or disputed round (operator): its reservation is released."""
    return chain.transact(vault.functions.cancel(round_id), sender=sender)


def finalize(*, chain: Chain, vault: Contract, round_id: int, sender: LocalAccount) -> TxReceipt:
    """Finalize an undisputed round after its challenge window (anyone may)."""
    return chain.transact(vault.functions.finalize(round_id), sender=sender)


# --- money out ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimResult:
    """One payout: claimed now (``tx_hash``), or found already claimed (``tx_hash`` None)."""

    index: int
    account: str
    amount: int
    tx_hash: str | None

    @property
    def claimed_now(self) -> bool:
        return self.tx_hash is not None


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
    claim every payout not claimed yet, skipping the paid ones. The tree's root must be
    the round's root on chain (:class:`RoundMismatch`).
    """
    on_chain = read_round(chain=chain, vault=vault, round_id=tree.round_id)
    if on_chain.payout_root != tree.root:
        raise RoundMismatch(
            f"round {tree.round_id}: the payout file's root {_hex(tree.root)} is not the "
            f"root on chain {_hex(on_chain.payout_root)}"
        )
    if accounts is None:
        wanted = list(range(len(tree)))
        skip_claimed = True
    else:
        wanted = [tree.index_of(a) for a in accounts]
        skip_claimed = False
    results: list[ClaimResult] = []
    fns = vault.functions
    for index in wanted:
        entry = tree.entry(index)
        if skip_claimed and chain.call(fns.isClaimed(tree.round_id, index)):
            results.append(ClaimResult(index, entry.account, entry.amount, None))
            continue
        receipt = chain.transact(
            fns.claim(tree.round_id, index, entry.account, entry.amount, list(entry.proof)),
            sender=sender,
        )
        results.append(ClaimResult(index, entry.account, entry.amount, _tx(receipt)))
    return results
