"""The walk-forward backtest: no look-ahead, the baselines, its contract."""

from __future__ import annotations

import numpy as np
import pytest

from rhythm_pipelines.forecasting.backtest import backtest
from rhythm_pipelines_tests.forecasting.conftest import daily_sine, noisy_level

MODELS = ("naive", "ets", "arima")


def test_a_forecast_uses_only_the_data_up_to_its_origin():
    a = noisy_level(700, seed=4)
    b = a.copy()
    n_train = 700 - int(700 * 0.2)
    cut = n_train + 50
    b.iloc[cut:] += np.linspace(1, 200, 700 - cut)  # the futures differ from `cut` on
    ra = backtest(a.index, a.to_numpy(), 12, 0.2, MODELS)
    rb = backtest(b.index, b.to_numpy(), 12, 0.2, MODELS)
    assert ra.model == rb.model and ra.origins == rb.origins == 700 - n_train - 12 + 1
    same = cut - n_train + 1  # origins knowing at most `cut` points
    np.testing.assert_array_equal(ra.predictions[:same], rb.predictions[:same])
    assert not np.array_equal(ra.predictions[same : same + 1], rb.predictions[same : same + 1])


def test_baselines_and_metrics_of_a_seasonal_series():
    s = daily_sine(days=4, noise=0.3)
    r = backtest(s.index, s.to_numpy(), 12, 0.25)
    m = r.metrics
    assert set(m) == {"model", "naive", "seasonal_naive"} and set(m["model"]) == {"mae", "mape", "mase"}
    # the day-ago value is almost exact on a pure cycle; the last value is not; the model is close to it
    assert m["seasonal_naive"]["mae"] < 0.2 * m["naive"]["mae"]
    assert m["model"]["mae"] < 0.5 * m["naive"]["mae"] and r.skill() > 0.5
    assert r.fit_s > 0 and 0 < r.predict_ms["p50"] <= r.predict_ms["p99"]
    d = r.as_dict()
    assert d["model"] == r.model and d["step"] == "5min" and d["seasons"] == [288]


def test_bad_settings_get_clear_errors():
    s = noisy_level(100)
    with pytest.raises(ValueError, match="test fraction"):
        backtest(s.index, s.to_numpy(), 12, 1.5)
    with pytest.raises(ValueError, match="too few"):
        backtest(s.index, s.to_numpy(), 48, 0.2)


def test_a_series_with_missing_points_is_put_on_its_grid_and_a_long_hole_is_refused():
    from rhythm_pipelines.forecasting.grid import GapError, regularise

    s = daily_sine(days=4, noise=0.3)
    rng = np.random.default_rng(3)
    drop = np.sort(rng.choice(np.arange(1, len(s) - 1), size=len(s) // 5, replace=False))
    keep = np.ones(len(s), dtype=bool)
    keep[drop] = False
    keep[drop[:-1][np.diff(drop) == 1]] = True  # no two missing in a row: short gaps only
    sparse = s[keep]
    grid = regularise(sparse.index, sparse.to_numpy())
    assert len(grid.ts) == len(s) and grid.filled == int((~keep).sum()) and grid.filled > 0.1 * len(s)
    full, gappy = backtest(s.index, s.to_numpy(), 12, 0.25), backtest(sparse.index, sparse.to_numpy(), 12, 0.25)
    assert gappy.as_dict()["grid"]["filled"] == grid.filled and gappy.origins == full.origins
    # the seasonal-naive baseline compares like with like: the same order of error as on the full series
    assert gappy.metrics["seasonal_naive"]["mae"] < 2 * full.metrics["seasonal_naive"]["mae"]
    hole = s.drop(s.index[400:700])  # 25 h of 5-minute points
    with pytest.raises(GapError, match=r"a gap of 300 missing steps of 5min \(1 days 01:00:00\) from .* 09:20"):
        backtest(hole.index, hole.to_numpy(), 12, 0.25)
