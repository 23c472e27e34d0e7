"""Canonical JSON (RFC 8785, JCS) for the catalog's documents: pricing and usage terms.

An Offer carries its pricing and terms as canonical JSON text inside the signed message,
so one document has one byte string and one SHA-256 (the ``termsHash`` an AgreementV2
names). :func:`parse_canonical` refuses text that is not exactly the canonical form of
a JSON object (re-serialise with :func:`canonical_text` first); it is pure and does not
recurse deeper than :data:`service.jsonsafe.MAX_DEPTH`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

from service.jsonsafe import check_depth

__all__ = ["canonical_bytes", "canonical_text", "document_hash", "parse_canonical"]


def canonical_bytes(document: Any) -> bytes:
    """RFC 8785 bytes of a JSON value (integers beyond 2**53 and floats are refused)."""
    try:
        return bytes(rfc8785.dumps(document))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ValueError(f"not canonicalisable JSON: {exc}") from None


def canonical_text(document: Any) -> str:
    """RFC 8785 text of a JSON value."""
    return canonical_bytes(document).decode("utf-8")


def document_hash(document: Any) -> bytes:
    """SHA-256 of the canonical bytes (an AgreementV2's ``termsHash`` for terms)."""
    return hashlib.sha256(canonical_bytes(document)).digest()


def parse_canonical(text: str, *, what: str) -> dict[str, Any]:
    """Parse ``text`` as a JSON object that is already in RFC 8785 form.

    Raises ``ValueError`` naming ``what`` when it is not JSON, not an object, nests too
    deep, holds a float, or differs from its canonical form.
    """
    try:
        check_depth(text, what=what)
    except Exception as exc:  # JsonTooDeep: a TallyError, reported as a field error here
        raise ValueError(str(exc)) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not JSON: {exc.msg} at offset {exc.pos}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    if _has_float(value):
        raise ValueError(f"{what} must not hold non-integer numbers (amounts are integers)")
    if canonical_text(value) != text:
        raise ValueError(f"{what} is not in RFC 8785 canonical form (sorted keys, no spaces)")
    return value


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False
