"""Column types for chain values that do not fit SQL's 64-bit integers.

Token amounts are uint256 in the token's smallest unit: NUMERIC(78, 0) on PostgreSQL
(exact), a decimal string on SQLite (whose INTEGER is 64-bit). Python sees ``int``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

UINT256_MAX = 2**256 - 1


class Uint256(TypeDecorator[int]):
    """An exact non-negative integer up to 2**256 - 1."""

    impl = String(78)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))
        return dialect.type_descriptor(String(78))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Uint256 takes int, not {type(value).__name__}")
        if not 0 <= value <= UINT256_MAX:
            raise ValueError("Uint256 out of range")
        return Decimal(value) if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(value)
