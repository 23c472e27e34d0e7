"""A log database belongs to one deployment; pairing it with another is refused everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from service.chain.config import save_deployment
from service.chain.deploy import deploy_tally
from service.cli import app
from service.db import create_schema, make_engine
from service.errors import LogBoundElsewhere
from service.evidence.anchor import anchor_once
from service.evidence.binding import bind_log, check_log_binding, log_binding
from service.evidence.models import LogBinding
from tests.evidence.test_log import agreement, ingest, receipt
from tests.space import Space

runner = CliRunner()


def _anchor(engine: Engine, space: Space, ledger_address: str | None = None) -> object:
    ledger = space.contracts.ledger
    if ledger_address is not None:
        ledger = space.chain.w3.eth.contract(address=ledger_address, abi=ledger.abi)
    return anchor_once(engine=engine, chain=space.chain, ledger=ledger, operator=space.operator)


def test_first_anchor_binds_the_log_to_its_deployment(engine: Engine, space: Space) -> None:
    ingest(engine, space, [agreement(space), receipt(space, 1)])
    assert _anchor(engine, space) is not None
    with Session(engine) as s:
        assert log_binding(s) == (space.chain.chain_id, space.contracts.ledger.address)


def test_anchoring_a_log_on_another_ledger_is_refused(engine: Engine, space: Space) -> None:
    ingest(engine, space, [agreement(space), receipt(space, 1)])
    _anchor(engine, space)
    other = deploy_tally(space.chain, admin=space.operator)
    with pytest.raises(LogBoundElsewhere, match=other.ledger.address):
        _anchor(engine, space, other.ledger.address)
    # nothing was sent to the other ledger
    assert int(space.chain.call(other.ledger.functions.count())) == 0


def test_log_bound_only_by_old_anchor_rows_still_refuses(engine: Engine, space: Space) -> None:
    """A database from before the binding table: its anchor rows name the deployment."""
    ingest(engine, space, [agreement(space), receipt(space, 1)])
    _anchor(engine, space)
    with Session(engine) as s:
        row = s.get(LogBinding, 1)
        assert row is not None
        s.delete(row)
        s.commit()
        with pytest.raises(LogBoundElsewhere):
            check_log_binding(s, chain_id=space.chain.chain_id, ledger="0x" + "11" * 20)
    with pytest.raises(LogBoundElsewhere):
        bind_log(
            engine=engine, chain_id=space.chain.chain_id + 1, ledger=space.contracts.ledger.address
        )
    bind_log(engine=engine, chain_id=space.chain.chain_id, ledger=space.contracts.ledger.address)
    with Session(engine) as s:
        assert s.get(LogBinding, 1) is not None


def test_log_paired_with_wrong_deployment_is_refused_by_anchor_and_audit(
    anvil_space: Space, tmp_path: Path
) -> None:
    """The T17 finding: a 2-entry log anchored on deployment A, used with deployment B, made
    `tally anchor` say "nothing to anchor" and `tally audit log` PASS with no checkpoints."""
    space = anvil_space
    url = space.chain.network.rpc_url or ""
    db = f"sqlite:///{tmp_path}/tally.db"
    engine = make_engine(db)
    create_schema(engine)
    ingest(engine, space, [agreement(space), receipt(space, 1)])
    _anchor(engine, space)
    engine.dispose()
    other = tmp_path / "other.json"
    save_deployment(deploy_tally(space.chain, admin=space.operator).deployment, other)
    for command in ("anchor", "audit"):
        args = ["audit", "log"] if command == "audit" else ["anchor"]
        done = runner.invoke(
            app, [*args, "--rpc", url, "--deployment", str(other), "--db", db],
            env={"COLUMNS": "200"},
        )  # fmt: skip
        assert done.exit_code != 0, done.output
        assert isinstance(done.exception, LogBoundElsewhere), done.output
        assert "belongs to chain 31337" in str(done.exception)
