"""Anchoring checkpoints with on-chain consistency proofs; receipts that verify."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.errors import NotAnchored
from service.evidence.anchor import anchor_once, read_all_checkpoints, sync_anchors
from service.evidence.commitment import commit
from service.evidence.merkle import leaf_hash, verify_inclusion
from service.evidence.models import AnchorRow
from service.evidence.receipts import build_receipt
from tests.evidence.test_log import agreement, ingest, receipt
from tests.space import Space


def _anchor(engine: Engine, space: Space) -> AnchorRow | None:
    return anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )


def test_anchor_grows_with_the_log_and_skips_when_unchanged(engine: Engine, space: Space) -> None:
    ingest(engine, space, [agreement(space), receipt(space, 1)])
    first = _anchor(engine, space)
    assert first is not None and (first.seq, first.tree_size) == (0, 2)
    assert _anchor(engine, space) is None  # nothing new: nothing sent
    ingest(engine, space, [receipt(space, n) for n in range(2, 7)])
    second = _anchor(engine, space)
    assert second is not None and (second.seq, second.tree_size) == (1, 7)
    on_chain = read_all_checkpoints(space.chain, space.contracts.ledger)
    assert [(c.tree_size, "0x" + c.root.hex()) for c in on_chain] == [
        (first.tree_size, first.root),
        (second.tree_size, second.root),
    ]


def test_checkpoint_sent_but_not_recorded_is_found_not_resent(engine: Engine, space: Space) -> None:
    ingest(engine, space, [agreement(space), receipt(space, 1)])
    _anchor(engine, space)
    with Session(engine) as s:  # simulate a crash between the receipt and the commit
        s.delete(s.exec(select(AnchorRow)).one())
        s.commit()
    assert _anchor(engine, space) is None  # recovered from chain; no second anchor tx
    assert int(space.chain.call(space.contracts.ledger.functions.count())) == 1
    with Session(engine) as s:
        (row,) = s.exec(select(AnchorRow)).all()
    assert row.tree_size == 2 and row.tx_hash != "0x" + "00" * 32
    assert sync_anchors(engine=engine, chain=space.chain, ledger=space.contracts.ledger) == []


def test_receipt_document_verifies(engine: Engine, space: Space) -> None:
    batch = [agreement(space), receipt(space, 1), receipt(space, 2)]
    ingest(engine, space, batch)
    eid = "0x" + batch[2].id().hex()
    with Session(engine) as s, pytest.raises(NotAnchored):
        build_receipt(session=s, eid=eid)
    cp = _anchor(engine, space)
    assert cp is not None
    with Session(engine) as s:
        doc = build_receipt(session=s, eid=eid)
    assert doc["leaf_index"] == 2 and doc["tree_size"] == 3 and doc["root"] == cp.root
    assert (
        doc["anchor"]["checkpoint_seq"] == 0
        and doc["anchor"]["contract"] == space.contracts.ledger.address
    )
    proof = [bytes.fromhex(h[2:]) for h in doc["inclusion_proof"]]
    leaf = leaf_hash(commit(batch[2], bytes.fromhex(doc["salt"][2:])).leaf_data)
    assert verify_inclusion(leaf, 2, 3, proof, bytes.fromhex(doc["root"][2:]))
    ledger = space.contracts.ledger
    assert space.chain.call(ledger.functions.verifyInclusion(0, 2, leaf, proof)) is True
