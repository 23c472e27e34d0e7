"""JSON a hostile input cannot crash: a nesting-depth cap, and a C-stack-safe recursion limit.

Python's ``json`` decoder recurses in C once per ``[`` or ``{``, guarded only by the
interpreter's recursion limit. ``py_ecc`` (imported by eth-account and py-evm) raises
that limit to 100,000 at import, and at about 65,000 levels the decoder overflows the
8 MB C stack: the process dies with SIGSEGV (exit 139), not an exception. One request
with a 200 KB body of ``[`` did that to ``tally serve``. Two defences, each enough alone:

- :func:`check_depth` refuses any document that could nest deeper than
  :data:`MAX_DEPTH` (64; Tally's documents nest 6 deep at most) *before* it is parsed,
  with :class:`~service.errors.JsonTooDeep` (HTTP 400, code ``json_too_deep``). The
  scan runs at C speed (regular expressions drop escapes, string literals and all but
  the brackets; ``itertools.accumulate`` keeps the running depth): at most 0.4 s for
  an 8 MB body of brackets, less than ``json.loads`` takes for it. :func:`loads` is
  ``json.loads`` behind that check; the API applies the check to every request body
  (:class:`service.api.limits.JsonDepthMiddleware`), the CLI's file readers call
  :func:`loads`.
- :func:`limit_recursion` puts the recursion limit back to :data:`RECURSION_LIMIT`
  (12,288: what py-evm asks for, so its EVM can nest 1,024 calls; measured safe for
  ``json``, ``repr`` and ``copy.deepcopy`` of 100,000-deep input even on a 2 MB thread
  stack, where they raise ``RecursionError``). The ``tally`` command and the API
  factory call it after their imports.
"""

from __future__ import annotations

import json
import re
import sys
from array import array
from itertools import accumulate
from typing import Any

from service.errors import JsonTooDeep

__all__ = ["MAX_DEPTH", "RECURSION_LIMIT", "check_depth", "limit_recursion", "loads"]

MAX_DEPTH = 64
RECURSION_LIMIT = 12_288

# Escapes first (outside strings a backslash is already a JSON error), then string
# literals (one left open at the end runs to the end, so a match never fails and the
# scan never restarts inside a string), then everything but brackets.
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*(?:"|\Z)')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


def _shape(text: str) -> bytes:
    """The brackets of ``text`` outside string literals, as they are in ``text``."""
    return _NOT_BRACKET.sub("", _STRING.sub("", _ESCAPE.sub("", text))).encode("ascii")


def _bound(steps: bytes) -> int:
    return max(0, max(accumulate(array("b", steps)), default=0))


def nesting_bound(text: str) -> int:
    """An upper bound of the depth a JSON parser reaches on ``text``, exact for valid JSON.

    The running count of open brackets, at its highest. A parser stops at the first
    error, and before it every bracket outside a string is structure, so this bound
    holds for any text, valid or not.
    """
    return _bound(_shape(text).translate(_STEPS))


def check_depth(text: str, *, max_depth: int = MAX_DEPTH, what: str = "the JSON document") -> None:
    """:class:`~service.errors.JsonTooDeep` when ``text`` could nest deeper than
    ``max_depth``; otherwise nothing (whether it is valid JSON is the parser's call)."""
    steps = _shape(text).translate(_STEPS)
    # a run of opens longer than the limit is the common attack: found at memchr speed
    if b"\x01" * (max_depth + 1) in steps or _bound(steps) > max_depth:
        raise JsonTooDeep(f"{what} nests deeper than {max_depth} levels", max_depth=max_depth)


def decode(data: str | bytes | bytearray) -> str:
    """The text ``json.loads`` would parse from ``data`` (UTF-8, -16 or -32, as it
    detects); :class:`UnicodeDecodeError` when it is not text."""
    if isinstance(data, str):
        return data
    raw = bytes(data)
    return raw.decode(json.detect_encoding(raw), "surrogatepass")


def loads(
    data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH, what: str = "the JSON document"
) -> Any:
    """``json.loads`` after :func:`check_depth`; raises what ``json.loads`` raises
    (``json.JSONDecodeError``, ``UnicodeDecodeError``) for input that is not JSON."""
    text = decode(data)
    check_depth(text, max_depth=max_depth, what=what)
    return json.loads(text)


def limit_recursion(limit: int = RECURSION_LIMIT) -> int:
    """Set the recursion limit to ``limit`` after the libraries that raise it at import
    (``py_ecc``: 100,000) are loaded; returns the limit it replaced."""
    import py_ecc  # noqa: F401  (its import sets the limit; do that first, then undo it)

    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    return previous
