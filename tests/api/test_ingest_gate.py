"""IngestGate: at most ``limit`` batches append at once per process; the rest wait on the
event loop; each event loop has its own places (tests run apps on several loops)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.api.ingest import IngestGate


async def _most_at_once(gate: IngestGate, tasks: int) -> tuple[int, int]:
    inside = most = done = 0

    async def batch() -> None:
        nonlocal inside, most, done
        async with gate.turn():
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)  # a thread-pool append, as the route awaits it
            inside -= 1
            done += 1

    await asyncio.gather(*(batch() for _ in range(tasks)))
    return most, done


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_no_more_than_limit_batches_append_at_once_and_all_get_their_turn(limit: int) -> None:
    assert asyncio.run(_most_at_once(IngestGate(limit), 12)) == (limit, 12)


def test_each_event_loop_has_its_own_places() -> None:
    gate = IngestGate(1)
    results: list[tuple[int, int]] = []

    def run() -> None:
        results.append(asyncio.run(_most_at_once(gate, 5)))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # one semaphore shared across loops would raise (a future of another loop) or
    # admit fewer; each loop saw exactly its own one place
    assert results == [(1, 5)] * 3


def test_a_gate_admits_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        IngestGate(0)
