"""The witness's Prometheus metrics, as a textfile (node_exporter's textfile collector).

Written atomically after every round from the witness database, so the figures
survive restarts (the split-view counter counts kept proofs, not events of this
process):

- ``tally_witness_split_views_total{origin}``: split views caught (proofs kept)
- ``tally_witness_cosigned_size{origin}``: the largest tree size cosigned
- ``tally_witness_cosigned_timestamp_seconds{origin}``: when that was cosigned
- ``tally_witness_round_ok{origin}``: 1 if the last round cosigned or found nothing new
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.core import CounterMetricFamily

from service.witness.follower import RoundResult
from service.witness.store import WitnessStore


class _SplitViews:
    """``tally_witness_split_views_total`` as a counter, read from the kept proofs."""

    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "tally_witness_split_views",
            "Split views caught (conflicting checkpoints kept as proofs).",
            labels=["origin"],
        )
        for origin, count in sorted(self._counts.items()):
            family.add_metric([origin], count)
        yield family


def write_metrics(path: Path, store: WitnessStore, results: list[RoundResult]) -> None:
    registry = CollectorRegistry()
    size = Gauge(
        "tally_witness_cosigned_size",
        "Largest tree size this witness cosigned.",
        ["origin"],
        registry=registry,
    )
    stamp = Gauge(
        "tally_witness_cosigned_timestamp_seconds",
        "Timestamp of the latest cosignature.",
        ["origin"],
        registry=registry,
    )
    ok = Gauge(
        "tally_witness_round_ok",
        "1 if the last round cosigned or found nothing new, else 0.",
        ["origin"],
        registry=registry,
    )
    origins = set(store.origins()) | {r.origin for r in results}
    registry.register(_SplitViews({o: len(store.split_views(o)) for o in origins}))
    for origin in sorted(origins):
        latest = store.latest(origin)
        if latest is not None:
            size.labels(origin).set(latest.size)
            stamp.labels(origin).set(latest.timestamp)
    for r in results:
        ok.labels(r.origin).set(1 if r.exit_code == 0 else 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
