"""IsolationForest on windowed features, refitted on a trailing window: causal by construction.

Each point's feature vector is its last ``width`` values relative to the median of the ``width`` before
them (the shape of the recent path, not the level). A forest fitted at index b on the feature vectors of
the ``window`` points before b scores the points b … b + refit − 1; then it is refitted. The forest's
anomaly score (higher = more isolated) is then scored on its own trailing robust baseline. Batch and
streaming fit at the same indices with the same seed, so they agree. With a ``direction``, only points on
that side of their recent level count.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from rhythm_pipelines.anomaly.base import Channels, Detector, RobustBaseline, one_channel, robust_deviation

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest


class WindowedIsolationForest(Detector):
    name = "iforest"

    def __init__(
        self,
        window: int = 1000,
        min_periods: int = 20,
        direction: str = "both",
        spread: str = "wide",
        width: int = 6,
        refit: int = 500,
        min_fit: int = 200,
        n_estimators: int = 50,
        random_state: int = 0,
    ):
        super().__init__(window, min_periods, direction, spread)
        self.width, self.refit, self.min_fit = width, refit, min_fit
        self.n_estimators, self.random_state = n_estimators, random_state

    def get_params(self) -> dict:
        return {
            **super().get_params(),
            "width": self.width,
            "refit": self.refit,
            "min_fit": self.min_fit,
            "n_estimators": self.n_estimators,
            "random_state": self.random_state,
        }

    def _forest(self, rows: np.ndarray) -> IsolationForest:
        from sklearn.ensemble import IsolationForest  # imported when used: it is slow to import

        return IsolationForest(
            n_estimators=self.n_estimators, max_samples=min(256, len(rows)), random_state=self.random_state
        ).fit(rows)

    def features(self, values) -> np.ndarray:
        """Rows of the last ``width`` values minus the median of the ``width`` before them (NaN at first)."""
        x = np.asarray(values, dtype="float64")
        n, w = len(x), self.width
        out = np.full((n, w), np.nan)
        if n < 2 * w:
            return out
        lagged = np.lib.stride_tricks.sliding_window_view(x, 2 * w)  # row r covers x[r : r + 2w]
        ref = np.median(lagged[:, :w], axis=1, keepdims=True)
        out[2 * w - 1 :] = lagged[:, w:] - ref
        return out

    def _fit_points(self, n: int) -> range:
        first = max(self.min_fit, 2 * self.width - 1 + self.min_fit)
        first = -(-first // self.refit) * self.refit  # refits happen at multiples of `refit`
        return range(first, n, self.refit)

    def raw_scores(self, values) -> np.ndarray:
        feats = self.features(values)
        n = len(feats)
        out = np.full(n, np.nan)
        for b in self._fit_points(n):
            train = feats[max(0, b - self.window) : b]
            forest = self._forest(train[~np.isnan(train).any(axis=1)])
            out[b : b + self.refit] = -forest.score_samples(feats[b : b + self.refit])
        return out

    def _side(self, last: np.ndarray | float) -> np.ndarray | float:
        """1 where the point lies on the detector's side of its recent level (the isolation score has none)."""
        if self.direction == "both":
            return 1.0
        return np.where(np.nan_to_num(last) > 0 if self.direction == "up" else np.nan_to_num(last) < 0, 1.0, 0.0)

    def deviations(self, values, timestamps=None) -> Channels:
        dev, z = robust_deviation(self.raw_scores(values), self.window, self.min_periods, spread=self.spread)
        side = self._side(self.features(values)[:, -1])
        return one_channel(dev * side, z * side)

    def _reset_state(self) -> None:
        self._values: deque[float] = deque(maxlen=2 * self.width)
        self._rows: deque[np.ndarray] = deque(maxlen=self.window)
        self._forest_now: IsolationForest | None = None
        self._i = 0
        self._base = RobustBaseline(self.window, self.min_periods, spread=self.spread)

    def update(self, value: float, ts=None) -> Channels:
        self._live()
        self._values.append(value)
        first_fit = self._fit_points(self._i + 1)
        if len(first_fit) and first_fit[-1] == self._i:
            rows = np.array([r for r in self._rows if not np.isnan(r).any()])
            self._forest_now = self._forest(rows)
        row = np.full(self.width, np.nan)
        if len(self._values) == 2 * self.width:
            v = np.array(self._values)
            row = v[self.width :] - np.median(v[: self.width])
        score = math.nan
        if self._forest_now is not None:
            score = float(-self._forest_now.score_samples(row[np.newaxis, :])[0])
        self._rows.append(row)
        self._i += 1
        dev, z = self._base.update(score)
        side = float(self._side(row[-1]))
        return np.array([dev * side]), np.array([z * side])
