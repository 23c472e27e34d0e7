"""Assemble ``tally bench``: every section in one process, one after the other.

Each section is a function of ``quick`` returning a flat dict that holds at least the
keys T8 names (:data:`KEYS`), its sizes (``sizes``), the machine (``machine``) and its
wall time (``seconds``); every ratio comes with ``goal`` and ``met`` (sections with two
goals: ``goal_<key>`` / ``met_<key>`` too). A section that fails records ``error`` (and
the run goes on); a section whose module is not there records ``error`` and ``skipped``:
no figure is ever made up.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.bench.machine import machine_info

__all__ = ["KEYS", "SECTIONS", "SIZES", "run_bench", "run_section"]

log = logging.getLogger(__name__)

#: The keys T8 (and T12: ``all_cores_vs_one``, ``receipt_get_vs_baseline``,
#: ``workers_vs_one``, the ``scale`` section) require in each section, in display order.
KEYS: dict[str, tuple[str, ...]] = {
    "ingest": (
        "receipts_per_s",
        "sig_recover_limit_per_s",
        "ratio",
        "receipts_per_s_all_cores",
        "receipts_per_s_without_terms",  # T11: the same run, usage terms not / enforced
        "receipts_per_s_with_terms",
        "all_cores_vs_one",  # T12
        "receipts_per_s_with_commitments",  # T15 commitment leaves vs legacy leaves
        "receipts_per_s_legacy",
    ),
    "merkle": ("append_s", "hashlib_loop_s", "pymerkle_s", "ratio"),
    "anchor": (
        "gas_per_checkpoint",
        "receipts_per_checkpoint",
        "gas_per_receipt",
        "naive_gas_per_receipt",
        "ratio",
    ),
    "claim": ("tree_size", "gas_avg", "gas_max", "baseline_gas_avg", "ratio_vs_baseline"),
    "indexer": (
        "events_per_s",
        "naive_web3_per_s",
        "raw_getlogs_per_s",
        "ratio_vs_naive",
        "ratio_vs_raw",
    ),
    "settlement": ("receipts", "settle_s", "sql_groupby_s", "ratio"),
    "api": (
        "concurrency",
        "evidence_rps",
        "evidence_p50_ms",
        "evidence_p99_ms",
        "receipt_get_rps",
        "receipt_get_p99_ms",
        "baseline_rps",
        "receipt_get_vs_baseline",
        "workers_vs_one",
        "evidence_vs_in_process",  # None unless the ingest section ran in the same run
        "serve_peak_rss_mib",
    ),
    "valuation": (
        "providers",
        "knn_tally_s",
        "knn_pydvl_s",
        "knn_ratio",
        "perm_tolerance",
        "perm_tally_calls",
        "perm_pydvl_calls",
        "perm_calls_ratio",
    ),
    "scale": (
        "database",
        "sizes_n",
        "k_append",
        "k_inclusion_p50",
        "k_consistency_p50",
        "k_settle",
        "k_database_bytes",
        "settle_peak_rss_mib_max",
    ),
}

#: Sizes per section: (quick, full).
SIZES: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "merkle": ({"leaves": 100_000}, {"leaves": 1_000_000}),
    "settlement": ({"receipts": 100_000, "repeat": 3}, {"receipts": 1_000_000, "repeat": 5}),
    "indexer": ({"events": 5_000, "repeat": 2}, {"events": 20_000, "repeat": 3}),
    "ingest": ({"receipts": 2_000, "batch": 500}, {"receipts": 20_000, "batch": 500}),
    "anchor": (
        {"checkpoints": 4, "receipts_per_checkpoint": 10_000},
        {"checkpoints": 10, "receipts_per_checkpoint": 10_000},
    ),
    "claim": ({"payees": 1_000, "sample": 100}, {"payees": 1_000, "sample": 1_000}),
    "api": (
        {"evidence_posts": 64, "batch": 100, "receipt_gets": 2_000, "concurrency": 32},
        {"evidence_posts": 320, "batch": 100, "receipt_gets": 6_400, "concurrency": 32},
    ),
    "valuation": (
        {"providers": 50, "repeat": 3, "tolerance_pct": 20},
        {"providers": 50, "repeat": 5, "tolerance_pct": 10},
    ),
    "scale": (
        {"small": 10_000, "medium": 30_000},
        {"small": 100_000, "medium": 1_000_000, "large": 10_000_000},
    ),
}


#: T12 goals computed here (the section modules carry their own).
GOAL_ALL_CORES = 1.7  # ingest: all cores / one process
GOAL_GET_VS_BASELINE = 0.6  # GET /v1/receipts/{id} req/s / bare no-op endpoint
GOAL_EVIDENCE_P99_MS = 1_000.0  # POST /v1/evidence p99 at 32 clients
GOAL_WORKERS = 1.6  # api receipts/s: 2 workers on PostgreSQL / 1 worker
GOAL_SERVE_RSS_MIB = 400.0  # peak RSS of any tally serve process during the API load
GOAL_HTTP_VS_IN_PROCESS = 0.8  # api receipts/s through HTTP / in-process ingest


class SectionMissing(Exception):
    """The module a section needs is not there (yet)."""


def _merkle(size: dict[str, int]) -> dict[str, Any]:
    from service.bench.merkle import bench_merkle

    return bench_merkle(size["leaves"])


def _settlement(size: dict[str, int]) -> dict[str, Any]:
    from service.bench.settlement import bench_settlement

    with tempfile.TemporaryDirectory(prefix="tally-bench-settle-") as tmp:
        r = bench_settlement(size["receipts"], f"sqlite:///{tmp}/settle.db", repeat=size["repeat"])
    goal = float(r.pop("goal_ratio", 3.0))
    return r | {"goal": goal, "met": float(r["ratio"]) <= goal}


def _indexer(size: dict[str, int]) -> dict[str, Any]:
    from service.bench.indexer import run_bench as indexer_bench

    r = indexer_bench(n_events=size["events"], repeat=size["repeat"])
    rates: dict[str, float] = r.pop("events_per_s")
    goals: dict[str, float] = r.pop("goals")
    vs_naive, vs_raw = float(r.pop("indexer_vs_naive")), float(r.pop("indexer_vs_raw"))
    return {
        "events": r["events"],
        "events_per_s": rates["indexer"],
        "naive_web3_per_s": rates["naive"],
        "raw_getlogs_per_s": rates["raw"],
        "web3_get_logs_per_s": rates.get("web3_get_logs"),
        "ratio_vs_naive": vs_naive,
        "ratio_vs_raw": vs_raw,
        "goal_ratio_vs_naive": goals["indexer_vs_naive"],
        "met_ratio_vs_naive": vs_naive >= goals["indexer_vs_naive"],
        "goal_ratio_vs_raw": goals["indexer_vs_raw"],
        "met_ratio_vs_raw": vs_raw >= goals["indexer_vs_raw"],
        "met": vs_naive >= goals["indexer_vs_naive"] and vs_raw >= goals["indexer_vs_raw"],
    } | {k: v for k, v in r.items() if k != "events"}


def _ingest(size: dict[str, int]) -> dict[str, Any]:
    from service.bench.ingest import bench_ingest

    r = bench_ingest(size["receipts"], batch=size["batch"])
    all_cores = r.get("receipts_per_s_all_cores")
    scaling = round(float(all_cores) / float(r["receipts_per_s"]), 3) if all_cores else None
    return r | {
        "all_cores_vs_one": scaling,
        "goal_all_cores_vs_one": GOAL_ALL_CORES,
        "met_all_cores_vs_one": scaling is not None and scaling >= GOAL_ALL_CORES,
    }


def _anchor(size: dict[str, int]) -> dict[str, Any]:
    from service.bench.anchor import bench_anchor

    return bench_anchor(
        size["checkpoints"], receipts_per_checkpoint=size["receipts_per_checkpoint"]
    )


def _claim(size: dict[str, int]) -> dict[str, Any]:
    from service.bench.claims import bench_claims

    sample = size["sample"] if size["sample"] < size["payees"] else None
    return bench_claims(size["payees"], sample=sample)


def _api(size: dict[str, int]) -> dict[str, Any]:
    try:
        from service.bench.api import bench_api
    except ModuleNotFoundError as exc:
        if exc.name not in ("service.bench.api", "service.api"):
            raise
        raise SectionMissing(f"service.bench.api is not there yet ({exc})") from None

    db = os.environ.get("TALLY_BENCH_DATABASE_URL")
    workers = 2 if db else 1  # several API workers need PostgreSQL
    server = db if db and db.startswith("postgresql") else None

    def load(workers: int) -> dict[str, Any]:
        from service.bench.scale import scratch_database

        # each load on an empty log: a scratch database on the server, dropped afterwards
        with (
            tempfile.TemporaryDirectory(prefix="tally-bench-api-") as tmp,
            scratch_database(server, workers, Path(tmp), prefix="api") as url,
        ):
            return bench_api(
                requests=size["evidence_posts"],
                receipt_requests=size["receipt_gets"],
                concurrency=size["concurrency"],
                batch=size["batch"],
                workers=workers,
                database_url=url if server else db,
            )

    r = load(workers)
    one_worker: dict[str, Any] | None = load(1)["post_evidence"] if workers > 1 else None
    post, get = r["post_evidence"], r["get_receipt"]
    serve_rss = max(r["serve_peak_rss_mib"].values()) if r.get("serve_peak_rss_mib") else None
    noop_get, noop_post = r["noop_get"], r["noop_post"]
    errors = post["errors"] + get["errors"] + noop_get["errors"] + noop_post["errors"]
    if errors:
        raise RuntimeError(f"the API benchmark saw {errors} failed requests: {r}")
    return {
        "concurrency": r["concurrency"],
        "workers": r["workers"],
        "database": r["database"],
        "evidence_batch": post.get("batch"),
        "evidence_rps": post["rps"],
        "evidence_entries_per_s": post.get("entries_per_s"),
        "evidence_p50_ms": post["p50_ms"],
        "evidence_p99_ms": post["p99_ms"],
        "receipt_get_rps": get["rps"],
        "receipt_get_p50_ms": get["p50_ms"],
        "receipt_get_p99_ms": get["p99_ms"],
        "baseline_rps": noop_get["rps"],
        "baseline_p99_ms": noop_get["p99_ms"],
        "baseline_post_rps": noop_post["rps"],
        "receipt_get_vs_baseline": round(get["rps"] / noop_get["rps"], 3),
        "evidence_vs_baseline_post": round(post["rps"] / noop_post["rps"], 3),
        "goal_receipt_get_vs_baseline": GOAL_GET_VS_BASELINE,
        "met_receipt_get_vs_baseline": get["rps"] / noop_get["rps"] >= GOAL_GET_VS_BASELINE,
        "serve_peak_rss_mib": serve_rss,  # the largest process of tally serve
        "goal_serve_peak_rss_mib": GOAL_SERVE_RSS_MIB,
        "met_serve_peak_rss_mib": serve_rss is not None and serve_rss <= GOAL_SERVE_RSS_MIB,
        "goal_evidence_p99_ms": GOAL_EVIDENCE_P99_MS,
        "met_evidence_p99_ms": post["p99_ms"] <= GOAL_EVIDENCE_P99_MS,
        # receipts/s, same load on one worker (PostgreSQL only: None on SQLite)
        "workers_vs_one": (
            round(post["rps"] / one_worker["rps"], 3) if one_worker is not None else None
        ),
        "evidence_vs_in_process": None,  # set by _cross_section when ingest ran too
        "goal_evidence_vs_in_process": GOAL_HTTP_VS_IN_PROCESS,
        "met_evidence_vs_in_process": False,
        "goal_workers_vs_one": GOAL_WORKERS,
        "met_workers_vs_one": (
            one_worker is not None and post["rps"] / one_worker["rps"] >= GOAL_WORKERS
        ),
        "detail": r,
    }


def _cross_section(out: dict[str, Any]) -> None:
    """Ratios between sections of one run: receipts/s through POST /v1/evidence vs
    in-process ingest (both sections must have run without error)."""
    api, ingest = out.get("api", {}), out.get("ingest", {})
    if "error" in api or "error" in ingest or not api or not ingest:
        return
    http = api.get("evidence_entries_per_s")
    if http:
        ratio = round(float(http) / float(ingest["receipts_per_s"]), 3)
        api["evidence_vs_in_process"] = ratio
        api["goal_evidence_vs_in_process"] = GOAL_HTTP_VS_IN_PROCESS
        api["met_evidence_vs_in_process"] = ratio >= GOAL_HTTP_VS_IN_PROCESS


def _valuation(size: dict[str, int]) -> dict[str, Any]:
    from service.bench.valuation import bench_valuation

    return bench_valuation(
        providers=size["providers"], repeat=size["repeat"], tolerance_pct=size["tolerance_pct"]
    )


def _scale(size: dict[str, int]) -> dict[str, Any]:
    from service.bench.scale import bench_scale

    r = bench_scale(sorted(size.values()))
    goal = float(r["goal_settle_peak_rss_mib"])
    return r | {"goal": goal, "met": float(r["settle_peak_rss_mib_max"]) <= goal}


SECTIONS: dict[str, Callable[[dict[str, int]], dict[str, Any]]] = {
    "merkle": _merkle,
    "settlement": _settlement,
    "ingest": _ingest,
    "anchor": _anchor,
    "claim": _claim,
    "indexer": _indexer,
    "api": _api,
    "valuation": _valuation,
    "scale": _scale,
}


def run_section(name: str, *, quick: bool) -> dict[str, Any]:
    """Run one section; a failure is recorded under ``error``, never raised."""
    size = SIZES[name][0 if quick else 1]
    t0 = time.perf_counter()
    try:
        result = SECTIONS[name](size)
    except SectionMissing as exc:
        result = {"error": str(exc), "skipped": True}
    except Exception as exc:  # recorded in the JSON and the exit status, with the traceback
        log.error("bench section %s failed:\n%s", name, traceback.format_exc())
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["sizes"] = dict(size)
    result["machine"] = machine_info()
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def run_bench(
    *,
    quick: bool,
    only: Sequence[str] = (),
    progress: Callable[[str, int, int, dict[str, Any] | None], None] | None = None,
    json_path: Path | None = None,
) -> dict[str, Any]:
    """Run the ``only`` sections (all if empty) in :data:`SECTIONS` order.

    ``progress(name, position, total, result)`` is called before (result None) and after
    each section. With ``json_path``, the JSON so far is rewritten after each section.
    """
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    names = [n for n in SECTIONS if not only or n in only]
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "run": {
            "quick": quick,
            "sections": names,
            "started_at": started.isoformat(timespec="seconds"),
            "machine": machine_info(),
        }
    }
    for pos, name in enumerate(names, 1):
        if progress:
            progress(name, pos, len(names), None)
        out[name] = run_section(name, quick=quick)
        _cross_section(out)
        out["run"]["seconds"] = round(time.perf_counter() - t0, 1)
        if json_path is not None:
            write_json(out, json_path)
        if progress:
            progress(name, pos, len(names), out[name])
    return out


def write_json(result: dict[str, Any], path: Path) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
