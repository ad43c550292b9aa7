"""Detectors and the threshold on crafted series: what they flag, causality, batch = streaming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.anomaly.detectors import DETECTORS, Ensemble, make_detector
from rhythm_pipelines.anomaly.rolling import RunningMean, TrailingWindow, trailing_quantile
from rhythm_pipelines.anomaly.series import detect, detect_streaming
from rhythm_pipelines.anomaly.threshold import RecordThreshold
from rhythm_pipelines.anomaly.trend import mann_kendall

NOISE = np.random.default_rng(42).normal(50, 2, 3000)  # drawn once, at import: the same for every test
STAMPS = pd.date_range("2026-03-01", periods=6000, freq="5min", tz="UTC")
FAST = sorted(set(DETECTORS) - {"iforest"})  # the forest is tested on its own, it is slow to refit


def flagged(method, values):
    return np.flatnonzero(detect(values, method, STAMPS[: len(values)])[1]).tolist()


@pytest.mark.parametrize("method", ["ensemble", "zscore", "iqr", "jump"])
def test_a_spike_is_flagged_at_the_spike_and_nowhere_else(method):
    x = NOISE.copy()
    x[2000] += 40
    assert flagged(method, x) == [2000]


@pytest.mark.parametrize("method", ["ensemble", "zscore", "iqr", "jump", "level_shift"])
def test_a_level_shift_is_flagged_where_it_starts(method):
    x = NOISE.copy()
    x[2000:] += 25
    found = flagged(method, x)
    assert found and 2000 <= found[0] <= 2012


def test_level_shift_sees_a_small_sustained_shift_that_no_point_reveals():
    x = NOISE.copy()
    x[2000:] += 5  # 2.5 sigma: no single point is unusual
    assert flagged("zscore", x) == []
    found = flagged("level_shift", x)
    assert len(found) == 1 and 2000 <= found[0] <= 2012


def test_level_shift_ignores_a_lone_spike():
    x = NOISE.copy()
    x[2000] += 20
    assert flagged("level_shift", x) == []


def test_a_slow_leak_is_found_by_the_trend_test_and_mann_kendall():
    x = NOISE.copy()
    x[2000:2400] += np.linspace(0, 40, 400)  # rises 0.1 per step, then stays
    x[2400:] += 40
    found = flagged("trend", x)
    assert found and 2000 <= found[0] <= 2200
    mk = mann_kendall(x[2100:2300])
    assert mk.increasing and mk.p_value < 1e-6 and mk.slope == pytest.approx(0.1, rel=0.2)
    flat = mann_kendall(NOISE[:200])
    assert flat.p_value > 0.01 and abs(flat.slope) < 0.02


@pytest.mark.parametrize("method", ["ensemble", "zscore", "iqr", "jump", "level_shift", "seasonal", "trend"])
def test_a_seasonal_series_without_anomaly_raises_nothing(method):
    t = np.arange(6 * 288)  # six days of 5-minute points
    x = 50 + 20 * np.sin(2 * np.pi * t / 288) + np.random.default_rng(7).normal(0, 1, len(t))
    assert flagged(method, x) == []


def test_the_seasonal_detector_sees_a_value_unusual_for_its_hour():
    t = np.arange(8 * 288)
    x = 50 + 20 * np.sin(2 * np.pi * t / 288) + np.random.default_rng(7).normal(0, 1, len(t))
    i = 7 * 288 + 72  # the daily peak (70) ...
    x[i : i + 6] = 30  # ... reads like the trough for half an hour: normal values, wrong hour
    found = flagged("seasonal", x)
    assert found and i <= found[0] <= i + 5
    assert not any(i - 200 < j < i for j in flagged("zscore", x))


def test_the_seasonal_detector_needs_timestamps():
    with pytest.raises(ValueError, match="timestamps"):
        make_detector("seasonal").deviations(NOISE)


def test_the_isolation_forest_sees_an_odd_shape_and_batch_equals_streaming():
    x = NOISE[:1600].copy()
    x[1300:1306] += [15, -15, 15, -15, 15, -15]  # a burst of oscillation: an odd shape
    det = make_detector("iforest")
    batch_dev, batch_z = det.deviations(x)
    live = make_detector("iforest")
    stream = np.array([live.update(v)[1][0] for v in x])
    np.testing.assert_allclose(stream, batch_z[0], rtol=1e-9, atol=1e-12)
    scores = RecordThreshold().scores(batch_dev, batch_z)
    assert 1300 <= int(np.argmax(scores)) <= 1306 and scores.max() > 1


@pytest.mark.parametrize("method", FAST)
def test_future_points_never_change_past_verdicts(method):
    x = NOISE.copy()
    x[1500] += 30
    x[2500:] -= 20
    full_scores, full_flags = detect(x, method, STAMPS[:3000])
    for k in (300, 1501, 2200, 2600):
        part_scores, part_flags = detect(x[:k], method, STAMPS[:k])
        np.testing.assert_array_equal(part_scores, full_scores[:k])
        np.testing.assert_array_equal(part_flags, full_flags[:k])


@pytest.mark.parametrize("method", [*FAST, "zscore+iqr+seasonal+trend"])
def test_streaming_gives_the_batch_answers(method):
    x = NOISE.copy()
    x[[700, 1800]] += [25, -30]
    x[2500:] += 15
    batch_scores, batch_flags = detect(x, method, STAMPS[:3000])
    stream_scores, stream_flags = detect_streaming(x, method, STAMPS[:3000])
    np.testing.assert_allclose(stream_scores, batch_scores, rtol=1e-9, atol=1e-12)
    assert stream_flags.tolist() == batch_flags.tolist()
    assert batch_flags.any()


@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("n", [0, 1, 11, 12, 20, 21, 45])
def test_short_series_batch_equals_streaming(method, n):
    x = NOISE[:n].copy()
    dev_b, z_b = make_detector(method).deviations(x, STAMPS[:n])
    live = make_detector(method)
    pairs = [live.update(v, t) for v, t in zip(x, STAMPS[:n], strict=True)]
    dev_s = np.array([p[0] for p in pairs]).T.reshape(dev_b.shape)
    z_s = np.array([p[1] for p in pairs]).T.reshape(z_b.shape)
    np.testing.assert_allclose(dev_s, dev_b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(z_s, z_b, rtol=1e-9, atol=1e-12)


def test_trailing_window_and_running_mean_match_numpy():
    w, m = TrailingWindow(5), RunningMean(5)
    seen = []
    for v in [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, np.nan, 6.0]:
        w.push(v)
        m.push(v)
        seen.append(v)
        last = [u for u in seen[-5:] if not np.isnan(u)]
        assert w.median() == np.median(last)
        assert w.quantile(0.25) == pytest.approx(np.quantile(last, 0.25), abs=0)
        assert m.mean() == pytest.approx(np.mean(last), rel=1e-12)
    assert len(w) == 4 and m.count == 4


@pytest.mark.parametrize("window,q", [(1000, 0.25), (1000, 0.75), (7, 0.5), (10_000, 0.9)])
def test_fast_trailing_quantile_equals_pandas(window, q):
    x = np.random.default_rng(7).normal(size=3000)
    w, least = min(window, 3000), min(window, 20)
    expected = pd.Series(x).rolling(w, min_periods=least).quantile(q).to_numpy()
    np.testing.assert_array_equal(trailing_quantile(x, window, q, least), expected)


def test_threshold_needs_a_record_that_fades_with_time_and_a_large_z():
    dev = np.zeros(1000)
    dev[[200, 210, 400, 600, 700]] = [10.0, 20.0, 5.0, 12.0, 30.0]
    z = np.full(1000, 10.0)
    z[700] = 3.0  # a record, but within 3 robust spreads: not an anomaly
    hourly = pd.date_range("2026-03-01", periods=1000, freq="h", tz="UTC")
    th = RecordThreshold(half_life_days=4, factor=1.1, zmin=6, refractory=5, warmup=100)
    # 200: the first record; 210 beats 1.1 x 10 (faded by 10 h); 400 (5) does not beat 1.1 x 20 faded by 190 h
    # (5.6); by 600 the 20 has faded to 1.2: 12 is a record again
    scores = th.scores(dev, z, timestamps=hourly)
    assert np.flatnonzero(th.flags(scores)).tolist() == [200, 210, 600]
    assert scores[210] == pytest.approx(min(20 / (11 * 2 ** (-10 / 96)), 10 / 6)) and scores[700] == pytest.approx(0.5)
    assert scores[400] == pytest.approx(5 / (1.1 * 20 * 2 ** (-190 / 96)))
    never = RecordThreshold(half_life_days=np.inf, factor=1.1, zmin=6, refractory=5, warmup=100)
    assert np.flatnonzero(never.flags(never.scores(dev, z, timestamps=hourly))).tolist() == [200, 210]
    # the same hours as sample counts: without timestamps a point is a minute, so nothing fades in 1000 points
    assert np.flatnonzero(th.flags(th.scores(dev, z))).tolist() == [200, 210]
    live = RecordThreshold(half_life_days=4, factor=1.1, zmin=6, refractory=5, warmup=100)
    stream = [live.update(dev[i : i + 1], z[i : i + 1], None, hourly[i]) for i in range(1000)]
    np.testing.assert_allclose([s for s, _ in stream], scores, rtol=1e-12)
    assert [i for i, (_, f) in enumerate(stream) if f] == [200, 210, 600]
    with pytest.raises(ValueError, match="half_life_days"):
        RecordThreshold(half_life_days=0)


def test_ensemble_flags_what_any_member_flags():
    x = NOISE.copy()
    x[500] += 40  # a spike: the z-score's
    x[2200:] += 5  # a small sustained shift: the level shift's
    dev, z = Ensemble().deviations(x)
    assert dev.shape == (5, 3000) and not dev[4].any()  # no timestamps: the seasonal member is silent
    found = flagged("ensemble", x)
    assert found[0] == 500 and any(2200 <= i <= 2212 for i in found)
    with pytest.raises(ValueError, match="unknown ensemble members"):
        Ensemble(members=("zscore", "nope"))


def _daily(days: int, noise: float = 1.0, seed: int = 7) -> tuple[np.ndarray, pd.DatetimeIndex]:
    t = np.arange(days * 288)  # 5-minute points
    x = 50 + 20 * np.sin(2 * np.pi * t / 288) + np.random.default_rng(seed).normal(0, noise, len(t))
    return x, pd.date_range("2026-03-01", periods=len(t), freq="5min", tz="UTC")


def test_rhythm_strength_tells_a_daily_rhythm_from_a_trend_and_from_noise():
    from rhythm_pipelines.anomaly.rhythm import RhythmMeter
    from rhythm_pipelines.anomaly.seasonal import SeasonalProfile

    x, ts = _daily(6)
    rng = np.random.default_rng(3)
    trend = np.linspace(0, 100, len(x)) + rng.normal(0, 1, len(x))
    noise = rng.normal(0, 1, len(x))
    meter = SeasonalProfile()
    sine, rising, flat, constant = (meter.rhythm(v, ts) for v in (x, trend, noise, np.full(len(x), 7.0)))
    assert (sine[: 288 + 48] == 0).all()  # no day of pairs yet: no rhythm known
    assert sine[3 * 288 :].min() > 1.8  # correlated with yesterday, against half a day ago
    assert np.abs(rising[3 * 288 :]).max() < 0.2 and np.abs(flat[3 * 288 :]).max() < 0.2
    assert not constant.any()  # a flat series has no rhythm (not a rounding error's correlation)
    for values, batch in ((x, sine), (trend, rising)):
        live = SeasonalProfile()
        live.reset()
        stream = []
        for v, t in zip(values, ts, strict=True):
            live.update(float(v), t)
            stream.append(live._meter.value)
        np.testing.assert_allclose(stream, batch, rtol=1e-9, atol=1e-12)
    assert RhythmMeter(10**9).push(0, 1.0, np.nan, np.nan) == 0.0


def test_no_rhythm_is_claimed_without_the_half_day_pairs():
    from rhythm_pipelines.anomaly.seasonal import SeasonalProfile

    x, ts = _daily(8)
    night = np.asarray(ts.hour < 6)  # samples only from 00:00 to 06:00: no point has one half a day back
    assert not SeasonalProfile().rhythm(x[night], ts[night]).any()


def test_the_ensemble_sees_an_hour_gone_wrong_only_where_the_series_has_a_rhythm():
    x, ts = _daily(8)
    i = 7 * 288 + 72  # the daily peak (70) ...
    x[i : i + 6] = 30  # ... reads like the trough for half an hour: normal values, wrong hour
    found = np.flatnonzero(detect(x, "ensemble", ts)[1]).tolist()
    assert found and i <= found[0] <= i + 5
    assert np.flatnonzero(detect(x, "zscore+level_shift+jump+trend", ts)[1]).tolist() == []  # no member but it
    scores, flags = detect_streaming(x, "ensemble", ts)
    batch_scores, batch_flags = detect(x, "ensemble", ts)
    np.testing.assert_allclose(scores, batch_scores, rtol=1e-9, atol=1e-12)
    assert flags.tolist() == batch_flags.tolist()
    # the same half hour on a series with no rhythm (its values shuffled): the seasonal member stays silent
    shuffled = np.random.default_rng(1).permutation(x)
    dev, _ = Ensemble().deviations(shuffled, ts)
    assert not dev[4].any()
