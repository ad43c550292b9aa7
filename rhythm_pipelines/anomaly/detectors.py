"""Causal point detectors with a scikit-learn feel: parameters in ``__init__``, no work there.

Every detector scores a point from the data before it (its trailing window) and the point itself,
never from later data. ``score_samples(values)`` is the vectorised batch path; ``update(value)`` is the
streaming path, one point at a time; both give the same scores. Scores are "how surprising", ≥ 0, in
units of the series' own robust spread, so one threshold rule can serve every series.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque

import bottleneck as bn
import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.rolling import TrailingWindow

MAD_TO_SIGMA = 1.4826


def _shift(a: np.ndarray) -> np.ndarray:
    """The trailing statistic of the points before each one: shift right by one, NaN first."""
    out = np.empty_like(a)
    out[0] = np.nan
    out[1:] = a[:-1]
    return out


def _scale_floor(center: np.ndarray | float) -> np.ndarray | float:
    """The smallest spread we trust: a flat series still has a scale (relative to its level)."""
    return 1e-3 * (np.abs(center) + 1e-3)


class Detector(ABC):
    """A causal detector: batch ``score_samples`` and streaming ``update`` agree."""

    name: str = "detector"

    def __init__(self, window: int = 1000, min_periods: int = 20):
        self.window = window
        self.min_periods = min_periods

    def get_params(self) -> dict:
        return {"window": self.window, "min_periods": self.min_periods}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    @abstractmethod
    def score_samples(self, values: np.ndarray | pd.Series) -> np.ndarray: ...

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def update(self, value: float) -> float: ...


class RobustZScore(Detector):
    """|x − median| / (1.4826 · MAD) over the trailing ``window`` points (the point itself excluded)."""

    name = "zscore"

    def score_samples(self, values: np.ndarray | pd.Series) -> np.ndarray:
        x = np.asarray(values, dtype="float64")
        if len(x) <= self.min_periods:  # no point has enough history yet
            return np.zeros(len(x))
        window = min(self.window, len(x))  # a longer window over a shorter series sees the same points
        med = _shift(bn.move_median(x, window, min_count=self.min_periods))
        dev = np.abs(x - med)
        mad = _shift(bn.move_median(dev, window, min_count=self.min_periods))
        scale = np.maximum(MAD_TO_SIGMA * mad, _scale_floor(med))
        return np.nan_to_num(dev / scale, nan=0.0)

    def reset(self) -> None:
        self._values = TrailingWindow(self.window)
        self._devs = TrailingWindow(self.window)

    def update(self, value: float) -> float:
        if not hasattr(self, "_values"):
            self.reset()
        med = self._values.median() if len(self._values) >= self.min_periods else math.nan
        dev = abs(value - med)
        mad = self._devs.median() if len(self._devs) >= self.min_periods else math.nan
        self._values.push(value)
        self._devs.push(dev)
        if math.isnan(dev) or math.isnan(mad):
            return 0.0
        return dev / max(MAD_TO_SIGMA * mad, _scale_floor(med))


class IQRFence(Detector):
    """Distance outside the trailing [Q1, Q3] range, in IQRs (0 inside; 1.5 is Tukey's fence)."""

    name = "iqr"

    def score_samples(self, values: np.ndarray | pd.Series) -> np.ndarray:
        s = pd.Series(np.asarray(values, dtype="float64"))
        roll = s.rolling(self.window, min_periods=self.min_periods)
        q1 = roll.quantile(0.25).shift(1).to_numpy()
        q3 = roll.quantile(0.75).shift(1).to_numpy()
        x = s.to_numpy()
        iqr = np.maximum(q3 - q1, _scale_floor((q1 + q3) / 2))
        out = np.maximum(np.maximum(x - q3, q1 - x), 0.0) / iqr
        return np.nan_to_num(out, nan=0.0)

    def reset(self) -> None:
        self._values = TrailingWindow(self.window)

    def update(self, value: float) -> float:
        if not hasattr(self, "_values"):
            self.reset()
        if len(self._values) < self.min_periods:
            self._values.push(value)
            return 0.0
        q1, q3 = self._values.quantile(0.25), self._values.quantile(0.75)
        self._values.push(value)
        iqr = max(q3 - q1, _scale_floor((q1 + q3) / 2))
        return max(value - q3, q1 - value, 0.0) / iqr


class LevelShift(Detector):
    """A sustained shift: the mean of the last ``short`` points (this one included) against the trailing
    median of the points before them, in units of the trailing MAD / √short (the spread of such a mean)."""

    name = "level_shift"

    def __init__(self, window: int = 1000, min_periods: int = 20, short: int = 12):
        super().__init__(window, min_periods)
        self.short = short

    def get_params(self) -> dict:
        return {**super().get_params(), "short": self.short}

    def score_samples(self, values: np.ndarray | pd.Series) -> np.ndarray:
        x = np.asarray(values, dtype="float64")
        n = len(x)
        if n <= self.min_periods + self.short:
            return np.zeros(n)
        window = min(self.window, n)
        med = np.full(n, np.nan)
        mad = np.full(n, np.nan)
        base = bn.move_median(x, window, min_count=self.min_periods)  # ends at i: used by i + short
        med[self.short :] = base[: n - self.short]
        dev = np.abs(x - _shift(base))  # each point against the median of the points before it
        mad_all = bn.move_median(dev, window, min_count=self.min_periods)
        mad[self.short :] = mad_all[: n - self.short]
        mean = bn.move_mean(x, self.short, min_count=self.short)
        scale = np.maximum(MAD_TO_SIGMA * mad / np.sqrt(self.short), _scale_floor(med))
        return np.nan_to_num(np.abs(mean - med) / scale, nan=0.0)

    def reset(self) -> None:
        self._values = TrailingWindow(self.window)
        self._devs = TrailingWindow(self.window)
        self._recent: deque[float] = deque()
        self._history: deque[tuple[float, float]] = deque()  # (median, mad) after each point, last `short`

    def update(self, value: float) -> float:
        if not hasattr(self, "_values"):
            self.reset()
        med = self._values.median() if len(self._values) >= self.min_periods else math.nan
        self._devs.push(abs(value - med))
        self._values.push(value)
        self._history.append(
            (
                self._values.median() if len(self._values) >= self.min_periods else math.nan,
                self._devs.median() if len(self._devs) >= self.min_periods else math.nan,
            )
        )
        self._recent.append(value)
        if len(self._recent) > self.short:
            self._recent.popleft()
        if len(self._history) <= self.short:
            return 0.0
        base_med, base_mad = self._history.popleft()  # the statistics just before the last `short` points
        if len(self._recent) < self.short or math.isnan(base_med) or math.isnan(base_mad):
            return 0.0
        mean = sum(self._recent) / self.short
        return abs(mean - base_med) / max(MAD_TO_SIGMA * base_mad / math.sqrt(self.short), _scale_floor(base_med))


class Ensemble(Detector):
    """Fuses member scores by their maximum: all members score in units of the series' robust spread.

    The default members are the point z-score and the level shift. On the shared NAB subset the IQR fence
    added false alarms and no detections on top of these two, so it is left out by default.
    """

    name = "ensemble"

    def __init__(self, window: int = 1000, min_periods: int = 20, members: tuple[str, ...] = ("zscore", "level_shift")):
        super().__init__(window, min_periods)
        self.members = members

    def get_params(self) -> dict:
        return {**super().get_params(), "members": self.members}

    def _detectors(self) -> list[Detector]:
        return [DETECTORS[m](window=self.window, min_periods=self.min_periods) for m in self.members]

    def score_samples(self, values: np.ndarray | pd.Series) -> np.ndarray:
        x = np.asarray(values, dtype="float64")
        return np.max([d.score_samples(x) for d in self._detectors()], axis=0) if len(x) else np.zeros(0)

    def reset(self) -> None:
        self._live = self._detectors()

    def update(self, value: float) -> float:
        if not hasattr(self, "_live"):
            self.reset()
        return max(d.update(value) for d in self._live)


DETECTORS: dict[str, type[Detector]] = {d.name: d for d in (RobustZScore, IQRFence, LevelShift, Ensemble)}
