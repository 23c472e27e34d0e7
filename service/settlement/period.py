"""Times a person writes and reads: unix seconds or ISO 8601 in, UTC next to unix out.

The CLI's ``--from``/``--to`` and the API's ``from``/``to`` query parameters take the same
forms through :func:`parse_time`; deadlines and periods print through :func:`format_time`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from service.errors import InvalidInput

__all__ = ["MAX_UNIX", "format_time", "parse_time"]

MAX_UNIX = 2**63 - 1
"""The largest time Tally stores (uint64 fields kept as BIGINT)."""

_MAX_TEXT = 64  # no ISO 8601 date-time is longer; a longer value is refused unparsed


def parse_time(value: str, what: str = "time") -> int:
    """Unix seconds, or an ISO 8601 date / date-time (UTC when no offset is given).

    Raises :class:`~service.errors.InvalidInput` naming ``what`` for anything else, for a
    time before 1970 and for one past :data:`MAX_UNIX`.
    """
    text = value.strip()
    if len(text) > _MAX_TEXT:
        raise InvalidInput(f"{what} is too long to be a time ({len(text)} characters)")
    if text.isdigit():
        seconds = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{what} {value!r} is neither unix seconds nor ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = int(moment.timestamp())
    if not 0 <= seconds <= MAX_UNIX:
        raise InvalidInput(f"{what} {value!r} is outside 1970-01-01 .. unix {MAX_UNIX}")
    return seconds


def format_time(seconds: int) -> str:
    """``2026-01-01T00:00:00Z (1767225600)``: UTC first, the unix value beside it."""
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"unix {seconds}"
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%SZ')} ({seconds})"
