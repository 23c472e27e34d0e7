"""Real dev nodes for fixtures: an anvil on a free port, or a skip where anvil is missing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from service.chain.devnode import Anvil, anvil_binary
from service.errors import DevNodeError


def running_anvil(**options: Any) -> Iterator[Anvil]:
    """Start ``Anvil(**options)``, yield it, stop it: the body of every anvil fixture.

    Without the anvil binary the test is skipped, except on CI (``CI`` set), where a missing
    node is a broken setup and fails.
    """
    try:
        anvil_binary()
    except DevNodeError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))
    node = Anvil(**options).start()
    yield node
    node.stop()
