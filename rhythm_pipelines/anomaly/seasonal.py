"""A seasonal baseline: each point against the same time of day (or week) in the previous cycles.

The profile value of a point at time t is the median of the series at t − 1·period, …, t − cycles·period
(the last sample at or before each, if it is within ``tolerance`` of it); its residual is then scored on
the trailing robust baseline of residuals. A daily rhythm is no longer a surprise; a point unusual for
its hour is. Needs timestamps.

With ``min_rhythm``, the channel speaks only while the series has a daily rhythm of at least that strength
(:mod:`~rhythm_pipelines.anomaly.rhythm`, over the trailing ``rhythm_days``); elsewhere its deviation is 0.
This is how the ensemble carries it by default: rhythm explained away where there is one, silent where
there is none.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.base import Channels, Detector, one_channel
from rhythm_pipelines.anomaly.rhythm import RhythmMeter, rhythm


def _ns(timestamps: pd.DatetimeIndex | list | None) -> np.ndarray:
    if timestamps is None:
        raise ValueError("the seasonal detector needs the timestamps of the values")
    return pd.DatetimeIndex(timestamps).as_unit("ns").asi8


class SeasonalProfile(Detector):
    name = "seasonal"

    def __init__(
        self,
        window: int = 1000,
        min_periods: int = 20,
        direction: str = "both",
        spread: str = "wide",
        period: str = "1D",
        cycles: int = 7,
        min_cycles: int = 2,
        tolerance: str = "1h",
        min_rhythm: float | None = None,
        rhythm_days: float = 14.0,
    ):
        super().__init__(window, min_periods, direction, spread)
        self.period, self.cycles, self.min_cycles, self.tolerance = period, cycles, min_cycles, tolerance
        self.min_rhythm, self.rhythm_days = min_rhythm, rhythm_days

    def get_params(self) -> dict:
        return {
            **super().get_params(),
            "period": self.period,
            "cycles": self.cycles,
            "min_cycles": self.min_cycles,
            "tolerance": self.tolerance,
            "min_rhythm": self.min_rhythm,
            "rhythm_days": self.rhythm_days,
        }

    def _steps(self) -> tuple[int, int]:
        return pd.Timedelta(self.period).value, pd.Timedelta(self.tolerance).value

    def profile(self, values, timestamps) -> np.ndarray:
        """The seasonal expectation of every point from the previous cycles (NaN until ``min_cycles``)."""
        x = np.asarray(values, dtype="float64")
        ts = _ns(timestamps)
        period, tol = self._steps()
        past = np.full((self.cycles, len(x)), np.nan)
        for c in range(1, self.cycles + 1):
            target = ts - c * period
            idx = np.searchsorted(ts, target, side="right") - 1
            ok = (idx >= 0) & (target - ts[np.maximum(idx, 0)] <= tol)
            past[c - 1, ok] = x[idx[ok]]
        enough = np.sum(~np.isnan(past), axis=0) >= self.min_cycles
        out = np.full(len(x), np.nan)
        if enough.any():
            out[enough] = np.nanmedian(past[:, enough], axis=0)
        return out

    def _window_ns(self) -> int:
        return int(self.rhythm_days * 86_400 * 10**9)

    def rhythm(self, values: np.ndarray, timestamps: pd.DatetimeIndex) -> np.ndarray:
        """The daily-rhythm strength of every point (see :mod:`~rhythm_pipelines.anomaly.rhythm`)."""
        period, tol = self._steps()
        return rhythm(np.asarray(values, dtype="float64"), _ns(timestamps), period, self._window_ns(), tol)

    def deviations(self, values, timestamps=None) -> Channels:
        x = np.asarray(values, dtype="float64")
        dev, z = self._deviation(x - self.profile(x, timestamps))
        if self.min_rhythm is None or len(x) == 0:
            return dev, z
        quiet = self.rhythm(x, timestamps) < self.min_rhythm
        return one_channel(np.where(quiet, 0.0, dev[0]), np.where(quiet, 0.0, z[0]))

    def _reset_state(self) -> None:
        self._ts: list[int] = []
        self._x: list[float] = []
        self._base = self._baseline()
        self._meter = RhythmMeter(self._window_ns())

    def _back(self, t: int, lag: int, tol: int) -> float:
        """The last value at or before ``t - lag`` if within ``tol`` of it (the current point excluded)."""
        target = t - lag
        i = bisect_right(self._ts, target) - 1
        return self._x[i] if i >= 0 and target - self._ts[i] <= tol else math.nan

    def update(self, value: float, ts=None) -> Channels:
        self._live()
        t = int(_ns([ts])[0])
        period, tol = self._steps()
        self._ts.append(t)
        self._x.append(value)
        backs = [self._back(t, c * period, tol) for c in range(1, self.cycles + 1)]
        past = [b for b in backs if not math.isnan(b)]
        expected = float(np.median(past)) if len(past) >= self.min_cycles else math.nan
        strength = self._meter.push(t, value, backs[0], self._back(t, period // 2, tol))
        horizon = t - self.cycles * period - tol
        if self._ts[0] < horizon and len(self._ts) > 1024:  # forget what no cycle will look at again
            keep = bisect_right(self._ts, horizon) - 1
            del self._ts[:keep], self._x[:keep]
        dev, z = self._base.update(value - expected)
        if self.min_rhythm is not None and strength < self.min_rhythm:
            dev, z = 0.0, 0.0
        return np.array([dev]), np.array([z])
