"""Small helpers of the indexer."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is decoded and written.

    A batch allocates tens of thousands of small dicts and tuples, and every 700
    allocations the collector rescans them all: about a quarter of the indexer's time.
    None of them is part of a reference cycle, so reference counting frees them anyway.
    Process-wide and nestable across threads (the prefetch thread decodes while the
    main thread writes): the collector's previous state returns when the last one exits.
    """
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
