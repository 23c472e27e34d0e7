"""Every command's help reads as a person expects: flags without a value type, values with one."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from service.cli import app

runner = CliRunner()


def _commands() -> list[tuple[list[str], Any]]:
    """Every command and group (typer 0.29 builds on its own copy of click)."""
    found: list[tuple[list[str], Any]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        found.append((path, cmd))
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _commands()


def _row(output: str, opt: str) -> str:
    """The help row of option ``opt`` (its own row, not a mention in another's help)."""
    rows = [ln for ln in output.splitlines() if re.match(rf"^│\s*\*?\s*{re.escape(opt)}\s", ln)]
    assert len(rows) == 1, (opt, rows)
    return rows[0]


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "tally" for p, _ in COMMANDS])
def test_help_shows_flags_as_plain_flags(path: list[str], cmd: Any) -> None:
    done = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    assert done.exit_code == 0, done.output
    assert "<bool>" not in done.output
    for param in cmd.params:
        if param.param_type_name != "option" or param.hidden:
            continue
        row = _row(done.output, param.opts[0])
        type_column = re.search(r"\s<[^>]+>", row.split(param.opts[0], 1)[1][:60])
        if param.is_flag:
            assert type_column is None, (param.opts, row)
        else:
            assert type_column is not None, (param.opts, row)  # a value option names its type
    assert len(COMMANDS) > 30
