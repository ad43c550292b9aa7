"""Intervals calibrated on held-out CV errors (split conformal), and their empirical coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.forecasting.backtest import backtest
from rhythm_pipelines.forecasting.conformal import calibrate, coverage


def test_the_finite_sample_rule_and_widths_growing_with_the_horizon():
    errors = np.tile(np.arange(1, 21, dtype=float)[:, None], (1, 3)) * np.array([1.0, 2.0, 1.5])
    w = calibrate(errors, (80, 95))
    assert w.origins == 20
    np.testing.assert_allclose(w.scale, [10.5, 21.0, 21.0])  # mean |error| per step, made non-decreasing
    scores = (np.abs(errors) / w.scale).ravel()  # 60 pooled scores of 20 origins: n is 20, not 60
    assert w.quantiles[80] == np.quantile(scores, 21 * 0.80 / 20, method="higher")  # (n + 1) L / n, n = 20
    assert w.quantiles[95] == np.quantile(scores, 1.0, method="higher")  # 21 * 0.95 / 20 > 1: the largest
    assert (np.diff(w.half_width(95, 5)) >= 0).all() and len(w.half_width(95, 5)) == 5
    assert calibrate(errors[:5], (80,)) is None  # too few held-out origins: the model's own intervals stay


def test_walk_forward_coverage_is_near_nominal_on_a_stationary_series():
    rng = np.random.default_rng(11)
    n = 2000
    e = rng.normal(0, 1, n)
    y = np.empty(n)
    y[0] = 0
    for k in range(1, n):
        y[k] = 0.6 * y[k - 1] + e[k]
    ts = pd.date_range("2026-03-02", periods=n, freq="5min", tz="UTC")
    r = backtest(ts, y + 20, 12, 0.3, ("naive", "ets", "arima"))
    assert set(r.as_dict()["coverage"]) == {"80", "95"}
    assert 0.70 <= r.coverage["80"] <= 0.90 and 0.88 <= r.coverage["95"] <= 0.99, r.coverage
    assert r.coverage["80"] < r.coverage["95"]
    assert coverage(np.array([1.0, 2.0, 9.0]), np.zeros(3), np.full(3, 5.0)) == 2 / 3
