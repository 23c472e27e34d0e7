"""Loading a utility from its entry point, hashing it, and the resumable cache of its results.

Entry point: ``"package.module:attribute"``; the attribute is a callable
``f(train_provider_subset: tuple[int, ...]) -> int`` (the score in bps of a model trained on
those providers' data; indices into the agreement's providers in ascending address order).
See :mod:`service.valuation.examples` for the contract's optional parts.

Utility hash (the ValuationResult's ``utilityHash``)::

    SHA-256( b"TALLY-UTILITY-V1" || 0x00 || entry point (UTF-8) || 0x00
             || SHA-256(the module's source file bytes) || SHA-256(manifest()) )

with ``manifest()`` the empty string when the utility has none. The source hash pins the
code an auditor runs; the manifest pins the data (and library versions) it reads.

Cache: one text file, a line ``<coalition mask in hex> <score>`` per fresh utility result,
appended and flushed as results arrive. A crashed run restarted with the same cache file
reads it back and only calls the utility for coalitions it does not hold (a half-written
last line is ignored). The first line names the run (utility hash, method parameters hash,
provider count); a cache of another run is refused rather than mixed in.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from service.valuation.estimators import ValuationError

__all__ = ["ResultCache", "load_utility", "mask_utility", "utility_hash"]


def load_utility(entry_point: str) -> Callable[[tuple[int, ...]], int]:
    """The callable named by ``module:attribute`` (raises :class:`ValuationError`)."""
    module_name, sep, attribute = entry_point.partition(":")
    if not sep or not module_name or not attribute:
        raise ValuationError(f"a utility is named module:attribute, got {entry_point!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValuationError(f"cannot import the utility's module {module_name!r}: {err}") from None
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValuationError(f"{module_name} has no attribute {attribute!r}")
    if not callable(target):
        raise ValuationError(f"{entry_point} is not callable")
    return target  # type: ignore[no-any-return]


def utility_hash(entry_point: str, utility: object) -> bytes:
    """The utility hash of the module docstring (32 bytes)."""
    module_name = entry_point.partition(":")[0]
    module = importlib.import_module(module_name)
    source_file = inspect.getsourcefile(module)
    if source_file is None:
        raise ValuationError(f"the utility's module {module_name} has no source file to hash")
    source = Path(source_file).read_bytes()
    manifest_of = getattr(utility, "manifest", None)
    manifest = manifest_of() if callable(manifest_of) else b""
    if not isinstance(manifest, bytes):
        raise ValuationError("a utility's manifest() returns bytes")
    return hashlib.sha256(
        b"TALLY-UTILITY-V1\x00"
        + entry_point.encode()
        + b"\x00"
        + hashlib.sha256(source).digest()
        + hashlib.sha256(manifest).digest()
    ).digest()


def mask_utility(utility: Callable[[tuple[int, ...]], int], n: int) -> Callable[[int], int]:
    """The utility over bitmasks (what :class:`~service.valuation.estimators.Game` calls)."""

    def call(mask: int) -> int:
        return utility(tuple(i for i in range(n) if mask >> i & 1))

    return call


class ResultCache:
    """The append-only cache file of one run (see the module docstring)."""

    def __init__(self, path: Path, *, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self.loaded: dict[int, int] = {}
        self._file: IO[str] | None = None
        if path.exists():
            self.loaded = self._read()

    def _read(self) -> dict[int, int]:
        lines = self.path.read_text().split("\n")
        if lines[0] != f"run {self.run_id}":
            raise ValuationError(
                f"the cache {self.path} belongs to another run ({lines[0][:80]!r}); "
                "use another --cache file or delete it"
            )
        out: dict[int, int] = {}
        complete = lines[1:-1]  # the text after the last newline may be half written
        for number, line in enumerate(complete, start=2):
            parts = line.split(" ")
            try:
                mask, score = int(parts[0], 16), int(parts[1])
            except (IndexError, ValueError):
                raise ValuationError(f"{self.path}:{number}: not '<hex mask> <score>'") from None
            out[mask] = score
        return out

    def open(self) -> None:
        fresh = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not fresh:  # drop a half-written tail before appending
            text = self.path.read_text()
            self.path.write_text(text[: text.rfind("\n") + 1])
        self._file = self.path.open("a", encoding="ascii")
        if fresh:
            self._file.write(f"run {self.run_id}\n")
            self._file.flush()

    def add(self, mask: int, score: int) -> None:
        if self._file is None:
            self.open()
        assert self._file is not None
        self._file.write(f"{mask:x} {score}\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def masks(self) -> Sequence[int]:
        return list(self.loaded)
