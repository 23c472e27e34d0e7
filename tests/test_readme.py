"""The README cannot rot: every `tally` command it shows exists with the options it uses,
every test it cites exists, and every TALLY_ setting it lists is a real setting."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main

from service.cli import app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _tally_lines() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [
        ln.split("#")[0].strip() for ln in text.splitlines() if "tally " in ln and "bin/tally" in ln
    ]


SHELL_OPERATORS = frozenset({"|", "||", "&&", "&", ";", ">", ">>", "<", "2>&1"})


def _command_tokens(line: str) -> list[str]:
    """The arguments of the line's `tally` command: after `.../bin/tally`, up to where the
    shell takes over (a pipe, a redirection, `&`, or the `)` closing `$(...)`)."""
    tokens = shlex.split(line.replace("0x<entry id>", "0xabc"))
    start = tokens.index(next(t for t in tokens if t.endswith("bin/tally"))) + 1
    out: list[str] = []
    for t in tokens[start:]:
        if t in SHELL_OPERATORS:
            break
        if t.endswith(")"):
            out.append(t.removesuffix(")"))
            break
        out.append(t)
    return out


def _resolve(tokens: list[str]) -> tuple[Any, list[str]]:
    """The (sub)command the tokens name, and the tokens after it. (Typer vendors its own
    click, so groups are recognised by their ``commands``, not by class.)"""
    cmd: Any = typer.main.get_command(app)
    rest = list(tokens)
    while hasattr(cmd, "commands") and rest and not rest[0].startswith("-"):
        sub = cmd.commands.get(rest[0])
        if sub is None:
            break
        cmd, rest = sub, rest[1:]
    return cmd, rest


def test_readme_shows_tally_commands() -> None:
    assert len(_tally_lines()) >= 15


@pytest.mark.parametrize("line", _tally_lines())
def test_readme_command_exists_with_its_options(line: str) -> None:
    tokens = _command_tokens(line)
    cmd, rest = _resolve(tokens)
    assert not hasattr(cmd, "commands"), f"{line!r}: {tokens[0]} needs a subcommand"
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    used = [t.split("=")[0] for t in rest if t.startswith("-")]
    unknown = [u for u in used if u not in known]
    assert not unknown, f"{line!r}: unknown options {unknown}"


def test_cited_tests_exist() -> None:
    cited = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", README)
    assert cited
    for path, name in cited:
        source = (ROOT / path).read_text(encoding="utf-8")
        if name:
            assert f"def {name}(" in source, f"{path}::{name}"
    # `::name` continuations refer to the file named just before them
    for path, tail in re.findall(r"`(tests/[\w/]+\.py)::\w+`((?:, `::\w+`)+)", README):
        source = (ROOT / path).read_text(encoding="utf-8")
        for name in re.findall(r"::(\w+)", tail):
            assert f"def {name}(" in source, f"{path}::{name}"


def test_settings_table_matches_settings() -> None:
    listed = set(re.findall(r"^\| `TALLY_([A-Z_]+)`", README, flags=re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert listed == fields
