"""The indexer's bulk-write helpers (service/indexer/sql.py, store.py)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.indexer.sql import dump_json

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**256), max_value=2**256)  # uint256 / int256 amounts
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_json)
def test_dump_json_equals_the_stdlib_compact_text(value: Any) -> None:
    # orjson is used when it can; integers beyond 64 bits fall back to the stdlib
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert dump_json(value) == expected
    assert json.loads(dump_json(value)) == value
