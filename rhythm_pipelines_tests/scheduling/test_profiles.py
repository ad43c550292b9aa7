"""The weekly load profile: per hour of the week, and the next hours expected from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.scheduling.profiles import expected_load, hour_of_week, load_profile, merge_profiles, pool

MONDAY = pd.Timestamp("2026-03-02 00:00", tz="UTC")


def points(days: int, seed: int = 0) -> pd.DataFrame:
    """CPU at 30 % plus 40 % from 14:00 to 15:00 every day, with noise; memory flat at 50 %."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(MONDAY, periods=days * 1440, freq="1min")
    cpu = 30 + 40 * (ts.hour == 14) + rng.normal(0, 2, len(ts))
    return pd.concat(
        [
            pd.DataFrame({"ts": ts, "source": "db-01", "metric": "cpu_percent", "value": cpu}),
            pd.DataFrame({"ts": ts, "source": "db-01", "metric": "mem_percent", "value": 50.0}),
        ],
        ignore_index=True,
    )


def test_hour_of_week_starts_monday_midnight_utc():
    got = hour_of_week(pd.DatetimeIndex([MONDAY, MONDAY + pd.Timedelta(hours=25), MONDAY - pd.Timedelta(hours=1)]))
    assert got.tolist() == [0, 25, 167]


def test_the_profile_sees_the_daily_peak_and_how_sure_it_is():
    prof = load_profile(points(7))
    cpu = prof[prof["metric"] == "cpu_percent"].set_index("how")
    assert len(cpu) == 168 and (cpu["count"] == 60).all()
    assert cpu.loc[14, "mean"] == pytest.approx(70, abs=1) and cpu.loc[13, "mean"] == pytest.approx(30, abs=1)
    assert cpu.loc[14, "p95"] > cpu.loc[14, "mean"] and cpu.loc[14, "std"] == pytest.approx(2, abs=0.5)


def test_pooling_many_days_equals_profiling_them_together():
    pts = points(7)
    days = pd.concat([load_profile(g).assign(ts=d) for d, g in pts.groupby(pts["ts"].dt.floor("D"))], ignore_index=True)
    whole = load_profile(pts).sort_values(["source", "metric", "how"]).reset_index(drop=True)
    pooled_days = pool(days).sort_values(["source", "metric", "how"]).reset_index(drop=True)
    pd.testing.assert_series_equal(pooled_days["count"], whole["count"])
    pd.testing.assert_series_equal(pooled_days["mean"], whole["mean"], rtol=1e-9)
    pd.testing.assert_series_equal(pooled_days["std"], whole["std"], rtol=1e-6)


def test_merging_two_weeks_equals_profiling_them_together():
    a, b = points(7, seed=1), points(7, seed=2).assign(ts=lambda f: f["ts"] + pd.Timedelta(days=7))
    merged = merge_profiles(load_profile(a), load_profile(b)).set_index(["source", "metric", "how"]).sort_index()
    whole = load_profile(pd.concat([a, b])).set_index(["source", "metric", "how"]).sort_index()
    pd.testing.assert_series_equal(merged["count"], whole["count"])
    pd.testing.assert_series_equal(merged["mean"], whole["mean"], rtol=1e-9)
    pd.testing.assert_series_equal(merged["std"], whole["std"], rtol=1e-9)


def test_expected_load_follows_the_week_and_falls_back_where_it_has_not_looked():
    prof = load_profile(points(7))
    start = MONDAY + pd.Timedelta(days=7, hours=12)  # the next Monday, noon
    got = expected_load(prof, ["db-01", "new-host"], start, pd.Timedelta(hours=4))["db-01"]
    at = got["cpu"]
    assert at[MONDAY + pd.Timedelta(days=7, hours=14)] == pytest.approx(72, abs=1.5)  # mean + 1 spread
    assert at[MONDAY + pd.Timedelta(days=7, hours=13)] == pytest.approx(32, abs=1.5)
    assert (got["mem"] == 50.0).all()
    mean_only = expected_load(prof, ["db-01"], start, pd.Timedelta(hours=4), upper=False)["db-01"]["cpu"]
    assert (mean_only <= at + 1e-9).all()
    monday_2pm = MONDAY + pd.Timedelta(days=7, hours=14)
    young = expected_load(prof[prof["how"] != 14], ["db-01"], start, pd.Timedelta(hours=4))["db-01"]["cpu"]
    assert young[monday_2pm] == pytest.approx(72, abs=1.5)  # a Monday 14:00 not seen yet: the other days' 14:00
    no_2pm = prof[prof["how"] % 24 != 14]
    unknown = expected_load(no_2pm, ["db-01"], start, pd.Timedelta(hours=4))["db-01"]["cpu"]
    cpu = no_2pm[(no_2pm["source"] == "db-01") & (no_2pm["metric"] == "cpu_percent")]
    overall = np.average(cpu["mean"], weights=cpu["count"])
    assert overall == pytest.approx(30, abs=1) and unknown[monday_2pm] == pytest.approx(overall)  # no 14:00 at all
    idle = expected_load(prof, ["new-host"], start, pd.Timedelta(hours=1))["new-host"]
    assert (idle.to_numpy() == 0).all()
