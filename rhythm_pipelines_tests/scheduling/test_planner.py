"""The predictive planner on hand-made forecasts: the seed's 14:00 example, deadlines, priority, re-planning."""

from __future__ import annotations

import pandas as pd
import pytest

from rhythm_pipelines.scheduling.planner import SLOT, Run, Targets, plan

DAY = pd.Timestamp("2026-03-03 00:00", tz="UTC")
H = pd.Timedelta(hours=1)


def forecast(base: float = 45.0, peaks: dict[int, float] | None = None, mem: float = 40.0) -> pd.DataFrame:
    """A day of predicted host load: ``base`` % CPU, ``peaks`` {hour: %}."""
    idx = pd.date_range(DAY, periods=24 * 12, freq=SLOT)
    cpu = pd.Series(base, index=idx)
    for hour, level in (peaks or {}).items():
        cpu[(idx >= DAY + hour * H) & (idx < DAY + (hour + 1) * H)] = level
    return pd.DataFrame({"cpu": cpu, "mem": mem})


def flat(start: pd.Timestamp, level: float) -> pd.DataFrame:
    """A day from ``start`` at ``level`` % CPU (memory 40 %)."""
    idx = pd.date_range(start, periods=24 * 12, freq=SLOT)
    return pd.DataFrame({"cpu": level, "mem": 40.0}, index=idx)


def at(p, job: str):
    (placement,) = [x for x in p.placements if x.run.job == job]
    return placement


def test_the_seeds_example_heavy_work_before_the_14_00_peak_monitoring_at_14_and_catch_up_after_15():
    base = {"db-01": forecast(45.0, {14: 72.0})}  # a peak forecast for 14:00-15:00
    runs = [
        Run(
            "heavy_batch",
            "db-01",
            DAY + 13 * H + pd.Timedelta(minutes=30),
            pd.Timedelta(minutes=50),
            cpu=30.0,
            deadline=DAY + 18 * H,
        ),  # fmt: skip
        Run("health_check", "db-01", DAY + 14 * H, pd.Timedelta(minutes=5), cpu=3.0, priority="high"),
        Run(
            "reindex",
            "db-01",
            DAY + 14 * H + pd.Timedelta(minutes=10),
            pd.Timedelta(minutes=40),
            cpu=25.0,
            priority="low",
            deadline=DAY + 20 * H,
        ),  # fmt: skip
    ]
    p = plan(base, runs, DAY + 8 * H, horizon=pd.Timedelta(hours=16))
    heavy, check, reindex = at(p, "heavy_batch"), at(p, "health_check"), at(p, "reindex")
    assert heavy.end <= DAY + 13 * H + pd.Timedelta(minutes=50) and not heavy.over_target
    assert "earlier" in heavy.reason and "db-01 would reach" in heavy.reason
    assert check.start == DAY + 14 * H  # light monitoring runs at its time, in the peak
    assert reindex.start >= DAY + 15 * H and not reindex.over_target and "later" in reindex.reason
    load = p.load["db-01"]["cpu"]
    assert load[(load.index >= DAY + 14 * H) & (load.index < DAY + 15 * H)].max() == pytest.approx(75.0)  # 72 + 3
    peaks = p.peaks()
    assert len(peaks) == 0  # 72 % is under the 80 % target: no peak above target to pre-empt here
    tight = plan(base, runs, DAY + 8 * H, horizon=pd.Timedelta(hours=16), targets=Targets(cpu=70.0))
    assert tight.peaks()["preempted"].all() and len(tight.peaks()) == 12  # the 14:00 hour, kept free


def test_high_priority_is_never_moved_even_into_an_overload():
    base = {"h": forecast(45.0, {10: 95.0})}
    p = plan(base, [Run("urgent", "h", DAY + 10 * H, pd.Timedelta(minutes=20), cpu=20.0, priority="high")], DAY)
    urgent = at(p, "urgent")
    assert urgent.start == DAY + 10 * H and urgent.over_target and urgent.reason.startswith("high priority")


def test_a_deadline_beats_the_load_target_and_an_impossible_one_says_so():
    base = {"h": forecast(70.0)}  # no slot has room for 30 % more
    runs = [
        Run("must", "h", DAY + 9 * H, pd.Timedelta(minutes=30), cpu=30.0, deadline=DAY + 10 * H),
        Run("late", "h", DAY + 9 * H, pd.Timedelta(hours=2), cpu=5.0, deadline=DAY + 10 * H),
    ]
    p = plan(base, runs, DAY + 9 * H)
    must = at(p, "must")
    assert must.end <= DAY + 10 * H and must.over_target and "least overloaded" in must.reason
    late = at(p, "late")
    assert late.start == DAY + 9 * H and "cannot be met" in late.reason


