"""The point detectors, the ensemble and the registry of every detector by name.

Each detector scores a feature of each point against the trailing robust baseline of that feature
(``base.robust_deviation``), so one threshold rule serves them all:

- ``zscore``: the value itself (a spike or a dip);
- ``level_shift``: the mean of the last ``short`` points (a sustained shift, even a small one);
- ``jump``: the value against the median of the last ``local`` points (a sudden change on a series whose
  level wanders, e.g. with a daily rhythm, where the long baseline is too wide to see it);
- ``iqr``: the distance outside the trailing [Q1, Q3] range, in IQRs (Tukey's fence is 1.5);
- ``seasonal``, ``iforest``, ``trend``: in their own modules;
- ``ensemble``: the channels of several members side by side; the threshold flags a point when any
  channel beats its own record, so every member keeps its own bar. Its seasonal member speaks only while
  the series has a daily rhythm (``min_rhythm``, see :mod:`~rhythm_pipelines.anomaly.rhythm`).
"""

from __future__ import annotations

import math

import bottleneck as bn
import numpy as np

from rhythm_pipelines.anomaly.base import (
    Channels,
    Detector,
    lag,
    one_channel,
    scale_floor,
)
from rhythm_pipelines.anomaly.iforest import WindowedIsolationForest
from rhythm_pipelines.anomaly.rolling import RunningMean, TrailingWindow, trailing_median, trailing_quantile
from rhythm_pipelines.anomaly.seasonal import SeasonalProfile
from rhythm_pipelines.anomaly.trend import TrendTest
from rhythm_pipelines.anomaly.tuning import DEFAULT


class RobustZScore(Detector):
    """|x − median| over the trailing ``window`` points (the point itself excluded), in robust spreads."""

    name = "zscore"

    def deviations(self, values, timestamps=None) -> Channels:
        return self._deviation(np.asarray(values, dtype="float64"))

    def _reset_state(self) -> None:
        self._base = self._baseline()

    def update(self, value: float, ts=None) -> Channels:
        self._live()
        dev, z = self._base.update(value)
        return np.array([dev]), np.array([z])


class LevelShift(Detector):
    """The mean of the last ``short`` points (this one included) against the trailing median of such means
    before them: a sustained shift stands out long before any single point does."""

    name = "level_shift"

    def __init__(
        self, window: int = 1000, min_periods: int = 20, direction: str = "both", spread: str = "wide", short: int = 12
    ):
        super().__init__(window, min_periods, direction, spread)
        self.short = short

    def get_params(self) -> dict:
        return {**super().get_params(), "short": self.short}

    @property
    def spans(self) -> tuple[int, ...]:
        return (self.short,)

    def deviations(self, values, timestamps=None) -> Channels:
        x = np.asarray(values, dtype="float64")
        if len(x) < self.short:
            return one_channel(np.zeros(len(x)), np.zeros(len(x)))
        mean = bn.move_mean(x, self.short, min_count=self.short)
        return self._deviation(mean, delay=self.short)

    def _reset_state(self) -> None:
        self._mean = RunningMean(self.short)
        self._base = self._baseline(delay=self.short)

    def update(self, value: float, ts=None) -> Channels:
        self._live()
        self._mean.push(value)
        mean = self._mean.mean() if self._mean.count >= self.short else math.nan
        dev, z = self._base.update(mean)
        return np.array([dev]), np.array([z])


