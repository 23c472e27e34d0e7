"""Anchoring across an RPC outage: a real anvil (its own, with saved state) is stopped and
restarted on the same port; the failed attempt records nothing and loses nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import service.chain.client as chain_client
from service.chain.client import Chain
from service.chain.config import rpc_network
from service.chain.devnode import Anvil, anvil_binary
from service.db import create_schema, make_engine
from service.errors import DevNodeError, RpcUnavailable
from service.evidence.anchor import anchor_once, read_all_checkpoints
from service.evidence.merkle import verify_consistency
from service.evidence.models import AnchorRow
from service.evidence.tiles import MerkleLog, SqlTileStorage
from tests.evidence.test_log import agreement, ingest, receipt
from tests.space import Space, build_space


@pytest.fixture
def own_anvil(tmp_path: Path) -> Iterator[Anvil]:
    """An anvil of this test's own whose state survives a stop and a start."""
    try:
        anvil_binary()
    except DevNodeError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))
    node = Anvil(accounts=10, state_path=tmp_path / "anvil-state.json", state_interval_s=1)
    node.start()
    yield node
    node.stop()


def _anchors(engine: Engine) -> list[AnchorRow]:
    with Session(engine) as s:
        return list(s.exec(select(AnchorRow).order_by(col(AnchorRow.seq))))


def _anchor(engine: Engine, space: Space) -> AnchorRow | None:
    return anchor_once(
        engine=engine, chain=space.chain, ledger=space.contracts.ledger, operator=space.operator
    )


def test_anchor_survives_an_rpc_outage(
    own_anvil: Anvil, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chain_client, "RETRIES", 2)  # fail fast while the node is down
    monkeypatch.setattr(chain_client, "RETRY_BASE_S", 0.05)
    chain = Chain.connect(rpc_network(own_anvil.url, chain_id=31337))
    space = build_space(chain)
    engine = make_engine(f"sqlite:///{tmp_path}/tally.db")
    create_schema(engine)

    ingest(engine, space, [agreement(space), receipt(space, 1), receipt(space, 2)])
    first = _anchor(engine, space)
    assert first is not None and (first.seq, first.tree_size) == (0, 3)
    ingest(engine, space, [receipt(space, n) for n in range(3, 8)])

    own_anvil.stop()  # the node goes away (its state is saved on exit)
    with pytest.raises(RpcUnavailable):
        _anchor(engine, space)
    assert [a.seq for a in _anchors(engine)] == [0]  # nothing recorded
    with Session(engine) as s:
        assert MerkleLog(SqlTileStorage(s)).size() == 8  # nothing lost

    own_anvil.start()  # same port, state reloaded
    ledger = space.contracts.ledger
    assert [(c.tree_size, "0x" + c.root.hex()) for c in read_all_checkpoints(chain, ledger)] == [
        (3, first.root)
    ]
    second = _anchor(engine, space)
    assert second is not None and (second.seq, second.tree_size) == (1, 8)
    assert [a.seq for a in _anchors(engine)] == [0, 1]
    on_chain = read_all_checkpoints(chain, ledger)
    assert [(c.tree_size, "0x" + c.root.hex()) for c in on_chain] == [
        (3, first.root),
        (8, second.root),
    ]
    with Session(engine) as s:
        proof = MerkleLog(SqlTileStorage(s)).consistency_proof(old=3, new=8)
    assert verify_consistency(3, 8, on_chain[0].root, on_chain[1].root, proof)
    assert _anchor(engine, space) is None  # and nothing is sent twice
    engine.dispose()
