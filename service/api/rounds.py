"""Settlement rounds through the API (no FastAPI here): compute, propose, finalize,
cancel, and read statements, claims and bills.

A round is computed (a dry run, nothing sent) with :func:`compute_draft` from a policy,
a period and an anchored checkpoint (default: the latest) by
:func:`service.settlement.engine.compute_round`, and recorded as a
:class:`~service.api.models.RoundDraft` (its inputs, root and total) in the shared
database, so any worker can propose it later. The result is a pure function of the
inputs, so statements, claims and the proposal recompute it (kept in a small
per-process cache keyed by round id and root) and check the root again. Chain actions
(:mod:`service.settlement.rounds`) are signed with this server's operator key.

Round status comes from the vault: ``draft`` (computed, not on chain), ``Proposed``,
``Disputed``, ``Cancelled``, ``Finalized``, ``Closed``. The round list also shows rounds
proposed outside the API (the CLI), as the indexer mirrored them.

Statements and claims are served for any round on the vault: a round computed here (its
draft's root is the on-chain root) from the recomputation; any other round from the
document its on-chain ``statementURI`` points to, fetched and served only once its
payouts rebuild the on-chain root (:mod:`service.settlement.published`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from web3.contract import Contract
from web3.types import TxReceipt

from service.api.models import RoundDraft
from service.chain.client import Chain
from service.errors import (
    CheckpointNotFound,
    ClaimNotFound,
    OperatorKeyUnavailable,
    RoundExists,
    RoundMismatch,
    RoundNotFound,
    StatementNotFound,
)
from service.evidence.anchor import latest_anchor
from service.evidence.eip712 import to_checksum_address
from service.evidence.models import AnchorRow
from service.settlement import rounds as chain_rounds
from service.settlement.engine import RoundResult, compute_bills, compute_round
from service.settlement.payout_tree import PayoutTree
from service.settlement.policy import parse_policy
from service.settlement.published import load_published

_CACHE_SIZE = 16
_cache: OrderedDict[tuple[int, str], RoundResult] = OrderedDict()
_cache_lock = threading.Lock()


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _checkpoint(session: Session, seq: int | None) -> AnchorRow:
    if seq is None:
        row = latest_anchor(session)
        if row is None:
            raise CheckpointNotFound("nothing is anchored yet: a round needs a checkpoint")
        return row
    found = session.get(AnchorRow, seq)
    if found is None:
        raise CheckpointNotFound(f"checkpoint {seq} is not anchored by this service")
    return found


def _draft_json(draft: RoundDraft, status: str) -> dict[str, Any]:
    return {
        "round_id": draft.round_id,
        "status": status,
        "period": {"start": draft.period_start, "end": draft.period_end},
        "checkpoint": {"seq": draft.checkpoint_seq, "size": draft.checkpoint_size},
        "policy_hash": draft.policy_hash,
        "payout_root": draft.payout_root,
        "total": draft.total,
        "payees": draft.payees,
        "proposed_tx": draft.proposed_tx,
    }


def _status(chain: Chain, vault: Contract, round_id: int) -> chain_rounds.OnChainRound | None:
    try:
        return chain_rounds.read_round(chain=chain, vault=vault, round_id=round_id)
    except RoundNotFound:
        return None


def _remember(result: RoundResult) -> None:
    with _cache_lock:
        _cache[(result.round_id, _hex(result.root))] = result
        _cache.move_to_end((result.round_id, _hex(result.root)))
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def _result_of(session: Session, draft: RoundDraft) -> RoundResult:
    key = (draft.round_id, draft.payout_root)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    result = compute_round(
        session_or_engine=session,
        round_id=draft.round_id,
        period_start=draft.period_start,
        period_end=draft.period_end,
        checkpoint_size=draft.checkpoint_size,
        policy=parse_policy(json.loads(draft.policy)),
        checkpoint_seq=draft.checkpoint_seq,
    )
    if _hex(result.root) != draft.payout_root:  # the log under the checkpoint changed
        raise RoundMismatch(
            f"round {draft.round_id} recomputes to {_hex(result.root)}, "
            f"it was computed as {draft.payout_root}"
        )
    _remember(result)
    return result


def _draft(session: Session, round_id: int) -> RoundDraft:
    draft = session.get(RoundDraft, round_id)
    if draft is None:
        raise RoundNotFound(f"round {round_id} was not computed through this API")
    return draft


# --- operator actions -----------------------------------------------------------------------


def compute_draft(
    *,
    engine: Engine,
    chain: Chain,
    vault: Contract,
    round_id: int,
    period_start: int,
    period_end: int,
    policy: Mapping[str, Any],
    checkpoint_seq: int | None,
    created_by: str,
) -> dict[str, Any]:
    """Compute round ``round_id`` (dry run) and record it; returns the full statement.

    A round id already on the vault is :class:`RoundExists`; recomputing a draft that was
    not proposed replaces it.
    """
    parsed = parse_policy(policy)
    if _status(chain, vault, round_id) is not None:
        raise RoundExists(f"round {round_id} is already on the vault; use a new round id")
    with Session(engine) as session:
        cp = _checkpoint(session, checkpoint_seq)
        result = compute_round(
            session_or_engine=session,
            round_id=round_id,
            period_start=period_start,
            period_end=period_end,
            checkpoint_size=cp.tree_size,
            policy=parsed,
            checkpoint_seq=cp.seq,
        )
        fields: dict[str, Any] = {
            "period_start": period_start,
            "period_end": period_end,
            "checkpoint_seq": cp.seq,
            "checkpoint_size": cp.tree_size,
            "policy": json.dumps(dict(policy), sort_keys=True, separators=(",", ":")),
            "policy_hash": parsed.hash_hex,
            "payout_root": _hex(result.root),
            "total": str(result.pool),
            "payees": len(result.tree),
            "created_by": created_by,
            "created_at": int(time.time()),
            "proposed_tx": None,
        }
        draft = session.get(RoundDraft, round_id)
        if draft is None:
            draft = RoundDraft(round_id=round_id, **fields)
        else:
            for name, value in fields.items():
                setattr(draft, name, value)
        session.add(draft)
        session.commit()
    _remember(result)
    return {"status": "draft", "statement": result.statement()}


def _operator(operator: LocalAccount | None) -> LocalAccount:
    if operator is None:
        raise OperatorKeyUnavailable(
            "this server has no operator key for its network, so it cannot send the "
            "transaction; use the CLI where the key is"
        )
    return operator


def propose_draft(
    *,
    engine: Engine,
    chain: Chain,
    vault: Contract,
    operator: LocalAccount | None,
    round_id: int,
    data_dir: Any,
) -> dict[str, Any]:
    """Propose a computed round on the vault (writes its files under ``data_dir``). The
    round's on-chain statementURI names its claim file (``payouts.json``: each payee's
    amount and proof, no usage), not the full statement (T15)."""
    sender = _operator(operator)
    with Session(engine) as session:
        draft = _draft(session, round_id)
        result = _result_of(session, draft)
    claim_file = chain_rounds.round_dir(data_dir, round_id) / "payouts.json"
    proposed = chain_rounds.propose(
        chain=chain,
        vault=vault,
        result=result,
        sender=sender,
        data_dir=data_dir,
        statement_uri=claim_file.resolve().as_uri(),
    )
    with Session(engine) as session:
        draft = _draft(session, round_id)
        draft.proposed_tx = proposed.tx_hash
        session.add(draft)
        session.commit()
    return round_detail(engine=engine, chain=chain, vault=vault, round_id=round_id) | {
        "tx_hash": proposed.tx_hash,
        "block_number": proposed.block_number,
    }


def finalize_round(
    *,
    engine: Engine,
    chain: Chain,
    vault: Contract,
    operator: LocalAccount | None,
    round_id: int,
) -> dict[str, Any]:
    """Finalize a proposed round after its challenge window."""
    receipt = chain_rounds.finalize(
        chain=chain, vault=vault, round_id=round_id, sender=_operator(operator)
    )
    return _detail_after(receipt, engine=engine, chain=chain, vault=vault, round_id=round_id)


def cancel_round(
    *,
    engine: Engine,
    chain: Chain,
    vault: Contract,
    operator: LocalAccount | None,
    round_id: int,
) -> dict[str, Any]:
    """Cancel a proposed or disputed round (its reservation goes back to the vault)."""
    receipt = chain_rounds.cancel(
        chain=chain, vault=vault, round_id=round_id, sender=_operator(operator)
    )
    return _detail_after(receipt, engine=engine, chain=chain, vault=vault, round_id=round_id)


def _detail_after(
    receipt: TxReceipt, *, engine: Engine, chain: Chain, vault: Contract, round_id: int
) -> dict[str, Any]:
    """The round as it stands after ``receipt``'s transaction, with that transaction."""
    return round_detail(engine=engine, chain=chain, vault=vault, round_id=round_id) | {
        "tx_hash": _hex(bytes(receipt["transactionHash"])),
        "block_number": int(receipt["blockNumber"]),
    }


