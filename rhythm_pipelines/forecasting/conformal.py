"""Prediction intervals calibrated on held-out errors (split conformal), not on in-sample residuals.

During selection every model is fitted before the CV span and then followed through it without refitting,
so its forecasts from origins inside the span are out of sample. The chosen model's absolute errors at
origins of the span that took no part in choosing it, ``|y - ŷ|`` per horizon step ``k``, calibrate its
intervals: each step's errors are scaled by that step's mean error ``s_k`` (made non-decreasing in ``k``),
the scaled errors of all steps are pooled, and the half-width at level ``L`` is ``s_k · q_L`` with ``q_L``
the pooled scores' empirical quantile at ``(n + 1) L / n``, ``n`` the number of *origins* (the steps of
one origin are not independent, so they do not count as more samples for the finite-sample correction).
This is split conformal with normalised scores (Lei et al. 2018) under the usual exchangeability
assumption, which a drifting series breaks: the coverage actually reached is reported beside it. Beyond
the calibrated horizon the last step's width grows with ``sqrt(k)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_ORIGINS = 8  # fewer held-out origins than this: keep the model's own intervals


@dataclass(frozen=True)
class ConformalWidths:
    scale: np.ndarray  # s_k, per horizon step
    quantiles: dict[int, float]  # level -> q_L
    origins: int

    def half_width(self, level: int, h: int) -> np.ndarray:
        k = len(self.scale)
        s = self.scale[: min(h, k)]
        if h > k:  # past the calibrated horizon: the last width, growing like a random walk's
            s = np.concatenate([s, self.scale[-1] * np.sqrt(np.arange(k + 1, h + 1) / k)])
        return s * self.quantiles[level]


def calibrate(errors: np.ndarray, levels: Sequence[int]) -> ConformalWidths | None:
    """Widths from held-out ``errors`` (origins × horizon, signed or absolute), or None if too few."""
    err = np.abs(np.asarray(errors, dtype="float64"))
    err = err[np.isfinite(err).all(axis=1)] if err.ndim == 2 else err
    if err.ndim != 2 or len(err) < MIN_ORIGINS:
        return None
    scale = np.maximum.accumulate(err.mean(axis=0))
    floor = max(float(scale.max()) * 1e-6, 1e-12)
    scale = np.maximum(scale, floor)
    scores = (err / scale).ravel()
    n = len(err)
    quantiles = {}
    for lv in levels:
        level = min(1.0, (n + 1) * lv / 100 / n)
        quantiles[int(lv)] = float(np.quantile(scores, level, method="higher"))
    return ConformalWidths(scale, quantiles, n)


def coverage(truth: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """The share of ``truth`` inside ``[lo, hi]``."""
    t, a, b = (np.asarray(x, dtype="float64") for x in (truth, lo, hi))
    ok = np.isfinite(t) & np.isfinite(a) & np.isfinite(b)
    return float(((a <= t) & (t <= b))[ok].mean()) if ok.any() else float("nan")
