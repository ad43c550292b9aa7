"""A seasonal baseline: each point against the same time of day (or week) in the previous cycles.

The profile value of a point at time t is the median of the series at t − 1·period, …, t − cycles·period
(the last sample at or before each, if it is within ``tolerance`` of it); its residual is then scored on
the trailing robust baseline of residuals. A daily rhythm is no longer a surprise; a point unusual for
its hour is. Needs timestamps.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.base import Channels, Detector


def _ns(timestamps) -> np.ndarray:
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
    ):
        super().__init__(window, min_periods, direction, spread)
        self.period, self.cycles, self.min_cycles, self.tolerance = period, cycles, min_cycles, tolerance

    def get_params(self) -> dict:
        return {
            **super().get_params(),
            "period": self.period,
            "cycles": self.cycles,
            "min_cycles": self.min_cycles,
            "tolerance": self.tolerance,
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

    def deviations(self, values, timestamps=None) -> Channels:
        x = np.asarray(values, dtype="float64")
        return self._deviation(x - self.profile(x, timestamps))

    def _reset_state(self) -> None:
        self._ts: list[int] = []
        self._x: list[float] = []
        self._base = self._baseline()

    def update(self, value: float, ts=None) -> Channels:
        self._live()
        t = int(_ns([ts])[0])
        period, tol = self._steps()
        self._ts.append(t)
        self._x.append(value)
        past = []
        for c in range(1, self.cycles + 1):
            target = t - c * period
            i = bisect_right(self._ts, target) - 1
            if i >= 0 and target - self._ts[i] <= tol:
                past.append(self._x[i])
        expected = float(np.median(past)) if len(past) >= self.min_cycles else math.nan
        horizon = t - self.cycles * period - tol
        if self._ts[0] < horizon and len(self._ts) > 1024:  # forget what no cycle will look at again
            keep = bisect_right(self._ts, horizon) - 1
            del self._ts[:keep], self._x[:keep]
        dev, z = self._base.update(value - expected)
        return np.array([dev]), np.array([z])
