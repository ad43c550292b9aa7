"""Trend tests for slow leaks: Mann–Kendall with Sen's slope, and a causal trend detector.

``mann_kendall`` answers "is this window rising steadily, and how fast?" (the memory-leak event uses it);
``TrendTest`` scores each point by the least-squares rise over its trailing ``span`` points against the
trailing baseline of such rises, so a leak that rises faster than the series' usual drifts stands out.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.base import Channels, Detector


@dataclass(frozen=True)
class MannKendall:
    s: int
    z: float
    p_value: float  # two-sided
    slope: float  # Sen's slope, per step (median of pairwise slopes)

    @property
    def increasing(self) -> bool:
        return self.z > 0


def mann_kendall(values: np.ndarray, timestamps: np.ndarray | None = None) -> MannKendall:
    """The Mann–Kendall trend test (tie-corrected variance) and Sen's slope of one window.

    With ``timestamps`` (seconds), the slope is per second; else per step. O(n²): meant for windows of up to
    a few thousand points.
    """
    x = np.asarray(values, dtype="float64")
    n = len(x)
    if n < 3:
        raise ValueError(f"Mann–Kendall needs at least 3 points, got {n}")
    t = np.arange(n, dtype="float64") if timestamps is None else np.asarray(timestamps, dtype="float64")
    i, j = np.triu_indices(n, k=1)
    diff = x[j] - x[i]
    s = int(np.sign(diff).sum())
    _, ties = np.unique(x, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - np.sum(ties * (ties - 1) * (2 * ties + 5))) / 18.0
    z = 0.0 if s == 0 or var <= 0 else (s - math.copysign(1, s)) / math.sqrt(var)
    dt = t[j] - t[i]
    slope = float(np.median(diff[dt > 0] / dt[dt > 0])) if np.any(dt > 0) else 0.0
    return MannKendall(s, float(z), math.erfc(abs(z) / math.sqrt(2)), slope)  # two-sided normal p


def _rise_weights(span: int) -> np.ndarray:
    """FIR weights giving the least-squares slope × (span − 1) of the last ``span`` points."""
    j = np.arange(span, dtype="float64") - (span - 1) / 2
    return j / np.sum(j * j) * (span - 1)


class TrendTest(Detector):
    """The least-squares rise over the trailing ``span`` points, against the trailing baseline of rises."""

    name = "trend"

    def __init__(
        self, window: int = 1000, min_periods: int = 20, direction: str = "both", spread: str = "wide", span: int = 120
    ):
        super().__init__(window, min_periods, direction, spread)
        self.span = span

    def get_params(self) -> dict:
        return {**super().get_params(), "span": self.span}

    @property
    def spans(self) -> tuple[int, ...]:
        return (self.span,)

    def deviations(self, values, timestamps=None) -> Channels:
        x = np.asarray(values, dtype="float64")
        rise = np.full(len(x), np.nan)
        if len(x) >= self.span:
            # convolve flips the kernel: weight j applies to the point span-1-j places back
            rise[self.span - 1 :] = np.convolve(x, _rise_weights(self.span)[::-1], mode="valid")
        return self._deviation(rise)

    def _reset_state(self) -> None:
        self._recent: deque[float] = deque(maxlen=self.span)
        self._weights = _rise_weights(self.span)
        self._base = self._baseline()

    def update(self, value: float, ts=None) -> Channels:
        self._live()
        self._recent.append(value)
        rise = float(np.dot(self._weights, self._recent)) if len(self._recent) == self.span else math.nan
        dev, z = self._base.update(rise)
        return np.array([dev]), np.array([z])


class LeakTest:
    """A slow leak, as an operator would call it: over the trailing ``window`` the series rises steadily
    (Mann–Kendall z at least ``zbar``) and fast (Sen's slope at least ``min_rate`` units per hour).

    Both bars are fixed, in the metric's own units and in sigmas, not fitted to any labels: host memory
    gaining 4 points an hour for two hours is a leak whatever the series did before. A window is judged
    once it spans ``min_cover`` of ``window``; it is thinned to at most ``max_points`` (every k-th point
    back from the newest) so 10-second samples cost the same as minute ones. The score is
    ``min(slope / min_rate, z / zbar)``: above 1 both bars are passed. ``scores`` (batch) and ``update``
    (streaming) judge the same windows.
    """

    def __init__(
        self,
        window: str = "2h",
        min_rate: float = 4.0,
        zbar: float = 5.0,
        max_points: int = 120,
        min_cover: float = 0.8,
    ):
        self.window, self.min_rate, self.zbar = window, min_rate, zbar
        self.max_points, self.min_cover = max_points, min_cover
        self._span = pd.Timedelta(window).value

    def __repr__(self) -> str:
        return f"LeakTest(window={self.window!r}, min_rate={self.min_rate}, zbar={self.zbar})"

    def _judge(self, t: np.ndarray, x: np.ndarray) -> float:
        """The score of one trailing window (ns timestamps, values; oldest first)."""
        if len(x) < 3 or t[-1] - t[0] < self.min_cover * self._span:
            return 0.0
        k = -(-len(x) // self.max_points)
        t, x = t[::-1][::k][::-1], x[::-1][::k][::-1]
        mk = mann_kendall(x, (t - t[0]) / 3.6e12)  # slope per hour
        return max(0.0, min(mk.slope / self.min_rate, mk.z / self.zbar))

    def scores(self, values, timestamps) -> np.ndarray:
        x = np.asarray(values, dtype="float64")
        t = pd.DatetimeIndex(timestamps).as_unit("ns").asi8
        lo = np.searchsorted(t, t - self._span, side="left")
        return np.array([self._judge(t[a : i + 1], x[a : i + 1]) for i, a in enumerate(lo)])

    def reset(self) -> None:
        self._recent: deque[tuple[int, float]] = deque()

    def update(self, value: float, ts) -> float:
        if not hasattr(self, "_recent"):
            self.reset()
        t = pd.Timestamp(ts).as_unit("ns").value
        self._recent.append((t, float(value)))
        while self._recent[0][0] < t - self._span:
            self._recent.popleft()
        times = np.fromiter((r[0] for r in self._recent), dtype="int64", count=len(self._recent))
        return self._judge(times, np.fromiter((r[1] for r in self._recent), dtype="float64"))