def test_earliest_deadline_first_and_normal_before_low_for_the_one_free_window():
    base = {"h": forecast(75.0, {12: 40.0})}  # only 12:00-13:00 has room for a 30 % run
    runs = [
        Run("low_job", "h", DAY + 12 * H, pd.Timedelta(minutes=60), cpu=30.0, priority="low"),
        Run("normal_job", "h", DAY + 12 * H, pd.Timedelta(minutes=60), cpu=30.0, priority="normal"),
    ]
    p = plan(base, runs, DAY + 11 * H, horizon=pd.Timedelta(hours=6))
    assert at(p, "normal_job").start == DAY + 12 * H and not at(p, "normal_job").over_target
    assert "no room left for it to overrun" in at(p, "normal_job").reason  # 13:00 is busy again
    assert at(p, "low_job").over_target  # the window went to the normal-priority run


def test_replanning_follows_the_forecast_and_keeps_each_runs_key():
    run = Run("batch", "h", DAY + 14 * H, pd.Timedelta(minutes=30), cpu=30.0, deadline=DAY + 22 * H)
    calm = plan({"h": forecast(45.0)}, [run], DAY + 12 * H)
    stormy = plan({"h": forecast(45.0, {14: 70.0, 15: 70.0})}, [run], DAY + 12 * H)
    assert at(calm, "batch").start == DAY + 14 * H
    moved = at(stormy, "batch")
    assert moved.start != DAY + 14 * H and not moved.over_target
    assert moved.start + moved.run.duration <= DAY + 14 * H or moved.start >= DAY + 16 * H
    assert calm.table()["run_key"].tolist() == stormy.table()["run_key"].tolist() == [run.key]
    assert [p.run.key for p in stormy.due(moved.start)] == [run.key] and stormy.due(moved.start - SLOT) == []


def test_memory_counts_too_and_idle_hosts_have_room():
    base = {"h": forecast(20.0, mem=70.0)}
    p = plan(base, [Run("memhog", "h", DAY + 9 * H, pd.Timedelta(minutes=10), cpu=5.0, mem=10.0)], DAY + 9 * H)
    assert at(p, "memhog").over_target  # 70 + 10 > 75 everywhere: the least overloaded start
    busy_mem = forecast(20.0, mem=60.0)
    busy_mem.loc[(busy_mem.index >= DAY + 9 * H) & (busy_mem.index < DAY + 10 * H), "mem"] = 70.0
    run = Run("memhog", "h", DAY + 9 * H, pd.Timedelta(minutes=10), cpu=5.0, mem=10.0)
    moved = at(plan({"h": busy_mem}, [run], DAY + 9 * H), "memhog")
    assert moved.start >= DAY + 10 * H and "would reach 80 % memory (target 75 %)" in moved.reason
    q = plan({}, [Run("anywhere", "new-host", DAY + 9 * H, pd.Timedelta(minutes=10), cpu=50.0)], DAY + 9 * H)
    assert at(q, "anywhere").start == DAY + 9 * H and not at(q, "anywhere").over_target


def test_runs_in_progress_count_from_now_even_when_they_overran_and_workers_are_a_limit():
    start = DAY + 10 * H
    base = {"h": flat(start, 30.0)}
    overran = Run("long", "h", start - pd.Timedelta(minutes=40), pd.Timedelta(minutes=10), cpu=40.0)
    late = Run("probe", "h", start - pd.Timedelta(minutes=20), pd.Timedelta(minutes=5), cpu=2.0, priority="high")
    p = plan(base, [late], start, running=[(overran, start - pd.Timedelta(minutes=40))])
    load = p.load["h"]["cpu"]
    assert load.iloc[0] == 72.0  # the overrun run holds now, and the late probe runs now
    assert (load.iloc[1:] == 30.0).all()  # and nothing after: no load spread over the day
    runs = [Run(f"r{i}", "h", start, pd.Timedelta(minutes=30), cpu=1.0, priority="low") for i in range(3)]
    limited = plan(base, runs, start, workers=3, reserve=1)  # two at once, one slot kept for the unplanned
    starts = sorted(pl.start for pl in limited.placements)
    assert starts[:2] == [start, start] and starts[2] >= start + pd.Timedelta(minutes=30)
    (third,) = [pl for pl in limited.placements if pl.start > start]
    assert "all its 2 worker slot(s) for deferrable work taken" in third.reason


def test_backlog_fills_where_it_fits_and_waits_where_nothing_does():
    start = DAY + 10 * H
    base = {"h": flat(start, 30.0)}
    base["h"].loc[base["h"].index < start + pd.Timedelta(hours=1), "cpu"] = 78.0  # busy for the first hour
    chunks = [Run(f"c{i}", "h", start, pd.Timedelta(minutes=30), cpu=20.0, priority="low") for i in range(4)]
    p = plan(base, [], start, fill=chunks, workers=4)
    starts = sorted(pl.start for pl in p.placements)  # after the busy hour, two at a time (30 + 2 x 20 <= 80)
    assert starts == [start + H] * 2 + [start + H + pd.Timedelta(minutes=30)] * 2
    full = plan({"h": flat(start, 79.0)}, [], start, fill=chunks[:1])
    assert full.placements == [] and full.unplaced == chunks[:1]  # never forced into an overload
