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
