"""The plan in force over a real SQLite store: the seed's 14:00 example from stored profiles and tags, the
breaches raised 15 minutes ahead (a host's peak, a channel's usual slow hour) and their ends, and the
recent measurements moving the forecast."""

from __future__ import annotations

import pandas as pd

from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines.scheduling.live import plan_now
from rhythm_pipelines.scheduling.planner import Targets
from rhythm_pipelines.scheduling.profiles import HOURS_OF_WEEK
from rhythm_pipelines.scheduling.tags import parse_tags

MONDAY = pd.Timestamp("2026-03-09", tz="UTC")


def store_with(tmp_path, cpu_at_14: float = 85.0, latency_at_14: float = 3000.0) -> SQLiteMetricsStore:
    """Last week's profile: web-01 at 40 % CPU, 85 % on Mondays 14:00-15:00; a channel at 900 ms p95, 3 s then."""
    rows = []
    for h in range(HOURS_OF_WEEK):
        cpu = cpu_at_14 if h == 14 else 40.0
        lat = latency_at_14 if h == 14 else 900.0
        rows += [
            {"source": "web-01", "metric": "cpu_percent", "how": h, "mean": cpu, "p95": cpu, "std": 0.0, "count": 60},
            {"source": "web-01", "metric": "mem_percent", "how": h, "mean": 30.0, "p95": 30.0, "std": 0.0, "count": 60},
            {"source": "gpt@eu", "metric": "latency_ms", "how": h, "mean": lat, "p95": lat, "std": 1.0, "count": 40},
        ]  # fmt: skip
    s = SQLiteMetricsStore(tmp_path / "m.db")
    s.write_table("load_profiles", pd.DataFrame(rows).assign(ts=MONDAY - pd.Timedelta(days=7)))
    return s


JOBS = [
    parse_tags("heavy_a", {"rhythm/cron": "30 13 * * 1", "rhythm/deadline": "within 4h",
                           "rhythm/cost": "cpu=30,duration=45m", "rhythm/host": "web-01"}),
    parse_tags("heavy_b", {"rhythm/cron": "0 14 * * 1", "rhythm/deadline": "within 4h", "rhythm/priority": "low",
                           "rhythm/cost": "cpu=30,duration=45m", "rhythm/host": "web-01"}),
    parse_tags("monitoring", {"rhythm/cron": "0 14 * * 1", "rhythm/priority": "high",
                              "rhythm/cost": "cpu=2,duration=5m", "rhythm/host": "web-01"}),
]  # fmt: skip


def test_the_seeds_example_comes_out_of_stored_profiles_and_tags(tmp_path):
    with store_with(tmp_path) as s:
        # launched before: the scheduler has been planning these jobs (their Monday times are theirs to run)
        launched = {"heavy_a|2026-03-02T13:30:00+00:00", "heavy_b|2026-03-02T14:00:00+00:00"}
        p = plan_now(s, JOBS, launched, [], MONDAY + pd.Timedelta(hours=11), "this-host")
    at = {pl.run.job: pl for pl in p.plan.placements}
    assert at["heavy_a"].end <= MONDAY + pd.Timedelta(hours=13, minutes=50)  # heavy work done before the peak
    assert at["monitoring"].start == MONDAY + pd.Timedelta(hours=14)  # only light monitoring at 14:00
    assert at["heavy_b"].start >= MONDAY + pd.Timedelta(hours=15)  # and the rest catches up after 15:00
    assert "moved" in at["heavy_a"].reason and "would reach" in at["heavy_b"].reason
    assert p.profile_days == 1 and p.costs["heavy_a"].source == {"cpu": "tag", "mem": "default", "duration": "tag"}


def test_breaches_are_raised_fifteen_minutes_ahead_and_last_while_the_forecast_stays_over(tmp_path):
    with store_with(tmp_path) as s:
        early = plan_now(s, [], set(), [], MONDAY + pd.Timedelta(hours=13, minutes=30), "web-01", slo_ms=2000.0)
        soon = plan_now(s, [], set(), [], MONDAY + pd.Timedelta(hours=13, minutes=50), "web-01", slo_ms=2000.0)
    assert early.breaches == []  # 30 min ahead: not yet
    by = {b.kind: b for b in soon.breaches}
    peak, slo = by["forecast_peak"], by["forecast_slo"]
    assert (peak.source, peak.start, peak.until) == (
        "web-01",
        MONDAY + pd.Timedelta(hours=14),
        MONDAY + pd.Timedelta(hours=15),
    )
    assert peak.metric == "cpu_percent" and peak.value == 85.0 and peak.bar == Targets().cpu
    assert (slo.source, slo.start, slo.until) == (
        "gpt@eu",
        MONDAY + pd.Timedelta(hours=14),
        MONDAY + pd.Timedelta(hours=15),
    )
    assert slo.value == 3000.0 and slo.bar == 2000.0


