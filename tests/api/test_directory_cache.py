"""LiveDirectory's registry cache: answers live ``ttl_s``, and when one expires under
load, one thread reads the registry again while the others wait for its answer."""

from __future__ import annotations

import threading
import time

from service.api.directory import LiveDirectory
from service.evidence.directory import CONSUMER
from tests.space import Space


class _CountingGuard:
    """The directory's real guard hook (the API passes the embedded chain's lock), here
    counting registry reads and holding each one open a little, as a slow node would."""

    def __init__(self, hold_s: float = 0.0) -> None:
        self.reads = 0
        self.hold_s = hold_s
        self._lock = threading.RLock()

    def __enter__(self) -> None:
        self._lock.acquire()
        self.reads += 1
        time.sleep(self.hold_s)

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _directory(
    space: Space, ttl_s: float, guard: _CountingGuard, now: list[float]
) -> LiveDirectory:
    d = LiveDirectory(
        space.chain, space.contracts.registry, ttl_s=ttl_s, guard=guard, clock=lambda: now[0]
    )
    guard.reads = 0  # the two role-constant reads of the constructor
    return d


def test_an_answer_lives_ttl_seconds_then_is_read_again(space: Space) -> None:
    guard, now = _CountingGuard(), [100.0]
    d = _directory(space, 5.0, guard, now)
    who = space.consumers[0].address
    assert d.party(who).roles & CONSUMER and guard.reads == 1
    now[0] += 4.9
    d.party(who)
    assert guard.reads == 1
    now[0] += 0.2
    d.party(who)
    assert guard.reads == 2


def test_ttl_zero_reads_the_registry_every_time(space: Space) -> None:
    guard, now = _CountingGuard(), [0.0]
    d = _directory(space, 0.0, guard, now)
    for _ in range(3):
        d.party(space.consumers[0].address)
    assert guard.reads == 3


def test_thundering_herd_on_an_expired_answer_makes_one_registry_read(space: Space) -> None:
    guard, now = _CountingGuard(hold_s=0.05), [0.0]
    d = _directory(space, 5.0, guard, now)
    who = space.consumers[0].address
    d.party(who)
    now[0] += 6.0  # expired
    guard.reads = 0
    start = threading.Barrier(16)
    answers: list[int] = []

    def ask() -> None:
        start.wait()
        answers.append(d.party(who).roles)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 16 and all(r & CONSUMER for r in answers)
    assert guard.reads == 1
    # another address is not held behind this one's gate: its own single read
    d.party(space.providers[0].address)
    assert guard.reads == 2
