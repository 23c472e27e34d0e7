"""The depth-limited JSON reader and the recursion limit (service/jsonsafe.py).

The depth bound must be exact for valid JSON (checked against the parsed document for
generated documents whose strings are full of brackets, quotes and backslashes), an
upper bound for anything else, and the recursion limit must turn the C-stack overflow
into an exception, in a real process.
"""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import JsonTooDeep
from service.jsonsafe import MAX_DEPTH, RECURSION_LIMIT, check_depth, loads, nesting_bound

TRICKY = st.text(alphabet='[]{}"\\ab\n\u00e9', max_size=8)
documents = st.recursive(
    st.none() | st.integers() | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=30,
)


def depth(doc: Any) -> int:
    if isinstance(doc, list):
        return 1 + max((depth(x) for x in doc), default=0)
    if isinstance(doc, dict):
        return 1 + max((depth(x) for x in doc.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(documents, st.booleans())
def test_nesting_bound_is_exact_for_valid_json(doc: Any, ascii_only: bool) -> None:
    text = json.dumps(doc, ensure_ascii=ascii_only)
    assert nesting_bound(text) == depth(doc)


@settings(max_examples=300, deadline=None)
@given(documents, st.integers(min_value=0, max_value=200))
def test_nesting_bound_holds_for_any_prefix(doc: Any, cut: int) -> None:
    # a truncated document: the parser fails, but never nests deeper than the bound
    text = json.dumps(doc)[:cut]
    assert nesting_bound(text) >= depth_reached(text)


def depth_reached(text: str) -> int:
    """The deepest level a left-to-right JSON tokenizer reaches before the text ends."""
    level = top = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            top = max(top, level)
        elif ch in "]}":
            level -= 1
    return top


def test_loads_refuses_deep_documents_with_its_code() -> None:
    with pytest.raises(JsonTooDeep, match=f"r.json nests deeper than {MAX_DEPTH} levels"):
        loads("[" * 100_000, what="r.json")
    with pytest.raises(JsonTooDeep):
        loads(("[" * 100_000).encode("utf-16"))  # json.loads would detect UTF-16 too
    assert JsonTooDeep.code == "json_too_deep" and JsonTooDeep.status == 400
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert depth(loads(ok)) == MAX_DEPTH
    assert loads(b'{"a": "[[[[", "b": "\\\\"}') == {"a": "[[[[", "b": "\\"}
    with pytest.raises(json.JSONDecodeError):
        loads("[1,")  # not JSON: the parser's own error
    check_depth('"' + "\\[" * 10_000)  # an unterminated string of escapes: text, no nesting


def test_limit_recursion_turns_the_crash_into_an_exception() -> None:
    # in a fresh process: importing py_ecc raises the limit to 100,000, where json.loads
    # of 100,000 '[' overflows the C stack (SIGSEGV, exit 139); limit_recursion undoes it
    probe = (
        "import json, sys; import py_ecc; before = sys.getrecursionlimit(); {fix}\n"
        "try:\n    json.loads('[' * 100_000)\n"
        "except RecursionError:\n    print(before, sys.getrecursionlimit()); sys.exit(7)\n"
    )
    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    if soft != resource.RLIM_INFINITY and soft <= 8 * 1024 * 1024:  # the usual 8 MB stack
        crashed = subprocess.run(
            [sys.executable, "-c", probe.format(fix="pass")], capture_output=True, timeout=60
        )
        assert crashed.returncode == -signal.SIGSEGV  # the bug, reproduced
    fixed = subprocess.run(
        [
            sys.executable,
            "-c",
            probe.format(fix="from service.jsonsafe import limit_recursion; limit_recursion()"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fixed.returncode == 7, fixed.stderr
    assert fixed.stdout.split() == ["100000", str(RECURSION_LIMIT)]


def test_process_entry_points_restore_the_recursion_limit() -> None:
    from service.api.main import serve_app
    from service.cli import app

    previous = sys.getrecursionlimit()
    try:
        for enter in (lambda: app(["--help"]), serve_app):
            sys.setrecursionlimit(100_000)  # what importing py_ecc leaves behind
            with contextlib.suppress(SystemExit):
                enter()
            assert sys.getrecursionlimit() == RECURSION_LIMIT
    finally:
        sys.setrecursionlimit(previous)