# --- reads --------------------------------------------------------------------------------


def _on_chain_json(rnd: chain_rounds.OnChainRound) -> dict[str, Any]:
    return {
        "status": rnd.status,
        "payout_root": _hex(rnd.payout_root),
        "total": str(rnd.total),
        "paid": str(rnd.paid),
        "period": {"start": rnd.period_start, "end": rnd.period_end},
        "policy_hash": _hex(rnd.policy_hash),
        "evidence_seq": rnd.evidence_seq,
        "challenge_deadline": rnd.challenge_deadline,
        "finalized_at": rnd.finalized_at,
        "statement_uri": rnd.statement_uri,
    }


def round_detail(*, engine: Engine, chain: Chain, vault: Contract, round_id: int) -> dict[str, Any]:
    """A round as the vault holds it, with the API's inputs (period, policy) if computed here."""
    rnd = _status(chain, vault, round_id)
    with Session(engine) as session:
        draft = session.get(RoundDraft, round_id)
    if rnd is None and draft is None:
        raise RoundNotFound(f"round {round_id} is neither on the vault nor computed here")
    out: dict[str, Any] = {"round_id": round_id, "on_chain": None, "computed": None}
    out["status"] = rnd.status if rnd is not None else "draft"
    if rnd is not None:
        out["on_chain"] = _on_chain_json(rnd)
    if draft is not None:
        out["computed"] = _draft_json(draft, out["status"]) | {"policy": json.loads(draft.policy)}
    out["mirror"] = _mirrored_progress(engine=engine, chain=chain, vault=vault, round_id=round_id)
    return out


