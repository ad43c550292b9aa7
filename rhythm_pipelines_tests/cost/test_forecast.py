"""Spend forecasts: the method is chosen from the history alone, the period forecasts add up, and the
walk-forward CLI keeps its contract."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.cost import catalog as catalogs
from rhythm_pipelines.cost.forecast import forecast_hours, hourly_spend, mape, period_forecasts, walk_forward
from rhythm_pipelines.simulate import SimConfig, simulate

MONDAY = pd.Timestamp("2026-03-02", tz="UTC")


def weekly_spend(weeks: int = 3) -> pd.Series:
    """$2/hour on weekdays, $1/hour at weekends, a little noise."""
    idx = pd.date_range(MONDAY, periods=weeks * 168, freq="h")
    rng = np.random.default_rng(0)
    return pd.Series(np.where(idx.dayofweek < 5, 2.0, 1.0) * rng.uniform(0.97, 1.03, len(idx)), index=idx)


def test_a_weekly_rhythm_is_learned_from_the_history_and_the_week_ahead_is_right():
    spend = weekly_spend()
    friday = MONDAY + pd.Timedelta(days=18)  # the third Friday: tomorrow is a weekend day
    fc = forecast_hours(spend[spend.index < friday + pd.Timedelta(days=1)], 24)
    assert fc.attrs["method"] == "last_week"  # the backtest week saw weekends: last day's rule fails on Saturday
    assert fc["mean"].sum() == pytest.approx(24.0, rel=0.05)
    assert (fc["lo_95"] <= fc["mean"]).all() and (fc["mean"] <= fc["hi_95"]).all()
    frame = walk_forward(spend)
    common = frame[frame["last_week"].notna()]
    got, rule = mape(common), mape(common, "last_day")
    assert got["daily"] < 0.05 and got["daily"] < rule["daily"]


def test_period_forecasts_add_what_was_spent_to_the_rest():
    spend = weekly_spend()
    now = MONDAY + pd.Timedelta(days=16, hours=10)  # a Wednesday, 10:00
    day, week, month = period_forecasts(spend, now)
    assert (day.period, week.period, month.period) == ("daily", "weekly", "monthly")
    assert day.spent == pytest.approx(spend[(spend.index >= now.floor("D")) & (spend.index < now)].sum())
    assert day.mean == pytest.approx(48.0, rel=0.05) and day.lo_80 <= day.mean <= day.hi_80 <= day.hi_95
    assert week.mean == pytest.approx(5 * 48 + 2 * 24, rel=0.05) and week.spent > day.spent


def test_the_cli_prints_the_walk_forward_mape_contract(tmp_path):
    sim = simulate(SimConfig(hosts=1, days=10, seed=3, start=MONDAY))
    path = sim.write(tmp_path)["calls"]
    res = subprocess.run([sys.executable, "-m", "rhythm_pipelines.cli", "cost", "forecast", "--calls", str(path),
                          "--json"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert 0 < report["daily_mape"] < 1 and 0 < report["weekly_mape"] < 1
    hourly = hourly_spend(sim.calls, catalogs.load())
    assert report["daily_mape"] == pytest.approx(mape(walk_forward(hourly))["daily"])
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(path.read_text().splitlines()[:500]) + "\n")
    bad = subprocess.run([sys.executable, "-m", "rhythm_pipelines.cli", "cost", "forecast", "--calls", str(short)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "needs 4 whole days" in bad.stderr
