"""Metric-aware detection: direction, the fixed bar, the leak test, the channels' count-aware tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.anomaly.channels import ChannelTests
from rhythm_pipelines.anomaly.detectors import Ensemble
from rhythm_pipelines.anomaly.evaluate import score_simulation
from rhythm_pipelines.anomaly.profiles import profile_for, score_series
from rhythm_pipelines.anomaly.series import detect, detect_streaming
from rhythm_pipelines.anomaly.threshold import FixedBar
from rhythm_pipelines.anomaly.trend import LeakTest
from rhythm_pipelines.simulate import SimConfig, simulate

MIN = pd.Timedelta("1min")
STAMPS = pd.date_range("2026-03-01", periods=3000, freq="min", tz="UTC")


def rhythmic(n: int = 3000, seed: int = 0) -> np.ndarray:
    """CPU-like: a daily rhythm plus autocorrelated noise."""
    rng = np.random.default_rng(seed)
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.8 * noise[i - 1] + rng.normal(0, 2.5)
    return 30 + 15 * np.sin(np.arange(n) * 2 * np.pi / 1440) + noise


@pytest.mark.parametrize("method", ["ensemble", "zscore", "iqr", "level_shift"])
def test_up_sees_a_rise_and_not_a_dip(method):
    x = np.random.default_rng(1).normal(50, 2, 3000)
    x[1500:1520] -= 40
    x[2500:2520] += 40
    up = np.flatnonzero(detect(x, method, STAMPS, "up")[1])
    both = np.flatnonzero(detect(x, method, STAMPS)[1])
    assert any(1500 <= i < 1520 + 120 for i in both)  # the dip is there to be seen...
    assert not any(1500 <= i < 1520 for i in up)  # ...but not by `up` (the way back up may be a jump)
    assert any(2500 <= i < 2520 + 120 for i in up)


def test_direction_and_spread_agree_between_batch_and_streaming():
    x = rhythmic(1500)
    x[900:930] += 40
    for direction in ("up", "down"):
        batch = detect(x, "zscore+jump+trend+iqr", STAMPS[:1500], direction)
        stream = detect_streaming(x, "zscore+jump+trend+iqr", STAMPS[:1500], direction)
        np.testing.assert_allclose(batch[0], stream[0], rtol=1e-9, atol=1e-12)
        assert (batch[1] == stream[1]).all()
    detector, bar = Ensemble(direction="up", spread="mad"), FixedBar()
    batch = bar.scores(*detector.deviations(x), detector.spans)
    stream = [bar.update(*detector.update(v), detector.spans)[0] for v in x]
    np.testing.assert_allclose(batch, stream, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="unknown direction"):
        Ensemble(direction="sideways")


def test_a_gauge_flags_every_recurring_spike_where_a_record_bar_goes_blind():
    x = rhythmic()
    spikes = [800, 1100, 1400, 2200]  # four CPU spikes within a day of each other
    for s in spikes:
        x[s : s + 20] += 35
    _, gauge = score_series(x, STAMPS, "db-01", "cpu_percent")
    hits = [any(gauge[s : s + 20]) for s in spikes]
    assert hits == [True] * 4
    outside = np.ones(len(x), dtype=bool)
    for s in spikes:
        outside[s : s + 25] = False
    assert not gauge[outside].any()
    _, generic = detect(x, "ensemble", STAMPS)
    assert sum(any(generic[s : s + 20]) for s in spikes) < 4  # the record bar misses a repeat


def test_the_leak_test_sees_a_steady_rise_not_a_daily_rhythm():
    stamps = pd.date_range("2026-03-01", periods=2880, freq="min", tz="UTC")
    rng = np.random.default_rng(3)
    mem = 45 + 4 * np.sin(np.arange(2880) * 2 * np.pi / 1440) + rng.normal(0, 0.4, 2880)
    assert (LeakTest().scores(mem, stamps) <= 1).all()  # the rhythm rises 1 point an hour at most
    leak = mem.copy()
    leak[1800:2100] += np.linspace(0, 25, 300)  # 5 points an hour for 5 hours
    scores = LeakTest().scores(leak, stamps)
    assert (scores[1800:2100] > 1).any() and not (scores[:1800] > 1).any()
    test = LeakTest()
    stream = [test.update(v, t) for v, t in zip(leak, stamps, strict=True)]
    np.testing.assert_allclose(scores, stream)
    _, flags = score_series(leak, stamps, "db-01", "mem_percent")
    assert flags[1800:2100].any() and not flags[2100:].any()  # the drop after the restart is no incident


def calls_frame(minutes: int = 600, per_min: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = minutes * per_min
    ts = STAMPS[0] + pd.to_timedelta(np.sort(rng.uniform(0, minutes * 60, n)), unit="s")
    status = np.where(rng.random(n) < 0.01, "error", "ok")
    return pd.DataFrame(
        {
            "ts": ts,
            "status": status,
            "latency_ms": 500 * np.exp(rng.normal(0, 0.35, n)),
            "cost_usd": 0.002 * np.exp(rng.normal(0, 0.6, n)),
        }
    )


@pytest.mark.parametrize(
    ("metric", "column", "change"),
    [("error_rate", "status", "error"), ("latency_ms_p95", "latency_ms", 3.0), ("cost_usd", "cost_usd", 5.0)],
)
def test_channel_tests_see_a_burst_on_few_calls_and_nothing_in_quiet_times(metric, column, change):
    calls = calls_frame()
    grid = pd.date_range(STAMPS[0], periods=600, freq="min")
    quiet = ChannelTests().scores(calls, grid, metric)
    assert (quiet <= 1).all()
    burst = (calls["ts"] >= grid[400]) & (calls["ts"] < grid[412])
    hit = calls.copy()
    if change == "error":
        hit.loc[burst & (np.arange(len(hit)) % 2 == 0), "status"] = "error"  # half the calls fail
    else:
        hit.loc[burst, column] *= change
    scores = ChannelTests().scores(hit, grid, metric)
    assert (scores[400:413] > 1).any()
    assert not (scores[:400] > 1).any()
    assert not (scores[430:] > 1).any()  # a window still holding the burst is no new alarm once it is over


def test_channel_tests_are_causal():
    calls = calls_frame()
    grid = pd.date_range(STAMPS[0], periods=600, freq="min")
    early = calls[calls["ts"] < grid[300]]
    for metric in ("error_rate", "latency_ms_p95", "cost_usd"):
        full = ChannelTests().scores(calls, grid[:300], metric)
        np.testing.assert_array_equal(full, ChannelTests().scores(early, grid[:300], metric))


def test_profiles_follow_the_metric_meaning():
    assert profile_for("gpt-4o@us-east-1", "error_rate", has_calls=True).kind == "channel"
    assert profile_for("gpt-4o@us-east-1", "error_rate").kind == "gauge"  # no calls at hand
    assert profile_for("db-01", "mem_percent").leak
    assert profile_for("db-01", "cpu_percent").direction == "up"
    assert profile_for("db-01", "net_recv_bytes_per_s").kind == "generic"
    assert profile_for("db-01", "net_recv_bytes_per_s").direction == "both"  # a traffic drop is news


def test_auto_on_the_simulator_meets_the_precision_and_recall_bar():
    sim = simulate(SimConfig(days=3.0, seed=21, start=pd.Timestamp("2026-03-02", tz="UTC")))
    rows, total = score_simulation(sim)
    assert total.precision >= 0.85 and total.recall >= 0.85, rows
    assert score_simulation(sim, "ensemble")[1].f1 < total.f1
