"""``tally bench``: Tally's figures next to their baselines, one run, one machine."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from service.bench.runner import KEYS, SECTIONS, run_bench, write_json

console = Console()


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def _goal_of(section: dict[str, Any], key: str) -> tuple[str, str]:
    """The goal and whether it was met for ``key`` (``goal``/``met`` for ``ratio``)."""
    for goal_key, met_key in ((f"goal_{key}", f"met_{key}"), ("goal", "met")):
        if goal_key in section and (goal_key != "goal" or key == "ratio"):
            met = section.get(met_key)
            return _fmt(section[goal_key]), "[green]met[/]" if met else "[red]missed[/]"
    return "", ""


def _progress(name: str, pos: int, total: int, result: dict[str, Any] | None) -> None:
    if result is None:
        console.print(f"[bold][{pos}/{total}][/] {name} …", highlight=False)
        return
    if "error" in result:
        tag = "[yellow]skipped[/]" if result.get("skipped") else "[red]failed[/]"
        console.print(f"      {name} {tag} ({result['seconds']} s): {result['error']}")
        return
    figures = ", ".join(
        f"{k} {_fmt(result.get(k))}"
        for k in ("ratio", "ratio_vs_baseline", "ratio_vs_naive")
        if k in result
    )
    console.print(f"      {name} done in {result['seconds']} s: {figures}", highlight=False)


def _table(result: dict[str, Any]) -> Table:
    quick = result["run"]["quick"]
    machine = result["run"]["machine"]
    table = Table(
        title=f"tally bench{' --quick' if quick else ''} — {machine['cores']} cores, "
        f"Python {machine['python']}",
    )
    for column, justify in (
        ("section", "left"),
        ("figure", "left"),
        ("value", "right"),
        ("goal", "right"),
        ("", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name in result["run"]["sections"]:
        section = result[name]
        if "error" in section:
            table.add_row(name, "error", section["error"][:80], "", "")
            continue
        for i, key in enumerate(KEYS[name]):
            goal, met = _goal_of(section, key)
            table.add_row(name if i == 0 else "", key, _fmt(section.get(key)), goal, met)
        table.add_section()
    return table


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller sizes: a few minutes on 2 cores.")
    ] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the figures here (after each section).")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help=f"Run only these sections: {', '.join(SECTIONS)}."),
    ] = None,
) -> None:
    """Measure Tally against its baselines (ingest, merkle, anchor, claim, indexer,
    settlement, api) in one run; exits 1 if a section failed."""
    logging.basicConfig(level=logging.WARNING)
    unknown = sorted(set(only or ()) - set(SECTIONS))
    if unknown:
        raise typer.BadParameter(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    result = run_bench(quick=quick, only=only or (), progress=_progress, json_path=json_file)
    console.print(_table(result))
    if json_file is not None:
        write_json(result, json_file)
        console.print(f"wrote {json_file}")
    failed = [n for n in result["run"]["sections"] if "error" in result[n]]
    failed = [n for n in failed if not result[n].get("skipped")]
    if failed:
        console.print(f"[red]failed sections: {', '.join(failed)}[/]")
        raise typer.Exit(1)
