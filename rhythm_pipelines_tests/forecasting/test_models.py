"""The zoo, selection, the fitted-model update path and the Naive guard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.forecasting.models import (
    GuardedModel,
    SeriesModel,
    infer_step,
    parse_step,
    season_lengths,
    seasonal_naive_forecast,
    step_name,
)
from rhythm_pipelines.forecasting.selection import actuals, mae, mape, mase_scale, rolling_forecasts, select_model
from rhythm_pipelines_tests.forecasting.conftest import DAY, STEP, daily_sine, noisy_level


def test_season_lengths_come_from_the_step_and_need_two_seasons():
    assert season_lengths(STEP, 2 * DAY) == [DAY]
    assert season_lengths(STEP, 2 * DAY - 1) == []
    assert season_lengths(pd.Timedelta("1h"), 24 * 14) == [24, 168]
    assert season_lengths(pd.Timedelta("11min"), 10_000) == []  # neither a day nor a week is whole steps
    assert season_lengths(pd.Timedelta("7min"), 10_000) == [1440]  # a week is, a day is not
    ts = pd.date_range("2026-01-01", periods=5, freq="5min").delete(2)  # one gap: the mode still wins
    assert infer_step(ts) == STEP
    assert [step_name(pd.Timedelta(s)) for s in ("5min", "1h", "10s")] == ["5min", "h", "10s"]
    assert parse_step("h") == pd.Timedelta("1h") and parse_step(step_name(STEP)) == STEP


def test_metrics_on_hand_computed_cases():
    actual, pred = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 2.0])
    assert mae(actual, pred) == pytest.approx(1.0)
    assert mape(actual, pred) == pytest.approx((1 / 1 + 0 + 2 / 4) / 3)
    assert mape(np.array([0.0, 2.0]), np.array([1.0, 1.0])) == pytest.approx(0.5)  # zero actuals skipped
    assert mase_scale(np.array([1.0, 3.0, 2.0])) == pytest.approx(1.5)
    assert mase_scale(np.full(5, 7.0)) == 1.0
    assert seasonal_naive_forecast(np.arange(10.0), 5, 4).tolist() == [6, 7, 8, 9, 6]


def test_a_pure_daily_sine_picks_a_seasonal_model():
    y = daily_sine(days=4, noise=0.5)
    sel = select_model(y.to_numpy(), season_lengths(STEP, len(y)), h=12)
    seasonal = {"seasonal_naive", "mstl"}
    assert sel.name in seasonal or (sel.name == "ensemble" and seasonal & set(sel.members)), sel.scores
    scores = sel.scores.set_index("model")["mae"]
    assert scores[["seasonal_naive", "mstl"]].min() < 0.5 * scores["naive"]
    # the fitted model, brought one step forward, forecasts the next hour of the cycle
    fc = sel.model.forecast(12).mean
    truth = 50 + 20 * np.sin(2 * np.pi * np.arange(len(y), len(y) + 12) / DAY)
    assert np.abs(fc - truth).mean() < 1.5


def test_a_mean_reverting_series_beats_naive_and_records_every_candidate():
    full = noisy_level(1400).to_numpy()
    y = full[:560]
    sel = select_model(y, season_lengths(STEP, len(y)), h=12)
    scores = sel.scores.set_index("model")
    # under two days of 5-minute points there is no daily season: no seasonal candidates
    assert set(scores.index) == {"naive", "median", "ets", "theta", "arima", "ensemble"} and sel.cv_origins == 12
    assert sel.name != "naive"
    # out of sample, the fitted model followed forward beats the last value clearly (theory: MAE x 0.71)
    at = range(560, 1400 - 12, 6)
    pred = rolling_forecasts(sel.model, full, 560, at, 12)
    truth = actuals(full, at, 12)
    assert mae(truth, pred) < 0.85 * mae(truth, np.vstack([np.full(12, full[o - 1]) for o in at]))
    cv_span = 560 // 4  # a quarter of the series (shorter than a day)
    np.testing.assert_allclose(scores["mase"], scores["mae"] / mase_scale(y[: 560 - cv_span]))


@pytest.mark.parametrize("name", ["ets", "arima", "theta", "naive"])
def test_update_follows_new_points_like_a_forward_pass_without_refitting(name):
    y = noisy_level(700).to_numpy()
    model = SeriesModel(name, []).fit(y[:600])
    params = repr(getattr(model.model, "model_", None))[:200]
    model.update(y[600:650]).update(y[650:])
    expected = model.model.forward(y=y, h=6, level=[80])
    got = model.forecast(6, levels=[80])
    np.testing.assert_allclose(got.mean, expected["mean"])
    np.testing.assert_allclose(got.lo[80], expected["lo-80"])
    assert repr(getattr(model.model, "model_", None))[:200] == params  # nothing re-estimated


def test_mstl_update_keeps_the_seasonal_profile_in_phase():
    y = daily_sine(days=5, noise=0.2, seed=3).to_numpy()
    model = SeriesModel("mstl", [DAY]).fit(y[: 3 * DAY])
    np.testing.assert_allclose(model.forecast(12, levels=[]).mean, model.model.predict(12)["mean"])
    model.update(y[3 * DAY : 4 * DAY + 100])  # a day and 100 steps later
    truth = 50 + 20 * np.sin(2 * np.pi * np.arange(4 * DAY + 100, 4 * DAY + 112) / DAY)
    assert np.abs(model.forecast(12, levels=[]).mean - truth).mean() < 1.0


def test_the_guard_serves_naive_soon_after_the_model_stops_fitting():
    y = noisy_level(760, seed=1).to_numpy()
    inner = SeriesModel("arima", []).fit(y[:700])
    guard = GuardedModel(inner, h=12).start(y[:700])
    guard.update(y[700:])  # more of the same process: the mean-reverting model beats the last value
    assert not guard.fallback
    guard.update(np.full(4, 500.0))  # the level moves far away: the mean the model reverts to is gone
    assert guard.fallback
    fc = guard.forecast()
    np.testing.assert_allclose(fc.mean, 500.0)
    assert (fc.lo[80] < 500).all() and (fc.hi[80] > 500).all()
    with pytest.raises(ValueError, match="unknown model"):
        SeriesModel("prophet", [])


def test_a_level_shift_trips_the_shock_rule_before_the_window_rule():
    rng = np.random.default_rng(2)
    y = 10 + rng.normal(0, 1, 760)  # white noise: the median (window 48) beats the last value by far

    def guard(**kw) -> GuardedModel:
        g = GuardedModel(SeriesModel("median", []).fit(y[:700]), h=12, **kw).start(y[:700])
        return g.update(y[700:])  # the model builds a lead over Naive

    fast, slow = guard(), guard(shock_ratio=1e12)  # slow: the window rule alone
    assert fast.model.model.window == 48 and not fast.fallback
    shifted = 16 + rng.normal(0, 1, 6)  # the level jumps by 6 sigma and stays; the median lags ~24 points
    fast.update(shifted[:2]), slow.update(shifted[:2])
    assert fast.fallback and not slow.fallback  # the model's lead still hides the shift from the window
    np.testing.assert_allclose(fast.forecast().mean, shifted[1])
    fast.update(shifted[2:]), slow.update(shifted[2:])
    assert fast.fallback


def test_the_median_model_wins_on_an_intermittent_series():
    rng = np.random.default_rng(4)
    n = 1200
    y = np.where(rng.random(n) < 0.1, rng.exponential(50, n), 0.0) + rng.normal(0, 0.2, n).clip(0)
    sel = select_model(y[:900], [], h=12)
    scores = sel.scores.set_index("model")["mae"]
    assert scores["median"] < scores["naive"] and scores["median"] < 0.6 * scores[["ets", "theta", "arima"]].min()
    assert sel.name == "median" or "median" in sel.members
    model = SeriesModel("median", []).fit(y[:900])
    assert model.model.window in (3, 6, 12, 24, 48)
    inside = []
    for o in range(900, n - 12, 12):  # the quantile intervals cover about their level out of sample
        fc = model.forecast(12, levels=[80])
        inside.append(((y[o : o + 12] >= fc.lo[80]) & (y[o : o + 12] <= fc.hi[80])).mean())
        model.update(y[o : o + 12])
    assert 0.7 <= np.mean(inside) <= 0.95
