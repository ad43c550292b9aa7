"""Detectors and the threshold on crafted series: what they flag, causality, batch = streaming."""

from __future__ import annotations

import numpy as np
import pytest

from rhythm_pipelines.anomaly.detectors import DETECTORS, Ensemble, IQRFence, LevelShift, RobustZScore
from rhythm_pipelines.anomaly.rolling import TrailingWindow
from rhythm_pipelines.anomaly.threshold import TrailingMaxThreshold

RNG = np.random.default_rng(42)
NOISE = RNG.normal(50, 2, 3000)


def flags_of(detector, values):
    return TrailingMaxThreshold().flags(detector.score_samples(values))


@pytest.mark.parametrize("detector", [RobustZScore(), IQRFence()], ids=lambda d: d.name)
def test_a_spike_is_flagged_at_the_spike(detector):
    x = NOISE.copy()
    x[2000] += 40
    flags = flags_of(detector, x)
    assert flags[2000] and np.flatnonzero(flags).tolist() == [2000]


@pytest.mark.parametrize("detector", [RobustZScore(), IQRFence()], ids=lambda d: d.name)
def test_a_level_shift_is_flagged_where_it_starts(detector):
    x = NOISE.copy()
    x[2000:] += 25
    flagged = np.flatnonzero(flags_of(detector, x))
    assert len(flagged) >= 1 and 2000 <= flagged[0] <= 2005


@pytest.mark.parametrize("detector", [RobustZScore(), IQRFence()], ids=lambda d: d.name)
def test_a_seasonal_series_without_anomaly_raises_nothing(detector):
    t = np.arange(6 * 288)  # six days of 5-minute points
    x = 50 + 20 * np.sin(2 * np.pi * t / 288) + RNG.normal(0, 1, len(t))
    assert not flags_of(detector, x).any()


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_future_points_never_change_past_verdicts(name):
    x = NOISE.copy()
    x[1500] += 30
    x[2500:] -= 20
    full_scores = DETECTORS[name]().score_samples(x)
    full_flags = TrailingMaxThreshold().flags(full_scores)
    for k in (300, 1501, 2200, 2600):
        part = DETECTORS[name]().score_samples(x[:k])
        np.testing.assert_array_equal(part, full_scores[:k])
        np.testing.assert_array_equal(TrailingMaxThreshold().flags(part), full_flags[:k])


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_streaming_gives_the_batch_answers(name):
    x = NOISE.copy()
    x[[700, 1800]] += [25, -30]
    x[2500:] += 15
    batch_det, stream_det = DETECTORS[name](window=200), DETECTORS[name](window=200)
    batch = batch_det.score_samples(x)
    stream = np.array([stream_det.update(v) for v in x])
    np.testing.assert_allclose(stream, batch, rtol=1e-9, atol=1e-12)
    th = TrailingMaxThreshold(memory=300)
    batch_flags = th.flags(batch)
    th.reset()
    assert [th.update(s) for s in stream] == batch_flags.tolist()
    assert batch_flags.any()


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("n", [0, 1, 15, 20, 21, 45])
def test_short_series_batch_equals_streaming(name, n):
    x = NOISE[:n].copy()
    if n > 42:  # the z-score needs min_periods values for the median, then min_periods deviations
        x[42] += 50
    stream_det = DETECTORS[name]()
    batch = DETECTORS[name]().score_samples(x)
    np.testing.assert_allclose([stream_det.update(v) for v in x], batch, rtol=1e-9, atol=1e-12)
    if n > 42 and name in ("zscore", "iqr"):  # point detectors see a lone spike
        assert batch[42] > 10


def test_trailing_window_median_and_quantiles_match_numpy():
    w = TrailingWindow(5)
    seen = []
    for v in [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, np.nan, 6.0]:
        w.push(v)
        seen.append(v)
        last = [u for u in seen[-5:] if not np.isnan(u)]
        assert w.median() == np.median(last)
        assert w.quantile(0.25) == pytest.approx(np.quantile(last, 0.25), abs=0)
    assert len(w) == 4


def test_threshold_is_relative_to_the_series_own_record():
    scores = np.zeros(1000)
    scores[[200, 210, 400, 600]] = [10.0, 20.0, 10.0, 12.0]
    th = TrailingMaxThreshold(memory=300, factor=1.15, floor=5.0, refractory=5, warmup=100)
    # 200 beats the floor; 210 beats 1.15 x 10; 400 is under 1.15 x 20 (210 is within the memory);
    # 600 beats the floor again once 210 has left the memory and 400's 10 x 1.15 < 12
    assert np.flatnonzero(th.flags(scores)).tolist() == [200, 210, 600]


def test_level_shift_sees_a_small_sustained_shift_soon_after_it_starts():
    x = NOISE.copy()
    x[2000:] += 5  # 2.5 sigma
    flagged = np.flatnonzero(flags_of(LevelShift(), x))
    assert len(flagged) == 1 and 2000 <= flagged[0] <= 2012


def test_level_shift_ignores_a_lone_spike():
    x = NOISE.copy()
    x[2000] += 20
    assert not flags_of(LevelShift(), x).any()


def test_ensemble_takes_the_strongest_member_score():
    x = NOISE.copy()
    x[500] += 40  # a spike: the z-score's
    x[2200:] += 5  # a small sustained shift, after the spike has left the threshold's memory: the level shift's
    scores = Ensemble().score_samples(x)
    np.testing.assert_array_equal(scores, np.maximum(RobustZScore().score_samples(x), LevelShift().score_samples(x)))
    flagged = np.flatnonzero(TrailingMaxThreshold().flags(scores))
    assert flagged[0] == 500 and any(2200 <= i <= 2212 for i in flagged)
