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

from rhythm_pipelines.anomaly.base import Channels, Detector, RobustBaseline, one_channel, robust_deviation


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

    def __init__(self, window: int = 1000, min_periods: int = 20, span: int = 120):
        super().__init__(window, min_periods)
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
        return one_channel(*robust_deviation(rise, self.window, self.min_periods))

    def _reset_state(self) -> None:
        self._recent: deque[float] = deque(maxlen=self.span)
        self._weights = _rise_weights(self.span)
        self._base = RobustBaseline(self.window, self.min_periods)

    def update(self, value: float, ts=None) -> Channels:
        self._live()
        self._recent.append(value)
        rise = float(np.dot(self._weights, self._recent)) if len(self._recent) == self.span else math.nan
        dev, z = self._base.update(rise)
        return np.array([dev]), np.array([z])
