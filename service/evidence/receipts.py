"""Receipt documents: one JSON per entry with everything an auditor needs.

Top-level keys: ``version``, ``entry_type``, ``entry`` (the typed-data message, EIP-712
field names), ``signatures`` (signer -> 0x signature), ``entry_id``, ``leaf_index``,
``tree_size``, ``root``, ``inclusion_proof`` (0x hashes, RFC 9162 order), ``anchor``
(``chain_id``, ``contract`` = the EvidenceLedger, which is also the EIP-712 verifying
contract, ``checkpoint_seq``, ``tx_hash``, ``block_number``). The canonical bytes and
the leaf are recomputed from these by the auditor, never read from the document.

Optional ``cosignatures`` (when the space has a note key): the C2SP signed note of the
receipt's checkpoint (``tree_size``, the log's root at that size, the space's origin)
followed by the witnesses' cosignature lines stored for it, as text. ``tally audit
receipt --witness VKEY --min-witnesses K`` counts the valid ones
(:mod:`service.witness.cosignatures`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from service.errors import NotAnchored
from service.evidence.log import get_entry
from service.evidence.models import AnchorRow
from service.evidence.tiles import MerkleLog, SqlTileStorage

if TYPE_CHECKING:
    from service.witness.note import CosignatureV1Verifier, NoteSigner

RECEIPT_VERSION = 1


def build_receipt(
    *,
    session: Session,
    eid: str,
    note_signer: NoteSigner | None = None,
    witnesses: tuple[CosignatureV1Verifier, ...] = (),
) -> dict[str, Any]:
    """The receipt of entry ``eid`` against the first checkpoint that covers it; with a
    ``note_signer``, its ``cosignatures`` note (the configured ``witnesses``' lines)."""
    row, signed = get_entry(session=session, eid=eid)
    anchor = session.exec(
        select(AnchorRow)
        .where(AnchorRow.tree_size > row.leaf_index)
        .order_by(col(AnchorRow.seq).asc())
    ).first()
    if anchor is None:
        raise NotAnchored(f"entry {eid} (leaf {row.leaf_index}) is not anchored yet")
    proof = MerkleLog(SqlTileStorage(session)).inclusion_proof(
        index=row.leaf_index, size=anchor.tree_size
    )
    body = signed.to_json()
    doc: dict[str, Any] = {
        "version": RECEIPT_VERSION,
        "entry_type": body["entry_type"],
        "entry": body["entry"],
        "signatures": body["signatures"],
        "entry_id": row.entry_id,
        "leaf_index": row.leaf_index,
        "tree_size": anchor.tree_size,
        "root": anchor.root,
        "inclusion_proof": ["0x" + h.hex() for h in proof],
        "anchor": {
            "chain_id": anchor.chain_id,
            "contract": anchor.contract,
            "checkpoint_seq": anchor.seq,
            "tx_hash": anchor.tx_hash,
            "block_number": anchor.block_number,
        },
    }
    if note_signer is not None:
        from service.witness.cosignatures import checkpoint_note

        served = checkpoint_note(
            session=session, signer=note_signer, witnesses=witnesses, size=anchor.tree_size
        )
        doc["cosignatures"] = served.note.decode("utf-8")
    return doc
