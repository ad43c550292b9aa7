"""The detector contract and the robust baseline most detectors score against.

A detector turns a series into one or more *channels* of ``(deviation, z)`` per point: ``deviation`` is
how far a feature of the point (the value, a short mean, a residual...) lies from its trailing median, in
the series' own units; ``z`` is that deviation over the trailing robust spread. The threshold
(``threshold.RecordThreshold``) flags a point from both. Everything is causal: a point's channels use
only the points at or before it. ``deviations`` is the vectorised batch path, ``update`` the streaming
path, and both give the same numbers.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque

import bottleneck as bn
import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.rolling import RunningMean, TrailingWindow, trailing_median

MAD_TO_SIGMA = 1.4826
DIRECTIONS = ("both", "up", "down")  # which side of the baseline counts: a CPU dip is no incident
SPREADS = ("wide", "mad")  # robust_scale's choices
Channels = tuple[np.ndarray, np.ndarray]  # (deviation, z), each of shape (channels, n) or (channels,)


def lag(a: np.ndarray, k: int = 1) -> np.ndarray:
    """``a`` shifted right by ``k`` positions, NaN first: the statistic as of ``k`` points earlier."""
    out = np.full(len(a), np.nan)
    if k < len(a):
        out[k:] = a[: len(a) - k]
    return out


def scale_floor(center: np.ndarray | float) -> np.ndarray | float:
    """The smallest spread we trust: a flat series still has a scale (relative to its level)."""
    return 1e-3 * (np.abs(center) + 1e-3)


def robust_scale(
    mad: np.ndarray | float, mean_square: np.ndarray | float, center: np.ndarray | float, spread: str = "wide"
):
    """``wide``: the larger of 1.4826·MAD and the RMS deviation (heavy-tailed series get the wider of the two);
    ``mad``: 1.4826·MAD alone (earlier incidents in the window do not widen it)."""
    scale = MAD_TO_SIGMA * mad
    if spread == "wide":
        scale = np.maximum(scale, np.sqrt(np.maximum(mean_square, 0.0)))
    return np.maximum(scale, scale_floor(center))


def one_sided(signed: np.ndarray | float, direction: str) -> np.ndarray | float:
    """A signed deviation as the distance on the side that matters: ``up``, ``down`` or ``both``."""
    if direction == "up":
        return np.maximum(signed, 0.0)
    if direction == "down":
        return np.maximum(-signed, 0.0)
    return np.abs(signed)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
    return value


def robust_deviation(
    feature: np.ndarray,
    window: int,
    min_periods: int,
    delay: int = 1,
    direction: str = "both",
    spread: str = "wide",
) -> Channels:
    """Batch: each point's feature against the median of the feature up to ``delay`` points earlier.

    The spread is the MAD and RMS of the one-step-ahead deviations over the same trailing window.
    ``delay`` > 1 keeps a feature that averages the last ``delay`` points out of its own baseline.
    ``direction`` keeps the deviations on one side only (``up``: above the median); ``spread`` is
    ``robust_scale``'s.
    """
    m = np.asarray(feature, dtype="float64")
    n = len(m)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    if n < min_periods:  # no point has enough history yet
        return np.zeros(n), np.zeros(n)
    w = min(window, n)  # a window longer than the series sees the same points
    base = trailing_median(m, w, min_periods)
    resid = np.abs(m - lag(base))
    mad = trailing_median(resid, w, min_periods)
    mean_square = bn.move_mean(resid * resid, w, min_count=min_periods)
    med = lag(base, delay)
    dev = one_sided(m - med, direction)
    z = dev / robust_scale(lag(mad, delay), lag(mean_square, delay), med, spread)
    return np.nan_to_num(dev, nan=0.0), np.nan_to_num(z, nan=0.0)


class RobustBaseline:
    """Streaming twin of ``robust_deviation``: push one feature value, get its (deviation, z)."""

    def __init__(self, window: int, min_periods: int, delay: int = 1, direction: str = "both", spread: str = "wide"):
        self.min_periods, self.delay, self.direction, self.spread = min_periods, delay, direction, spread
        self._values = TrailingWindow(window)
        self._resid = TrailingWindow(window)
        self._squares = RunningMean(window)
        self._base = math.nan
        self._history: deque[tuple[float, float, float]] = deque()  # (median, mad, mean square) after each push

    def _stat(self, window: TrailingWindow) -> float:
        return window.median() if len(window) >= self.min_periods else math.nan

    def update(self, m: float) -> tuple[float, float]:
        r = abs(m - self._base)  # NaN until the baseline is warm, like the batch path
        self._values.push(m)
        self._resid.push(r)
        self._squares.push(r * r)
        self._base = self._stat(self._values)
        ms = self._squares.mean() if self._squares.count >= self.min_periods else math.nan
        self._history.append((self._base, self._stat(self._resid), ms))
        if len(self._history) <= self.delay:
            return 0.0, 0.0
        med, mad, ms = self._history.popleft()
        dev = float(one_sided(m - med, self.direction))
        if math.isnan(dev) or math.isnan(mad) or math.isnan(ms):
            return (0.0 if math.isnan(dev) else dev), 0.0
        return dev, dev / float(robust_scale(mad, ms, med, self.spread))


class Detector(ABC):
    """A causal detector with a scikit-learn feel: parameters in ``__init__``, no work there."""

    name: str = "detector"

    def __init__(self, window: int = 1000, min_periods: int = 20, direction: str = "both", spread: str = "wide"):
        self.window = window
        self.min_periods = min_periods
        self.direction = check_choice("direction", direction, DIRECTIONS)
        self.spread = check_choice("spread", spread, SPREADS)

    def get_params(self) -> dict:
        return {
            "window": self.window,
            "min_periods": self.min_periods,
            "direction": self.direction,
            "spread": self.spread,
        }

    def _deviation(self, feature: np.ndarray, delay: int = 1) -> Channels:
        """``robust_deviation`` of a feature with this detector's window and direction, as one channel."""
        return one_channel(
            *robust_deviation(feature, self.window, self.min_periods, delay, self.direction, self.spread)
        )

    def _baseline(self, delay: int = 1) -> RobustBaseline:
        """The streaming twin of ``_deviation``."""
        return RobustBaseline(self.window, self.min_periods, delay, self.direction, self.spread)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    @abstractmethod
    def deviations(self, values: np.ndarray | pd.Series, timestamps: pd.DatetimeIndex | None = None) -> Channels:
        """Batch: ``(deviation, z)`` arrays of shape (channels, n)."""

    def reset(self) -> None:
        """Forget the streaming state (``update`` starts a new series)."""
        self._streaming = True
        self._reset_state()

    @abstractmethod
    def _reset_state(self) -> None: ...

    def _live(self) -> None:
        if not getattr(self, "_streaming", False):
            self.reset()

    @abstractmethod
    def update(self, value: float, ts: pd.Timestamp | None = None) -> Channels:
        """Streaming: the next point's ``(deviation, z)``, each of shape (channels,)."""

    @property
    def spans(self) -> tuple[int, ...]:
        """How many points each channel's feature covers (its record is taken from before them)."""
        return (1,)

    def score_samples(self, values: np.ndarray | pd.Series, timestamps: pd.DatetimeIndex | None = None) -> np.ndarray:
        """How surprising each point is, in robust spreads (the largest channel z)."""
        _, z = self.deviations(values, timestamps)
        return z.max(axis=0) if z.size else np.zeros(len(values))


def one_channel(dev: np.ndarray, z: np.ndarray) -> Channels:
    return dev[np.newaxis, :], z[np.newaxis, :]
