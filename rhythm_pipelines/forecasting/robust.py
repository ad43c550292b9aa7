"""A robust candidate for spiky and intermittent series: the median of the last ``w`` points, held flat.

Under absolute error the best point forecast is the median, not the mean: on a series that idles at one value
and bursts now and then (disk writes, a mostly idle CPU), a mean-based model or the last value pays for every
burst twice, the median pays once. ``AutoMedian`` picks ``w`` on its fit history by the MAE of ``EVAL_H``-step
forecasts, and takes its intervals from the quantiles of those same in-sample errors (split-conformal style).
It speaks statsforecast's model interface (``fit``, ``predict``, ``forward``) so the zoo treats it like the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

WINDOWS = (3, 6, 12, 24, 48)
EVAL_H = 12  # the horizon windows are scored on (an hour of 5-minute steps)


class AutoMedian:
    def __init__(self, windows: Sequence[int] = WINDOWS, eval_h: int = EVAL_H):
        self.windows, self.eval_h = tuple(windows), eval_h
        self.window = windows[0]
        self.quantiles: dict[float, float] = {}
        self._tail = np.zeros(0)

    def _errors(self, y: np.ndarray, w: int) -> np.ndarray:
        """In-sample errors (actual − forecast) of every origin with a full window and horizon behind/after it."""
        h = min(self.eval_h, max(1, len(y) - w))
        med = pd.Series(y).rolling(w).median().to_numpy()[w - 1 : len(y) - h]
        future = sliding_window_view(y[w:], h)[: len(med)]
        return (future - med[:, None]).ravel()

    def fit(self, y: np.ndarray) -> AutoMedian:
        y = np.asarray(y, dtype="float64")
        fits = [w for w in self.windows if len(y) > w + 1] or [1]
        scored = {w: self._errors(y, w) for w in fits}
        self.window = min(fits, key=lambda w: (np.mean(np.abs(scored[w])), w))
        errors = scored[self.window]
        probs = sorted({p for lv in range(1, 100) for p in (0.5 - lv / 200, 0.5 + lv / 200)})
        self.quantiles = dict(zip(probs, np.quantile(errors, probs), strict=True)) if len(errors) else {}
        self._tail = y[-self.window :].copy()
        return self

    def _forecast(self, tail: np.ndarray, h: int, level: Sequence[int] | None) -> dict[str, np.ndarray]:
        mean = float(np.median(tail[-self.window :]))
        out = {"mean": np.full(h, mean)}
        for lv in level or ():
            lo, hi = self.quantiles.get(0.5 - lv / 200, 0.0), self.quantiles.get(0.5 + lv / 200, 0.0)
            out[f"lo-{lv}"], out[f"hi-{lv}"] = np.full(h, mean + lo), np.full(h, mean + hi)
        return out

    def predict(self, h: int, level: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        return self._forecast(self._tail, h, level)

    def forward(self, y: np.ndarray, h: int, level: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        """The forecast after the history ``y``, with the window and quantiles fitted (nothing re-estimated)."""
        return self._forecast(np.asarray(y, dtype="float64"), h, level)
