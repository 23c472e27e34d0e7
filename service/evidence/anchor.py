"""Anchoring: put the log's current (size, root) on the EvidenceLedger with a proof.

Crash-safe: before sending, the checkpoints already on chain are compared with the
ones recorded in SQL, and any that were sent but not recorded (a crash between the
receipt and the commit) are recorded from the chain, so nothing is sent twice. The
chain's latest root must equal this log's root at that size, or the log has diverged
from what was anchored and anchoring stops (:class:`LogDiverged`). Transient RPC
failures are retried by the chain client; a node that stays unreachable raises
:class:`~service.errors.RpcUnavailable` and nothing is recorded: the entries stay in
the log and the next run anchors them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from web3.contract import Contract

from service.chain.client import Chain
from service.errors import CheckpointNotFound, TallyError
from service.evidence.binding import bind_log
from service.evidence.models import AnchorRow
from service.evidence.tiles import MerkleLog, SqlTileStorage

log = logging.getLogger(__name__)


class LogDiverged(TallyError):
    """The log's root at an anchored size differs from the anchored root."""

    code = "log_diverged"
    status = 500


@dataclass(frozen=True)
class OnChainCheckpoint:
    seq: int
    tree_size: int
    root: bytes
    block_number: int
    timestamp: int


def read_checkpoint(chain: Chain, ledger: Contract, seq: int) -> OnChainCheckpoint:
    count = int(chain.call(ledger.functions.count()))
    if not 0 <= seq < count:
        raise CheckpointNotFound(f"checkpoint {seq} is not on chain ({count} anchored)")
    size, root, block, ts = chain.call(ledger.functions.checkpoint(seq))
    return OnChainCheckpoint(seq, int(size), bytes(root), int(block), int(ts))


def read_all_checkpoints(chain: Chain, ledger: Contract) -> list[OnChainCheckpoint]:
    count = int(chain.call(ledger.functions.count()))
    return [read_checkpoint(chain, ledger, seq) for seq in range(count)]


def latest_anchor(session: Session) -> AnchorRow | None:
    return session.exec(select(AnchorRow).order_by(col(AnchorRow.seq).desc())).first()


def _tx_of(chain: Chain, ledger: Contract, seq: int, block: int) -> str:
    """The hash of the transaction that anchored ``seq`` (searched in its block)."""
    events = chain.read(
        lambda: ledger.events.CheckpointAnchored().get_logs(
            from_block=block, to_block=block, argument_filters={"seq": seq}
        ),
        what=f"checkpoint {seq} event",
    )
    for ev in events:
        if int(ev["args"]["seq"]) == seq:
            return "0x" + bytes(ev["transactionHash"]).hex()
    return "0x" + "00" * 32  # not found in its block: recorded without a tx hash


def sync_anchors(*, engine: Engine, chain: Chain, ledger: Contract) -> list[AnchorRow]:
    """Record checkpoints that are on chain but not in SQL; check each against the log.

    First binds the log to this chain and ledger (:func:`~service.evidence.binding.bind_log`):
    a log that belongs to another deployment is :class:`~service.errors.LogBoundElsewhere`.
    """
    bind_log(engine=engine, chain_id=chain.chain_id, ledger=ledger.address)
    added: list[AnchorRow] = []
    with Session(engine) as session:
        last = latest_anchor(session)
        start = 0 if last is None else last.seq + 1
        count = int(chain.call(ledger.functions.count()))
        tree = MerkleLog(SqlTileStorage(session))
        for seq in range(start, count):
            cp = read_checkpoint(chain, ledger, seq)
            if cp.tree_size > tree.size() or tree.root(size=cp.tree_size) != cp.root:
                raise LogDiverged(
                    f"checkpoint {seq} (size {cp.tree_size}) does not match this log "
                    f"(size {tree.size()})"
                )
            row = AnchorRow(
                seq=seq,
                tree_size=cp.tree_size,
                root="0x" + cp.root.hex(),
                chain_id=chain.chain_id,
                contract=ledger.address,
                tx_hash=_tx_of(chain, ledger, seq, cp.block_number),
                block_number=cp.block_number,
            )
            session.add(row)
            added.append(row)
            log.info("recorded checkpoint %d (size %d) found on chain", seq, cp.tree_size)
        session.commit()
        for row in added:
            session.refresh(row)
    return added


def anchor_once(
    *, engine: Engine, chain: Chain, ledger: Contract, operator: LocalAccount
) -> AnchorRow | None:
    """Anchor the log's current size if it grew since the last checkpoint.

    Returns the new checkpoint, or None when there was nothing new to anchor.
    """
    sync_anchors(engine=engine, chain=chain, ledger=ledger)
    with Session(engine) as session:
        tree = MerkleLog(SqlTileStorage(session))
        size, root = tree.state()
        last = latest_anchor(session)
        old_size = 0 if last is None else last.tree_size
        if size == 0 or size <= old_size:
            return None
        proof = [] if last is None else tree.consistency_proof(old=old_size, new=size)
    receipt = chain.transact(ledger.functions.anchor(size, root, proof), sender=operator)
    (event,) = ledger.events.CheckpointAnchored().process_receipt(receipt)
    row = AnchorRow(
        seq=int(event["args"]["seq"]),
        tree_size=size,
        root="0x" + root.hex(),
        chain_id=chain.chain_id,
        contract=ledger.address,
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        block_number=int(receipt["blockNumber"]),
    )
    with Session(engine) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    log.info("anchored checkpoint %d: size %d (+%d entries)", row.seq, size, size - old_size)
    return row