def _mirrored_progress(
    *, engine: Engine, chain: Chain, vault: Contract, round_id: int
) -> dict[str, Any] | None:
    """The round's claim progress as the indexer mirrored it from the vault's events
    (None: not mirrored yet): what was claimed, by how many claims, and swept, as of
    ``block_number``, and the round's steps (``history``: each status-changing event).
    Individual claims stay with their payee and staff (``/claims``)."""
    from service.indexer.models import Round, RoundStatusChange

    contract = vault.address.lower()
    with Session(engine) as session:
        row = session.get(Round, (chain.chain_id, contract, round_id))
        steps = session.exec(
            select(RoundStatusChange)
            .where(
                col(RoundStatusChange.chain_id) == chain.chain_id,
                col(RoundStatusChange.contract) == contract,
                col(RoundStatusChange.round_id) == round_id,
            )
            .order_by(col(RoundStatusChange.block_number), col(RoundStatusChange.log_index))
        ).all()
    if row is None:
        return None
    return {
        "history": [
            {"event": s.event, "status": s.status.capitalize(), "block_number": s.block_number}
            for s in steps
        ],
        "status": row.status.capitalize(),
        "total": str(row.total),
        "claimed_total": str(row.claimed_total),
        "claim_count": row.claim_count,
        "swept_total": str(row.swept_total),
        "unclaimed": str(max(0, row.total - row.claimed_total - row.swept_total)),
        "block_number": row.block_number,
    }


