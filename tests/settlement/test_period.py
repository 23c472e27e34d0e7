"""Times in: unix seconds or ISO 8601; times out: UTC beside the unix value."""

from __future__ import annotations

import pytest

from service.errors import InvalidInput
from service.settlement.period import MAX_UNIX, format_time, parse_time

NEW_YEAR_2026 = 1_767_225_600  # 2026-01-01T00:00:00Z (365 days after 1,735,689,600)


@pytest.mark.parametrize(
    "text",
    [
        "1767225600",
        "2026-01-01",
        "2026-01-01T00:00:00Z",
        "2026-01-01T08:00:00+08:00",
        " 2026-01-01 ",
    ],
)
def test_parse_time_accepts_unix_and_iso(text: str) -> None:
    assert parse_time(text) == NEW_YEAR_2026


@pytest.mark.parametrize("text", ["", "soon", "-1", "1969-12-31", str(MAX_UNIX + 1), "1" * 65])
def test_parse_time_refuses_with_the_name(text: str) -> None:
    with pytest.raises(InvalidInput, match="--from"):
        parse_time(text, "--from")


def test_format_time_puts_utc_beside_unix() -> None:
    assert format_time(NEW_YEAR_2026) == "2026-01-01T00:00:00Z (1767225600)"
    assert format_time(MAX_UNIX) == f"unix {MAX_UNIX}"
