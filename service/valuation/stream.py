"""The random stream of the sampling estimators: SHA-256 in counter mode over a 32-byte seed.

Why not :mod:`random` or numpy: an auditor must draw the same permutations and subsets as the
evaluator, bit for bit, on any Python and numpy version. Block ``c`` of the stream is
``SHA-256(b"TALLY-VALUATION-STREAM-V1" || seed || uint64_be(c))``; bytes are consumed in order.
:meth:`SeedStream.below` draws an integer in ``[0, n)`` by rejection sampling on the smallest
number of whole bytes that holds ``n - 1`` (no modulo bias); :meth:`SeedStream.shuffled` is
Fisher-Yates from the last position down; :meth:`SeedStream.bits` reads ``n`` bits, bit ``i``
of the result being bit ``i % 8`` (least significant first) of byte ``i // 8``.
Anyone can reimplement these three rules in a few lines.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["SeedStream"]

_DOMAIN: Final = b"TALLY-VALUATION-STREAM-V1"


class SeedStream:
    """A deterministic byte stream from a 32-byte seed (see the module docstring)."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError(f"a valuation seed is 32 bytes, got {len(seed)}")
        self._seed = bytes(seed)
        self._counter = 0
        self._buffer = b""
        self._pos = 0

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes of the stream."""
        out = bytearray()
        while len(out) < count:
            if self._pos == len(self._buffer):
                block = _DOMAIN + self._seed + self._counter.to_bytes(8, "big")
                self._buffer = hashlib.sha256(block).digest()
                self._counter += 1
                self._pos = 0
            step = min(count - len(out), len(self._buffer) - self._pos)
            out += self._buffer[self._pos : self._pos + step]
            self._pos += step
        return bytes(out)

    def below(self, n: int) -> int:
        """A uniform integer in ``[0, n)`` (rejection sampling, no modulo bias)."""
        if n < 1:
            raise ValueError("below() needs n >= 1")
        if n == 1:
            return 0
        width = ((n - 1).bit_length() + 7) // 8
        limit = (256**width // n) * n  # the largest multiple of n representable
        while True:
            value = int.from_bytes(self.take(width), "big")
            if value < limit:
                return value % n

    def shuffled(self, n: int) -> list[int]:
        """A uniform permutation of ``range(n)`` (Fisher-Yates, last position first)."""
        order = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            order[i], order[j] = order[j], order[i]
        return order

    def bits(self, n: int) -> int:
        """``n`` fair coin flips as a bitmask (bit ``i`` set = flip ``i`` came up heads)."""
        raw = self.take((n + 7) // 8)
        return int.from_bytes(raw, "little") & ((1 << n) - 1)
