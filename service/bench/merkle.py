"""Merkle section: the SQL-persisted tree vs a plain hashlib loop vs pymerkle.

``append_s`` and ``hashlib_loop_s`` come from :func:`service.evidence.tiles.bench_append`
(N leaf hashes appended through the tile store into a fresh SQLite file, tiles written and
root stored, vs the plain RFC 9162 loop over the same leaf hashes). ``pymerkle_s``: the
same entries appended one by one to pymerkle's ``InmemoryTree`` (SHA-256, RFC 9162
prefixes) and its root computed; pymerkle hashes the entries itself, so its yardstick is
``hashlib_from_entries_s`` (the plain loop including leaf hashing). Its root must equal
ours, or the section fails.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from pathlib import Path
from typing import Any

from service.errors import TallyError
from service.evidence.tiles import bench_append

__all__ = ["GOAL_RATIO", "bench_merkle", "pymerkle_seconds"]

GOAL_RATIO = 0.9


class BenchMismatch(TallyError):
    """A benchmark's result disagrees with its baseline's."""

    code = "bench_mismatch"


def pymerkle_seconds(entries: list[bytes]) -> tuple[float, str] | str:
    """Seconds to build pymerkle's in-memory tree of ``entries`` and get its root, and
    the root (hex); or why pymerkle could not be used."""
    try:
        module: Any = importlib.import_module("pymerkle")
    except ImportError as exc:
        return f"pymerkle is not installed ({exc}); pip install -e '.[dev]'"
    t0 = time.perf_counter()
    tree = module.InmemoryTree(algorithm="sha256")
    for entry in entries:
        tree.append_entry(entry)
    root = tree.get_root() if hasattr(tree, "get_root") else tree.get_state()
    return time.perf_counter() - t0, bytes(root).hex()


def bench_merkle(n: int, *, work_dir: Path | None = None) -> dict[str, Any]:
    """Time appending ``n`` leaves to the SQL tree against the plain loop and pymerkle."""
    with tempfile.TemporaryDirectory(prefix="tally-bench-merkle-", dir=work_dir) as tmp:
        result = bench_append(n, f"sqlite:///{tmp}/merkle.db")
    append_s = float(result["store_seconds"])
    loop_s = float(result["plain_seconds"])
    out: dict[str, Any] = {
        "leaves": n,
        "database": result["database"],
        "append_s": append_s,
        "hashlib_loop_s": loop_s,
        "hashlib_from_entries_s": float(result["plain_from_entries_seconds"]),
        "pymerkle_s": None,
        "ratio": round(loop_s / append_s, 3),
        "goal": GOAL_RATIO,
        "met": loop_s / append_s >= GOAL_RATIO,
        "root": result["root"],
    }
    measured = pymerkle_seconds([i.to_bytes(8, "big") for i in range(n)])
    if isinstance(measured, str):
        out["pymerkle_error"] = measured
        return out
    seconds, root = measured
    if root != result["root"]:
        raise BenchMismatch(f"pymerkle's root {root} differs from Tally's {result['root']}")
    out["pymerkle_s"] = round(seconds, 4)
    out["pymerkle_s_vs_append_s"] = round(seconds / append_s, 2)
    return out
