"""A trailing window with an exact running median and quantiles, for the streaming path.

Values are kept in arrival order and in a sorted list (``bisect``), so a median or quantile of the
last ``size`` values costs O(size) memmove per update and no sort; the arithmetic is the same as
pandas' rolling median/quantile (linear interpolation), so batch and streaming agree.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque


class TrailingWindow:
    """The last ``size`` positions; NaN positions take a slot but no value."""

    def __init__(self, size: int):
        self.size = size
        self._order: deque[float] = deque()
        self._sorted: list[float] = []

    def push(self, value: float) -> None:
        self._order.append(value)
        if not math.isnan(value):
            insort(self._sorted, value)
        if len(self._order) > self.size:
            old = self._order.popleft()
            if not math.isnan(old):
                del self._sorted[bisect_left(self._sorted, old)]

    def __len__(self) -> int:
        """How many real (non-NaN) values the window holds."""
        return len(self._sorted)

    def quantile(self, q: float) -> float:
        s = self._sorted
        if not s:
            return math.nan
        pos = q * (len(s) - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, len(s) - 1)
        frac = pos - lo
        return s[lo] + (s[hi] - s[lo]) * frac if frac else s[lo]

    def median(self) -> float:
        s, n = self._sorted, len(self._sorted)
        if not n:
            return math.nan
        mid = n // 2
        return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2
