"""Migration (T15): a log that holds legacy leaves (appended before commitments) and
then commitment leaves is anchored once; every receipt form of both kinds audits online
against the deployed contract, and the public leaf data rebuild the anchored root."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import Session

from service.api.queries import log_page
from service.audit.receipt import audit_receipt
from service.chain.client import Chain
from service.db import create_schema, make_engine
from service.errors import InvalidInput
from service.evidence import commitment
from service.evidence.anchor import anchor_once
from service.evidence.directory import ChainDirectory
from service.evidence.log import append_entries
from service.evidence.merkle import leaf_hash, root_from_leaf_hashes
from service.evidence.receipts import build_receipt, reduce_receipt
from service.evidence.tiles import MerkleLog, SqlTileStorage
from tests.audit.forge import pin
from tests.evidence.test_log import agreement, receipt
from tests.space import Space


@dataclass
class Mixed:
    space: Space
    docs: list[dict[str, Any]]  # one receipt per leaf 0..4
    page: dict[str, Any]  # GET /v1/log/entries' answer
    root: bytes  # the tree's root
    anchored_root: bytes  # the chain's checkpoint 0


@pytest.fixture(scope="module")
def mixed(
    _space: Space, _embedded: Chain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mixed]:
    space = _space
    snap = _embedded.snapshot()
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('mixed')}/tally.db")
    create_schema(engine)
    directory = ChainDirectory(space.chain, space.contracts.registry)
    old = [agreement(space), receipt(space, 1), receipt(space, 2)]
    new = [receipt(space, 3), receipt(space, 4, units=7)]
    for batch, commitments in ((old, False), (new, True)):
        results = append_entries(
            engine=engine,
            domain=space.domain,
            directory=directory,
            entries=batch,
            commitments=commitments,
        )
        assert [r.status for r in results] == ["accepted"] * len(batch)
        assert all((r.salt is not None) == commitments for r in results)
    row = anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )
    assert row is not None and row.tree_size == 5
    with Session(engine) as s:
        docs = [build_receipt(session=s, eid="0x" + e.id().hex()) for e in [*old, *new]]
        page = log_page(session=s, start=0, end=None, page_max=100)
        root = MerkleLog(SqlTileStorage(s)).root()
    on_chain = space.chain.call(space.contracts.ledger.functions.checkpoint(0))
    yield Mixed(space, docs, page, root, bytes(on_chain[1]))
    engine.dispose()
    _embedded.revert(snap)


def test_mixed_log_root_is_the_anchored_one_and_rebuilds_from_public_leaf_data(
    mixed: Mixed,
) -> None:
    assert mixed.root == mixed.anchored_root
    leaves = [bytes.fromhex(e["leaf_data"][2:]) for e in mixed.page["entries"]]
    versions = [commitment.leaf_version(d) for d in leaves]
    assert versions == [commitment.LEAF_LEGACY] * 3 + [commitment.LEAF_COMMITMENT] * 2
    assert root_from_leaf_hashes([leaf_hash(d) for d in leaves]) == mixed.anchored_root
    # a commitment leaf shows nothing of its entry: 34 bytes, not the canonical bytes
    assert all(len(d) == commitment.COMMITMENT_LEAF_SIZE for d in leaves[3:])


def test_mixed_log_legacy_receipts_stay_version_1_and_audit(mixed: Mixed) -> None:
    for doc in mixed.docs[:3]:
        assert doc["version"] == 1 and "salt" not in doc and "form" not in doc
        report = audit_receipt(doc, chain=mixed.space.chain, trusted=pin(mixed.space))
        assert report.ok and report.form == "legacy", report.verdict
    with pytest.raises(InvalidInput, match="version-1 receipt"):
        reduce_receipt(mixed.docs[1], ["units"])


@pytest.mark.parametrize("form", ["full", "signed", "unsigned"])
def test_mixed_log_commitment_receipts_audit_in_every_form(mixed: Mixed, form: str) -> None:
    for doc in mixed.docs[3:]:
        assert doc["version"] == 2 and doc["form"] == "full"
        if form == "signed":
            doc = reduce_receipt(doc, ["consumer", "provider", "units"])
        elif form == "unsigned":
            doc = reduce_receipt(doc, ["units"], signed=False)
        report = audit_receipt(doc, chain=mixed.space.chain, trusted=pin(mixed.space))
        assert report.ok, report.verdict
        assert report.form == ("full" if form == "full" else "reduced")
        contract = next(c for c in report.checks if c.name == "contract_inclusion")
        assert contract.ok is True  # the deployed EvidenceLedger accepts the commitment leaf
    last = reduce_receipt(mixed.docs[4], ["units"], signed=False)
    fields = audit_receipt(last, chain=None, trusted=None).fields
    assert fields is not None and fields["values"] == {"units": 7}