def list_rounds(
    *, engine: Engine, chain: Chain, vault: Contract, offset: int, limit: int
) -> dict[str, Any]:
    """Rounds computed here or mirrored from the vault, by round id (newest first)."""
    from service.indexer.models import Round

    with Session(engine) as session:
        drafts = {d.round_id: d for d in session.exec(select(RoundDraft))}
        mirrored = {
            int(r.round_id): r
            for r in session.exec(
                select(Round).where(
                    col(Round.chain_id) == chain.chain_id,
                    col(Round.contract) == vault.address.lower(),
                )
            )
        }
    ids = sorted(set(drafts) | set(mirrored), reverse=True)
    page = ids[offset : offset + limit]
    items = []
    for rid in page:
        m, d = mirrored.get(rid), drafts.get(rid)
        if m is not None:  # what the vault says, as mirrored
            item: dict[str, Any] = {
                "round_id": rid,
                "status": m.status.capitalize(),
                "payout_root": m.payout_root,
                "total": str(m.total),
                "policy_hash": m.policy_hash,
                "evidence_seq": m.evidence_seq,
            }
        else:  # computed here, not mirrored (yet): ask the vault
            assert d is not None
            live = _status(chain, vault, rid)
            item = {
                "round_id": rid,
                "status": live.status if live is not None else "draft",
                "payout_root": d.payout_root,
                "total": d.total,
                "policy_hash": d.policy_hash,
                "evidence_seq": d.checkpoint_seq,
            }
        if m is not None:
            item["period"] = {"start": int(m.period_start), "end": int(m.period_end)}
        else:
            item["period"] = None if d is None else {"start": d.period_start, "end": d.period_end}
        items.append(item)
    return {"total": len(ids), "offset": offset, "rounds": items}


def _served(
    *, engine: Engine, chain: Chain, vault: Contract, round_id: int
) -> tuple[dict[str, Any], PayoutTree, str, chain_rounds.OnChainRound | None]:
    """The round's statement and payout tree, and where they come from: the round computed
    here when its root is the on-chain one (or it is not on chain yet), else the document
    the round's statementURI publishes, verified against the on-chain root."""
    rnd = _status(chain, vault, round_id)
    with Session(engine) as session:
        draft = session.get(RoundDraft, round_id)
        if draft is not None and (rnd is None or _hex(rnd.payout_root) == draft.payout_root):
            result = _result_of(session, draft)
            return result.statement(), result.tree, "computed here", rnd
    if rnd is None:
        raise RoundNotFound(f"round {round_id} is neither on the vault nor computed here")
    published = load_published(chain=chain, vault=vault, round_id=round_id)
    return published.statement(), published.tree, f"published at {published.uri}", rnd