class LocalJump(Detector):
    """The value against the median of the ``local`` points before it, scored on the trailing baseline of
    such jumps: sees a sudden step on a series whose level wanders (a daily rhythm, a slow drift)."""

    name = "jump"

    def __init__(
        self, window: int = 1000, min_periods: int = 20, direction: str = "both", spread: str = "wide", local: int = 30
    ):
        super().__init__(window, min_periods, direction, spread)
        self.local = local

    def get_params(self) -> dict:
        return {**super().get_params(), "local": self.local}

    def _local_min(self) -> int:
        return max(2, self.local // 3)

    def deviations(self, values, timestamps=None) -> Channels:
        x = np.asarray(values, dtype="float64")
        if len(x) == 0:
            return one_channel(np.zeros(0), np.zeros(0))
        local = lag(trailing_median(x, self.local, self._local_min()))
        return self._deviation(x - local)

    def _reset_state(self) -> None:
        self._recent = TrailingWindow(self.local)
        self._base = self._baseline()

    def update(self, value: float, ts=None) -> Channels:
        self._live()
        local = self._recent.median() if len(self._recent) >= self._local_min() else math.nan
        self._recent.push(value)
        dev, z = self._base.update(value - local)
        return np.array([dev]), np.array([z])


class IQRFence(Detector):
    """Distance outside the trailing [Q1, Q3] range, in IQRs (0 inside; 1.5 is Tukey's fence)."""

    name = "iqr"

    def _outside(self, x, q1, q3):
        """How far past the fence on this detector's side(s): above Q3, below Q1, or either."""
        up, down = np.maximum(x - q3, 0.0), np.maximum(q1 - x, 0.0)
        return up if self.direction == "up" else down if self.direction == "down" else np.maximum(up, down)

    def deviations(self, values, timestamps=None) -> Channels:
        x = np.asarray(values, dtype="float64")
        q1 = lag(trailing_quantile(x, self.window, 0.25, self.min_periods))
        q3 = lag(trailing_quantile(x, self.window, 0.75, self.min_periods))
        dev = self._outside(x, q1, q3)
        z = dev / np.maximum(q3 - q1, scale_floor((q1 + q3) / 2))
        return one_channel(np.nan_to_num(dev, nan=0.0), np.nan_to_num(z, nan=0.0))

    def _reset_state(self) -> None:
        self._values = TrailingWindow(self.window)

    def update(self, value: float, ts=None) -> Channels:
        self._live()
        if len(self._values) < self.min_periods:
            self._values.push(value)
            return np.zeros(1), np.zeros(1)
        q1, q3 = self._values.quantile(0.25), self._values.quantile(0.75)
        self._values.push(value)
        dev = float(self._outside(value, q1, q3))
        return np.array([dev]), np.array([dev / max(q3 - q1, scale_floor((q1 + q3) / 2))])


class Ensemble(Detector):
    """The channels of its members side by side: each member keeps its own record bar, and a point is
    flagged when any member beats its bar. Its ``score_samples`` is the largest member z.

    Default members: the point z-score (spikes), the level shift (sustained shifts, bursts), the local
    jump (steps on rhythmic series), the trend test (leaks) and the seasonal profile (a value wrong for its
    hour), the last only while the series has a daily rhythm of at least ``min_rhythm``. The IQR fence
    only duplicated the z-score and the IsolationForest added false alarms on NAB (see ``rhythm anomalies
    evaluate --method ...``), so they are opt-in members (``zscore+iqr``). Without timestamps the seasonal
    member has no time of day and stays silent (its channel is 0).
    """

    name = "ensemble"
    DEFAULT_MEMBERS = ("zscore", "level_shift", "jump", "trend", "seasonal")

    def __init__(
        self,
        window: int = 1000,
        min_periods: int = 20,
        direction: str = "both",
        spread: str = "wide",
        members: tuple[str, ...] = DEFAULT_MEMBERS,
        min_rhythm: float | None = DEFAULT.min_rhythm,
    ):
        super().__init__(window, min_periods, direction, spread)
        unknown = [m for m in members if m not in DETECTORS or m == self.name]
        if unknown:
            raise ValueError(f"unknown ensemble members {unknown}; choose from {', '.join(MEMBER_NAMES)}")
        self.members = tuple(members)
        self.min_rhythm = min_rhythm

    def get_params(self) -> dict:
        return {**super().get_params(), "members": self.members, "min_rhythm": self.min_rhythm}

    def _detectors(self) -> list[Detector]:
        out = []
        for m in self.members:
            if m == SeasonalProfile.name:
                out.append(
                    SeasonalProfile(
                        self.window, self.min_periods, self.direction, self.spread, min_rhythm=self.min_rhythm
                    )
                )
            else:
                out.append(DETECTORS[m](self.window, self.min_periods, self.direction, self.spread))
        return out

    @property
    def spans(self) -> tuple[int, ...]:
        return tuple(s for d in self._detectors() for s in d.spans)

    def deviations(self, values, timestamps=None) -> Channels:
        parts = [
            _silent(len(values))
            if timestamps is None and d.name == SeasonalProfile.name
            else d.deviations(values, timestamps)
            for d in self._detectors()
        ]
        return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])

    def _reset_state(self) -> None:
        self._members = self._detectors()

    def update(self, value: float, ts=None) -> Channels:
        self._live()
        parts = [
            (np.zeros(1), np.zeros(1)) if ts is None and d.name == SeasonalProfile.name else d.update(value, ts)
            for d in self._members
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _silent(n: int) -> Channels:
    return one_channel(np.zeros(n), np.zeros(n))


DETECTORS: dict[str, type[Detector]] = {
    d.name: d
    for d in (
        Ensemble,
        RobustZScore,
        LevelShift,
        LocalJump,
        IQRFence,
        SeasonalProfile,
        WindowedIsolationForest,
        TrendTest,
    )
}
MEMBER_NAMES = tuple(n for n in DETECTORS if n != Ensemble.name)


def make_detector(method: str, direction: str = "both", min_rhythm: float | None = DEFAULT.min_rhythm) -> Detector:
    """A detector by name, with its defaults; ``a+b+c`` is an ensemble of those members. ``min_rhythm``:
    from which daily-rhythm strength an ensemble's seasonal member speaks."""
    if "+" in method:
        return Ensemble(direction=direction, members=tuple(m.strip() for m in method.split("+")), min_rhythm=min_rhythm)
    if method == Ensemble.name:
        return Ensemble(direction=direction, min_rhythm=min_rhythm)
    try:
        return DETECTORS[method](direction=direction)
    except KeyError:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(DETECTORS)} or a+b+...") from None
