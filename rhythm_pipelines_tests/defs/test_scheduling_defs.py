"""The scheduling wiring over a real SQLite store and Dagster instance: load_profiles learns a day (and a job
that fails when its host is busy); the predictive_scheduler sensor launches due runs under their plan key,
never twice, holds low-priority runs while healing pauses, and raises a forecast_peak event once per peak."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.defs.demo import demo_planned_jobs
from rhythm_pipelines.defs.healing import CANCELED_BY_TAG
from rhythm_pipelines.defs.resources import HealingResource, SQLiteStoreResource
from rhythm_pipelines.defs.scheduling import PLAN_KEY_TAG, load_profiles, predictive_scheduler, schedule_plan
from rhythm_pipelines.healing import pause
from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines.scheduling.profiles import HOURS_OF_WEEK

DAY = pd.Timestamp("2026-03-03", tz="UTC")
JOBS = {j.name: j for j in demo_planned_jobs}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("RHYTHM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RHYTHM_HOST", "this-host")
    monkeypatch.setenv("RHYTHM_DEMO", "1")  # the demo's three jobs are the planned ones
    monkeypatch.delenv("RHYTHM_PLAYBOOKS", raising=False)
    return {
        "store": SQLiteStoreResource(path=str(tmp_path / "metrics.db")),
        "healing": HealingResource(state_dir=str(tmp_path / "healing")),
    }


def test_load_profiles_learns_the_day_and_a_job_that_fails_when_its_host_is_busy(env):
    ts = pd.date_range(DAY - pd.Timedelta(hours=1), DAY + pd.Timedelta(days=1), freq="min", inclusive="left")
    cpu = np.where((ts.hour >= 12) & (ts.hour < 17), 90.0, 30.0)
    points = pd.concat([
        pd.DataFrame({"ts": ts, "source": "this-host", "metric": "cpu_percent", "value": cpu}),
        pd.DataFrame({"ts": ts, "source": "this-host", "metric": "mem_percent", "value": 40.0}),
    ])  # fmt: skip
    starts = [DAY + pd.Timedelta(hours=h) for h in range(24)]
    busy = {13, 14, 15, 16, 17}  # the half hour before these starts is at 90 % CPU (12:00-17:00)
    runs = pd.DataFrame({
        "ts": starts, "run_id": [f"r{i}" for i in range(24)], "job": "health_check",
        "status": ["FAILURE" if t.hour in busy or t.hour == 3 else "SUCCESS" for t in starts],
        "start": starts, "end": [t + pd.Timedelta(minutes=2) for t in starts],
    })  # fmt: skip
    with SQLiteMetricsStore(env["store"].path) as s:
        s.write_metrics(points)
        s.write_table("runs", runs)
    for _ in range(2):  # re-running the day replaces its rows
        assert dg.materialize([load_profiles], partition_key="2026-03-03", resources=env).success
    with SQLiteMetricsStore(env["store"].path) as s:
        profile = s.read_table("load_profiles")
        jobs = s.read_table("job_profiles")
    cpu_rows = profile[(profile["source"] == "this-host") & (profile["metric"] == "cpu_percent")]
    assert len(cpu_rows) == 24 and cpu_rows["count"].eq(60).all()  # one row per hour of that Tuesday
    assert (
        cpu_rows.set_index("how").loc[24 + 14, "mean"] == 90.0 and cpu_rows.set_index("how").loc[24 + 3, "mean"] == 30.0
    )
    started = profile[profile["metric"] == "runs_started"]
    assert started["mean"].eq(1.0).all() and len(started) == 24
    (job,) = jobs.itertuples(index=False)
    assert (job.job, job.host, job.runs, job.successes) == ("health_check", "this-host", 24, 18)
    assert (job.runs_busy, job.fail_rate_busy) == (5, 1.0) and job.fail_rate_calm == pytest.approx(1 / 19)
    assert job.duration_p50_s == 120.0


def flat_profile(store: SQLiteStoreResource, cpu: dict[str, float], day: pd.Timestamp) -> None:
    rows = [
        {"ts": day, "source": host, "metric": metric, "how": h, "mean": level, "p95": level, "std": 0.0, "count": 10}
        for host, c in cpu.items()
        for metric, level in (("cpu_percent", c), ("mem_percent", 30.0))
        for h in range(HOURS_OF_WEEK)
    ]
    with SQLiteMetricsStore(store.path) as s:
        s.write_table("load_profiles", pd.DataFrame(rows))


def evaluate(instance, env, cursor=None) -> dg.SensorResult:
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=env)
    return predictive_scheduler(ctx)


def launch(instance, request: dg.RunRequest) -> None:
    """What the daemon does with a request: a run of its job, with its tags, in the instance."""
    instance.create_run_for_job(JOBS[request.job_name], tags=request.tags, status=dg.DagsterRunStatus.NOT_STARTED)


def ran_before(instance, job: str, every_h: int, minute: int = 0, periods: int = 2) -> pd.Timestamp:
    """A finished run of ``job`` ``periods`` cron periods ago: the scheduler has been planning it, so the cron
    times since are its to run (a job it never launched starts from now, with no backlog)."""
    now = pd.Timestamp.now(tz="UTC")
    last = now.floor("D") + pd.Timedelta(minutes=minute)
    while last + pd.Timedelta(hours=every_h) <= now:
        last += pd.Timedelta(hours=every_h)
    nominal = last - pd.Timedelta(hours=every_h * periods)
    key = f"{job}|{nominal.isoformat()}"
    instance.create_run_for_job(JOBS[job], tags={PLAN_KEY_TAG: key}, status=dg.DagsterRunStatus.SUCCESS)
    return nominal


def test_due_runs_are_launched_under_their_plan_key_once(env):
    today = pd.Timestamp.now(tz="UTC").floor("D")
    flat_profile(env["store"], {"web-01": 20.0, "db-01": 20.0}, today - pd.Timedelta(days=1))
    with dg.instance_for_test() as instance:
        ran_before(instance, "demo_report_batch", 2)
        ran_before(instance, "demo_reindex", 3, minute=30)
        first = evaluate(instance, env)
        by_job = {r.job_name: r for r in first.run_requests}
        assert {"demo_report_batch", "demo_reindex"} <= set(by_job)  # cron times since their last run: due now
        batch = by_job["demo_report_batch"]
        job, nominal = batch.run_key.split("|")
        assert job == "demo_report_batch" and batch.tags[PLAN_KEY_TAG] == batch.run_key
        assert pd.Timestamp(nominal).hour % 2 == 0 and pd.Timestamp(nominal) <= pd.Timestamp.now(tz="UTC")
        assert batch.tags["rhythm/host"] == "web-01" and json.loads(batch.tags["rhythm/planned_cost"])["cpu"] == 35.0
        (plan_event,) = first.asset_events
        assert plan_event.asset_key == dg.AssetKey("schedule_plan") and "plan" in plan_event.metadata
        for r in first.run_requests:
            if r.job_name in JOBS:
                launch(instance, r)
        again = evaluate(instance, env, first.cursor)
        assert not {r.run_key for r in again.run_requests} & {r.run_key for r in first.run_requests}


def test_low_priority_runs_wait_while_healing_pauses_low_priority_work(env):
    today = pd.Timestamp.now(tz="UTC").floor("D")
    flat_profile(env["store"], {"web-01": 20.0, "db-01": 20.0}, today - pd.Timedelta(days=1))
    pause.pause(env["healing"].paused_file, "db-01|cpu_spike|x", pd.Timestamp.now(tz="UTC"))
    with dg.instance_for_test() as instance:
        ran_before(instance, "demo_report_batch", 2)
        ran_before(instance, "demo_reindex", 3, minute=30)
        jobs = {r.job_name for r in evaluate(instance, env).run_requests}
    assert "demo_report_batch" in jobs and "demo_reindex" not in jobs  # normal goes on, low waits


def test_a_forecast_peak_raises_one_healing_event_before_it(env):
    today = pd.Timestamp.now(tz="UTC").floor("D")
    flat_profile(env["store"], {"web-01": 92.0, "db-01": 20.0}, today - pd.Timedelta(days=1))
    with dg.instance_for_test() as instance:
        first = evaluate(instance, env)
        (heal,) = [r for r in first.run_requests if r.job_name == "healing_job"]
        assert heal.run_key.startswith("preempt|web-01|forecast_peak|")
        event = heal.run_config["ops"]["heal_event"]["config"]["event"]
        assert (event["kind"], event["source"], event["metric"]) == ("forecast_peak", "web-01", "cpu_percent")
        assert json.loads(event["detail_json"])["bar"] == 80.0
        second = evaluate(instance, env, first.cursor)
        assert not [r for r in second.run_requests if r.job_name == "healing_job"]  # the same peak: raised once


def test_schedule_plan_materializes_the_plan_with_its_gantt(env):
    today = pd.Timestamp.now(tz="UTC").floor("D")
    flat_profile(env["store"], {"web-01": 60.0, "db-01": 20.0}, today - pd.Timedelta(days=1))
    result = dg.materialize([schedule_plan], resources=env)
    meta = result.asset_materializations_for_node("schedule_plan")[0].metadata
    assert meta["planned_runs"].value > 0 and meta["plan"].value.startswith("![the next 24 h")
    # 60 % + the report's 35 % is over the 80 % target at any hour: every report run says why it is where it is
    assert "no start before its deadline keeps web-01 under target" in meta["placements"].value


def test_a_run_healings_pause_canceled_is_planned_again_under_a_new_run_key(env):
    today = pd.Timestamp.now(tz="UTC").floor("D")
    flat_profile(env["store"], {"web-01": 20.0, "db-01": 20.0}, today - pd.Timedelta(days=1))
    with dg.instance_for_test() as instance:
        ran_before(instance, "demo_reindex", 3, minute=30)
        (first,) = [r for r in evaluate(instance, env).run_requests if r.job_name == "demo_reindex"][:1]
        canceled = {**first.tags, CANCELED_BY_TAG: "db-01|forecast_peak|x"}
        instance.create_run_for_job(JOBS["demo_reindex"], tags=canceled, status=dg.DagsterRunStatus.CANCELED)
        again = [r for r in evaluate(instance, env).run_requests if r.tags[PLAN_KEY_TAG] == first.run_key]
        assert [r.run_key for r in again] == [f"{first.run_key}|after-cancel-1"]
        instance.create_run_for_job(JOBS["demo_reindex"], tags={**first.tags, PLAN_KEY_TAG: first.run_key},
                                    status=dg.DagsterRunStatus.CANCELED)  # canceled by someone: final  # fmt: skip
        assert not [r for r in evaluate(instance, env).run_requests if r.tags[PLAN_KEY_TAG] == first.run_key]
