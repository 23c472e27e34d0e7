"""``tally bench`` at tiny sizes: every section's structure and sanity (never its speed)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service.bench import runner
from service.bench.anchor import bench_anchor
from service.bench.claims import bench_claims
from service.bench.ingest import bench_ingest
from service.bench.merkle import bench_merkle
from service.bench.scale import fit_exponent
from service.cli import app


def _positive(*values: Any) -> None:
    for v in values:
        assert isinstance(v, int | float) and math.isfinite(v) and v > 0, v


def test_ingest_small_run_accepts_every_receipt_and_reports_finite_rates(tmp_path: Path) -> None:
    r = bench_ingest(40, batch=16, work_dir=tmp_path)
    assert r["receipts"] == 40 and r["signatures"] == 80
    _positive(r["receipts_per_s"], r["sig_recover_limit_per_s"], r["ratio"])
    # the ratio is reported to 3 decimals: at a slow run's 0.005 that is 10%, hence abs
    assert r["ratio"] == pytest.approx(
        r["receipts_per_s"] / (r["sig_recover_limit_per_s"] / 2), rel=0.01, abs=0.0005
    )
    # one receipt costs at least its two recoveries: the ratio cannot pass 1 by much
    assert r["ratio"] < 1.5
    assert r["goal"] == 0.7 and r["met"] == (r["ratio"] >= 0.7)
    if r["workers_all_cores"] > 1:
        _positive(r["receipts_per_s_all_cores"])
    # T11: the same receipts under usage terms (every one accepted, or the bench raises)
    _positive(r["receipts_per_s_with_terms"])
    assert r["receipts_per_s_without_terms"] == r["receipts_per_s"]
    # T15: commitment leaves vs legacy leaves, or a note while ingest has one format only
    if r["commitments_in_ingest"]:
        _positive(r["receipts_per_s_with_commitments"], r["receipts_per_s_legacy"])
        assert r["receipts_per_s_with_commitments"] == r["receipts_per_s"]
        assert r["commitments_vs_legacy"] == pytest.approx(
            r["receipts_per_s"] / r["receipts_per_s_legacy"], rel=0.01, abs=0.0005
        )
    else:
        assert r["receipts_per_s_with_commitments"] is None
        assert r["receipts_per_s_legacy"] == r["receipts_per_s"]
        assert "commitments" in r["commitments_note"]


def test_merkle_small_run_agrees_with_the_plain_loop_and_pymerkle(tmp_path: Path) -> None:
    r = bench_merkle(3_000, work_dir=tmp_path)
    _positive(r["append_s"], r["hashlib_loop_s"], r["ratio"])
    assert r["leaves"] == 3_000 and len(r["root"]) == 64
    assert r["met"] == (r["ratio"] >= r["goal"] == 0.9)
    if importlib.util.find_spec("pymerkle") is None:
        assert r["pymerkle_s"] is None and "pymerkle_error" in r
    else:  # the root was checked against pymerkle's inside
        _positive(r["pymerkle_s"])


def test_anchor_small_run_costs_a_checkpoint_not_a_transaction_per_receipt() -> None:
    r = bench_anchor(3, receipts_per_checkpoint=1_000, naive_samples=3)
    assert r["checkpoints_with_proof"] == 2 and r["receipts_per_checkpoint"] == 1_000
    assert 30_000 < r["gas_per_checkpoint"] < 200_000
    assert 21_000 < r["naive_gas_per_receipt"] < 70_000  # one tx, one fresh slot
    assert r["gas_per_receipt"] == pytest.approx(r["gas_per_checkpoint"] / 1_000, rel=1e-3)
    _positive(r["ratio"])
    assert r["ratio"] < 0.01 and r["met"] == (r["ratio"] <= 0.001)
    assert r["consistency_proof_hashes"][0] >= 1


def test_claims_small_run_pays_fresh_recipients_at_distributor_cost() -> None:
    r = bench_claims(64, sample=16, seed=3)
    assert r["tree_size"] == 64 and r["claims"] == 16 and r["sampled"] is True
    assert int(r["paid"]) > 16 * 10**18  # each payee gets about one token, all were paid
    assert 50_000 < r["gas_avg"] < 150_000
    assert 50_000 < r["baseline_gas_avg"] < 150_000
    assert r["gas_max"] >= r["gas_avg"] >= r["gas_min"]
    assert 0.9 < r["ratio_vs_baseline"] < 1.5
    assert r["met"] == (r["ratio_vs_baseline"] <= 1.04)


def test_cli_writes_every_key_with_sizes_machine_and_goals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(runner.SIZES, "merkle", ({"leaves": 500}, {"leaves": 500}))
    small_anchor = {"checkpoints": 2, "receipts_per_checkpoint": 100}
    monkeypatch.setitem(runner.SIZES, "anchor", (small_anchor, small_anchor))
    small_settle = {"receipts": 1_000, "repeat": 1}
    monkeypatch.setitem(runner.SIZES, "settlement", (small_settle, small_settle))
    small_scale = {"small": 300, "medium": 900}
    monkeypatch.setitem(runner.SIZES, "scale", (small_scale, small_scale))
    out = tmp_path / "f.json"
    args = ["bench", "--quick", "--json", str(out)]
    for name in ("merkle", "anchor", "settlement", "scale"):
        args += ["--only", name]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["run"]["quick"] is True
    assert data["run"]["sections"] == ["merkle", "settlement", "anchor", "scale"]
    for name in data["run"]["sections"]:
        section = data[name]
        assert "error" not in section, section
        assert set(runner.KEYS[name]) <= set(section), name
        assert section["machine"]["cores"] >= 1 and section["machine"]["python"]
        assert section["sizes"] and section["seconds"] >= 0
        assert isinstance(section["goal"], float) and isinstance(section["met"], bool)
    assert data["settlement"]["receipts"] == 1_000
    _positive(data["settlement"]["ratio"])
    scale = data["scale"]
    assert scale["sizes_n"] == [300, 900] and len(scale["rows"]) == 2
    for row in scale["rows"]:  # each child measured its own figures; the pools agreed
        _positive(row["append_s"], row["inclusion_p99_ms"], row["consistency_p99_ms"])
        _positive(row["settle_s"], row["settle_peak_rss_mib"], row["database_bytes"])
        assert row["inclusion_p99_ms"] >= row["inclusion_p50_ms"]
    big, small = scale["rows"][1], scale["rows"][0]
    assert int(big["settle_pool"]) > int(small["settle_pool"])
    assert isinstance(scale["k_append"], float) and isinstance(scale["k_settle"], float)
    assert "ratio" in result.output and "anchor" in result.output


def test_runner_records_a_missing_module_and_a_failure_without_inventing_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(size: dict[str, int]) -> dict[str, Any]:
        raise runner.SectionMissing("service.bench.api is not there yet")

    def broken(size: dict[str, int]) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setitem(runner.SECTIONS, "api", missing)
    monkeypatch.setitem(runner.SECTIONS, "claim", broken)
    data = runner.run_bench(quick=True, only=["api", "claim"])
    assert data["api"]["skipped"] is True and "not there" in data["api"]["error"]
    assert data["claim"]["error"] == "RuntimeError: boom" and "skipped" not in data["claim"]
    for name in ("api", "claim"):
        assert not set(runner.KEYS[name]) & set(data[name])  # no made-up figures
        assert data[name]["machine"]["cores"] >= 1
    with pytest.raises(ValueError, match="unknown sections"):
        runner.run_bench(quick=True, only=["nope"])


def test_valuation_small_run_has_every_key_and_agrees_with_pydvl() -> None:
    from service.bench.valuation import bench_valuation

    r = bench_valuation(providers=12, repeat=1, tolerance_pct=40)
    assert set(runner.KEYS["valuation"]) <= set(r)
    assert r["providers"] == 12 and r["perm_tolerance"] == 0.4
    _positive(r["knn_tally_s"], r["knn_pydvl_s"], r["knn_ratio"], r["perm_calls_ratio"])
    assert r["knn_max_abs_diff"] < 1e-12  # the same KNN-Shapley values
    assert r["perm_tally_evaluations"] == r["perm_tally_permutations"] * 12 + 1
    assert r["perm_tally_calls"] <= r["perm_tally_evaluations"]  # the memo only saves calls
    assert r["met"] == (r["met_knn_ratio"] and r["met_perm_calls_ratio"])
    assert isinstance(r["goal"], float)


def test_fit_exponent_recovers_the_power_of_a_known_curve() -> None:
    sizes = [10_000, 100_000, 1_000_000]
    assert fit_exponent(sizes, [3e-6 * n for n in sizes]) == 1.0
    assert fit_exponent(sizes, [0.5 for _ in sizes]) == 0.0
    assert fit_exponent(sizes, [2e-9 * n**2 for n in sizes]) == 2.0
    assert fit_exponent([10, 10], [1.0, 2.0]) is None  # one distinct size fits nothing
    assert fit_exponent(sizes, [1.0, 0.0, 2.0]) is None


def test_ingest_and_api_ratios_across_sections_of_one_run() -> None:
    out: dict[str, Any] = {
        "ingest": {"receipts_per_s": 1_000.0},
        "api": {"evidence_entries_per_s": 850.0},
    }
    runner._cross_section(out)
    assert out["api"]["evidence_vs_in_process"] == 0.85
    assert out["api"]["met_evidence_vs_in_process"] is True
    failed = {"ingest": {"error": "boom"}, "api": {"evidence_entries_per_s": 850.0}}
    runner._cross_section(failed)
    assert "evidence_vs_in_process" not in failed["api"]  # never against a failed section


def test_group_peak_rss_reads_every_process_of_a_group() -> None:
    import subprocess
    import sys

    from service.bench.api import group_peak_rss_mib

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; b = bytearray(64 << 20); print(1, flush=True); input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,  # its own process group, as tally serve's
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"1\n"  # 64 MiB held
        rss = group_peak_rss_mib(child.pid)
        assert rss is not None and set(rss) == {str(child.pid)}  # not the test's own group
        assert rss[str(child.pid)] >= 64
    finally:
        child.communicate(b"\n")
