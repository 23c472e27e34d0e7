"""Every `tally` command that takes --rpc says `error[rpc_unavailable]: …` in one line,
exit 1, when nothing answers at the URL (no traceback, no retry chatter).

The commands are discovered from the typer app, so a new command with --rpc is covered:
its required arguments get placeholder values by type (a JSON file for paths, 1 for
numbers, an address for addresses); the few that need real inputs before they reach
the chain (a payout file, a computed round) get them from ``inputs``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from service.chain.client import Chain
from service.chain.config import save_deployment
from service.chain.devnode import free_port
from service.cli import app
from service.db import create_schema, make_engine
from service.evidence.anchor import anchor_once
from service.settings import get_settings
from tests.cli.test_participants_cli import tally
from tests.settlement.test_engine import P0, P1, agreement, ingest_all, make_policy, usage
from tests.space import Space

# Commands whose --rpc is not required to answer: `index status` prints the cursor from
# the database and the deployment file when the node is down (by design).
OFFLINE_BY_DESIGN = {"index status"}


def _walk(cmd: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    if hasattr(cmd, "commands"):
        if any("--rpc" in p.opts for p in cmd.params):  # a group that runs on its own
            yield path, cmd
        for name, sub in cmd.commands.items():
            yield from _walk(sub, [*path, name])
    else:
        yield path, cmd


def _rpc_commands() -> list[tuple[list[str], Any]]:
    root = typer.main.get_command(app)
    return [
        (path, cmd)
        for path, cmd in _walk(root, [])
        if any("--rpc" in p.opts for p in cmd.params) and " ".join(path) not in OFFLINE_BY_DESIGN
    ]


COMMANDS = _rpc_commands()


@dataclass
class Inputs:
    folder: Path
    json_file: Path
    deployment: Path
    db_url: str
    policy: Path
    data_dir: Path


@pytest.fixture(scope="module")
def inputs(
    _space: Space, _embedded: Chain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Inputs]:
    """A log with an anchored checkpoint and a computed round 1 (payout file included),
    a policy, a deployment file and a JSON file: what commands read before the chain."""
    from service.settlement.engine import compute_round
    from service.settlement.policy import load_policy
    from service.settlement.rounds import write_round_files

    snap = _embedded.snapshot()
    folder = tmp_path_factory.mktemp("rpc")
    db_url = f"sqlite:///{folder}/tally.db"
    engine = make_engine(db_url)
    create_schema(engine)
    ingest_all(engine, _space, [agreement(_space), *usage(_space)])
    row = anchor_once(
        engine=engine, chain=_space.chain, ledger=_space.contracts.ledger, operator=_space.operator
    )
    assert row is not None
    policy = folder / "policy.json"
    policy.write_bytes(make_policy(_space).canonical_bytes)  # the agreement names it
    result = compute_round(
        session_or_engine=engine,
        round_id=1,
        period_start=P0,
        period_end=P1,
        checkpoint_size=row.tree_size,
        checkpoint_seq=row.seq,
        policy=load_policy(policy),
    )
    data_dir = folder / "data"
    write_round_files(result=result, data_dir=data_dir)
    engine.dispose()
    deployment = folder / "deployment.json"
    save_deployment(_space.contracts.deployment.model_copy(update={"network": "rpc"}), deployment)
    _embedded.revert(snap)
    json_file = folder / "doc.json"
    json_file.write_text("{}")
    yield Inputs(folder, json_file, deployment, db_url, policy, data_dir)


def _kind(param: Any) -> str:
    """int, float, bool, path or text, from typer's annotation (or click's type)."""
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if annotation is not None:
        names = {int: "int", float: "int", bool: "bool", Path: "path"}
        return next((v for t, v in names.items() if annotation is t), "text")
    name = getattr(getattr(param, "type", None), "name", "text")
    return {"integer": "int", "float": "int", "boolean": "bool", "path": "path"}.get(name, "text")


def _placeholder(param: Any, inputs: Inputs) -> list[str]:
    """Values for one required parameter, by its type."""
    kind = _kind(param)
    option = param.param_type_name == "option"
    if kind == "bool":
        return [param.opts[0]] if option else ["true"]
    if kind == "path":
        value = str(inputs.json_file)
    elif kind == "int":
        value = "1"
    elif "address" in param.name or "account" in param.name:
        value = "0x" + "ab" * 20
    else:
        value = "1"
    return [param.opts[0], value] if option else [value]


def _extra(name: str, inputs: Inputs) -> list[str]:
    """What a command needs besides its required parameters to reach the chain."""
    deployment = ["--deployment", str(inputs.deployment)]
    return {
        "index": deployment,
        "index rebuild": deployment,
        "settle run": [
            "--round", "1", "--from", str(P0), "--to", str(P1), "--policy", str(inputs.policy),
            "--db", inputs.db_url, "--propose",
        ],
        "claim": ["--round", "1", "--all"],
        "audit settlement": ["--log-file", str(inputs.json_file)],
        "audit log": ["--db", inputs.db_url],
        "anchor": ["--db", inputs.db_url],
        "demo": ["--out", str(inputs.folder / "demo")],
        "participants add": ["0x" + "ab" * 20, "--roles", "provider"],
    }.get(name, [])  # fmt: skip


def _args(path: list[str], cmd: Any, inputs: Inputs, url: str) -> list[str]:
    name = " ".join(path)
    extra = _extra(name, inputs)
    given = {t for t in extra if t.startswith("-")}
    args = [*path, *extra]
    for param in cmd.params:
        if param.required and not given.intersection(getattr(param, "opts", [])):
            args += _placeholder(param, inputs)
    return [*args, "--rpc", url]


def test_rpc_commands_are_discovered() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"audit receipt", "deploy", "anchor", "participants add", "index"} <= names
    assert len(names) >= 15


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_unreachable_rpc_is_one_line(
    path: list[str],
    cmd: Any,
    inputs: Inputs,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TALLY_DATA_DIR", str(inputs.data_dir))
    get_settings.cache_clear()
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    try:
        code, out, err = tally(capsys, *_args(path, cmd, inputs, url))
    finally:
        get_settings.cache_clear()
    assert code == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error[rpc_unavailable]: cannot reach the JSON-RPC node at {url}")