def test_the_last_quarter_hour_moves_the_forecast(tmp_path):
    now = MONDAY + pd.Timedelta(hours=10)
    with store_with(tmp_path) as s:
        calm = plan_now(s, [], set(), [], now, "web-01")
        ts = pd.date_range(now - pd.Timedelta(minutes=15), now, freq="min", inclusive="left")
        s.write_metrics(pd.DataFrame({"ts": ts, "source": "web-01", "metric": "cpu_percent", "value": 70.0}))
        hot = plan_now(s, [], set(), [], now, "web-01")
    base, moved = calm.plan.baseline["web-01"]["cpu"], hot.plan.baseline["web-01"]["cpu"]
    assert base.iloc[0] == 40.0 and moved.iloc[0] > 65.0  # 30 points hotter than usual right now...
    assert moved.iloc[-1] - base.iloc[-1] < 0.1  # ...fading over the next hours


def test_what_planned_runs_measurably_add_is_not_counted_twice(tmp_path):
    from rhythm_pipelines.scheduling.learn import job_profile, without_runs
    from rhythm_pipelines.scheduling.planner import Run

    ts = pd.date_range(MONDAY, MONDAY + pd.Timedelta(hours=3), freq="min", inclusive="left")
    during = (ts >= MONDAY + pd.Timedelta(hours=1)) & (ts < MONDAY + pd.Timedelta(hours=2))
    points = pd.DataFrame({"ts": ts, "source": "web-01", "metric": "cpu_percent", "value": 30.0 + 25.0 * during})
    one, two = MONDAY + pd.Timedelta(hours=1), MONDAY + pd.Timedelta(hours=2)
    runs = pd.DataFrame({"job": ["report"], "host": ["web-01"], "status": ["SUCCESS"], "start": [one], "end": [two]})
    jobs = job_profile(runs, points)
    assert jobs.loc[0, "cpu_added"] == 25.0  # the run's footprint, measured
    assert (without_runs(points, runs, jobs)["value"] == 30.0).all()  # the rhythm without it
    now = MONDAY + pd.Timedelta(hours=10)
    with store_with(tmp_path) as s:
        s.write_table("job_profiles", jobs.assign(ts=MONDAY - pd.Timedelta(days=1)))
        recent = pd.date_range(now - pd.Timedelta(minutes=15), now, freq="min", inclusive="left")
        s.write_metrics(pd.DataFrame({"ts": recent, "source": "web-01", "metric": "cpu_percent", "value": 65.0}))
        job = parse_tags("report", {"rhythm/cron": "0 9 * * *", "rhythm/host": "web-01", "rhythm/cost": "cpu=25"})
        going = Run("report", "web-01", now - pd.Timedelta(hours=1), pd.Timedelta(hours=2), cpu=25.0)
        p = plan_now(s, [job], {going.key}, [(going, now - pd.Timedelta(hours=1))], now, "web-01")
    base, load = p.plan.baseline["web-01"]["cpu"], p.plan.load["web-01"]["cpu"]
    assert base.iloc[0] == 40.0  # 65 measured = 40 usual + the report's 25: the rhythm is as usual
    assert load.iloc[0] == 65.0  # and the report counts once, as the run in progress


def test_a_host_with_no_rhythm_learned_raises_no_forecast_peak(tmp_path):
    now = MONDAY + pd.Timedelta(hours=10)
    with store_with(tmp_path) as s:
        recent = pd.date_range(now - pd.Timedelta(minutes=15), now, freq="min", inclusive="left")
        s.write_metrics(pd.DataFrame({"ts": recent, "source": "new-vm", "metric": "cpu_percent", "value": 95.0}))
        p = plan_now(s, [], set(), [], now, "new-vm")
    cpu = p.plan.baseline["new-vm"]["cpu"]
    assert cpu.iloc[0] == 95.0 and cpu.iloc[-1] < 1.0  # busy now, unknown later: no 24 h plateau
    assert p.breaches == []  # an overload now is healing's cpu_spike, not a forecast peak