def _own_agreements(
    agreements: list[dict[str, Any]], address: str, part: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The round's agreements ``address`` is in: as consumer, or with a line of its own."""
    lines = (part or {}).get("lines") or []
    mine = {str(line.get("agreement_id", "")).lower() for line in lines}
    return [
        a
        for a in agreements
        if a.get("consumer") == address or str(a.get("agreement_id", "")).lower() in mine
    ]


def statement_of(
    *,
    engine: Engine,
    chain: Chain,
    vault: Contract,
    round_id: int,
    address: str,
    full: bool = False,
) -> dict[str, Any]:
    """``address``'s part of the round's statement (lines, exact shares, payout, proof).

    Only ``address``'s own lines and bill, and of the round's ``agreements`` only those it
    is the consumer of or has a line in; the other parties' usage and the ``ignored``
    entries are left out, unless ``full`` (the operator and auditors)."""
    statement, _, source, _ = _served(engine=engine, chain=chain, vault=vault, round_id=round_id)
    head = {k: v for k, v in statement.items() if k not in ("participants", "bills")}
    head["source"] = source
    bill = next((b for b in statement.get("bills", []) if b["consumer"] == address), None)
    part = next((p for p in statement["participants"] if p["account"] == address), None)
    if part is None and bill is None:
        raise StatementNotFound(f"round {round_id} has nothing for {address}")
    if not full:
        head["agreements"] = _own_agreements(list(head.get("agreements") or []), address, part)
        head.pop("ignored", None)
    return head | {"participant": part, "bill": bill}


def claim_of(
    *, engine: Engine, chain: Chain, vault: Contract, round_id: int, address: str
) -> dict[str, Any]:
    """The claim of ``address``: amount, index, proof, and the transaction to send."""
    _, tree, source, rnd = _served(engine=engine, chain=chain, vault=vault, round_id=round_id)
    if address.lower() not in {e.account.lower() for e in tree.entries}:
        raise ClaimNotFound(f"round {round_id} pays nothing to {address}")
    entry = tree.entry(tree.index_of(address))
    claimed = bool(chain.call(vault.functions.isClaimed(round_id, entry.index))) if rnd else False
    proof = list(entry.proof)
    data = vault.encode_abi(
        "claim", args=[round_id, entry.index, entry.account, entry.amount, proof]
    )
    return {
        "round_id": round_id,
        "status": rnd.status if rnd is not None else "draft",
        "index": entry.index,
        "account": entry.account,
        "amount": str(entry.amount),
        "proof": [_hex(p) for p in proof],
        "claimed": claimed,
        "source": source,
        "transaction": {"to": vault.address, "data": data, "value": "0"},
    }


def bill_of(
    *,
    engine: Engine,
    consumer: str,
    period_start: int,
    period_end: int,
    checkpoint_seq: int | None,
) -> dict[str, Any]:
    """What ``consumer`` owes for ``[period_start, period_end)`` under a checkpoint."""
    with Session(engine) as session:
        cp = _checkpoint(session, checkpoint_seq)
        bills = compute_bills(
            session_or_engine=session,
            period_start=period_start,
            period_end=period_end,
            checkpoint_size=cp.tree_size,
        )
    mine = next((b.to_json() for b in bills if to_checksum_address(b.consumer) == consumer), None)
    if mine is None:
        mine = {"consumer": consumer, "total": "0", "agreements": []}
    return mine | {
        "period": {"start": period_start, "end": period_end},
        "checkpoint": {"seq": cp.seq, "size": cp.tree_size},
    }


def audit_round(
    *,
    engine: Engine,
    chain: Chain,
    vault: Contract,
    ledger: Contract,
    round_id: int,
) -> dict[str, Any]:
    """Recompute a round from the anchored log and compare with the vault
    (:func:`service.audit.settlement.audit_settlement`, policy and period from the draft)."""
    from service.audit.settlement import audit_settlement
    from service.evidence.sources import SqlLogSource

    with Session(engine) as session:
        draft = _draft(session, round_id)
        policy = json.loads(draft.policy)
        period = (draft.period_start, draft.period_end)
    report = audit_settlement(
        chain=chain,
        vault=vault,
        ledger=ledger,
        round_id=round_id,
        entries_source=SqlLogSource(engine),
        policy_doc=policy,
        period=period,
    )
    return report.to_json()


def sweep_round(
    *,
    engine: Engine,
    chain: Chain,
    vault: Contract,
    operator: LocalAccount | None,
    round_id: int,
) -> dict[str, Any]:
    """Close a finalized round after its claim period: what it did not pay goes back to
    its funders' free balances (operator)."""
    receipt, _, _ = chain_rounds.sweep(
        chain=chain, vault=vault, round_id=round_id, sender=_operator(operator)
    )
    return _detail_after(receipt, engine=engine, chain=chain, vault=vault, round_id=round_id)
