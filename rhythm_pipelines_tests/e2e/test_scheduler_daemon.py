"""The predictive scheduler under a real dagster-daemon: the runs it plans are launched, and run, once each, also
when the daemon is stopped and started again between ticks."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import dagster as dg
import pandas as pd
import pytest

from rhythm_pipelines.chaos.runner import Daemon, Sandbox
from rhythm_pipelines.defs.demo import demo_planned_jobs
from rhythm_pipelines.defs.scheduling import PLAN_KEY_TAG

JOBS = {j.name: j for j in demo_planned_jobs}
TICK_S = 3


@dataclass
class PlanningSandbox(Sandbox):
    def env(self) -> dict[str, str]:
        return {**super().env(), "RHYTHM_DEMO": "1", "RHYTHM_PLAN_INTERVAL_S": str(TICK_S)}


def planned_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    runs = [r for job in JOBS for r in instance.get_runs(filters=dg.RunsFilter(job_name=job))]
    return [r for r in runs if r.tags.get("rhythm/moved_min") is not None]  # launched by the scheduler


def failure(instance: dg.DagsterInstance, run_id: str) -> str:
    return next(
        (e.message for e in reversed(instance.all_logs(run_id)) if e.is_dagster_event and e.dagster_event.is_failure),
        "",
    )


def wait_for(instance, what, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = what(instance)
        if got:
            return got
        time.sleep(1.0)
    raise AssertionError(f"nothing after {timeout_s} s")


@pytest.mark.timeout(400)
def test_planned_runs_are_launched_once_across_a_daemon_restart(tmp_path):
    sb = PlanningSandbox(tmp_path)
    sb.write_config()
    instance = dg.DagsterInstance.from_config(str(sb.dagster_home))
    instance.get_runs()  # the run storage is created here, before the daemon races to create it
    now = pd.Timestamp.now(tz="UTC")
    # the report ran two cron periods ago under the scheduler: the cron times since are due now
    last = now.floor("2h") - pd.Timedelta(hours=4)
    seed = f"demo_report_batch|{last.isoformat()}"
    instance.create_run_for_job(
        JOBS["demo_report_batch"], tags={PLAN_KEY_TAG: seed}, status=dg.DagsterRunStatus.SUCCESS
    )
    expected = {f"demo_report_batch|{(last + pd.Timedelta(hours=2 * k)).isoformat()}" for k in (1, 2)}
    daemon = Daemon(sb)
    daemon.start()
    try:
        wait_for(instance, lambda i: expected <= {r.tags[PLAN_KEY_TAG] for r in planned_runs(i)})
        done = wait_for(instance, lambda i: all(r.is_finished for r in planned_runs(i)) and planned_runs(i))
        failed = {r.job_name: failure(instance, r.run_id) for r in done if r.status != dg.DagsterRunStatus.SUCCESS}
        assert not failed, failed  # they ran, through the queue
        daemon.stop()  # between ticks (its run workers share its process group: stopped once they are done)
        daemon.start()  # a new daemon, the same instance: the sensor's cursor and the run keys survive
        restarted = time.time()
        state = next(s for s in instance.all_instigator_state() if s.name == "predictive_scheduler")
        wait_for(
            instance, lambda i: len(i.get_ticks(state.instigator_origin_id, state.selector_id, after=restarted)) >= 3
        )
        counts = Counter(r.tags[PLAN_KEY_TAG] for r in planned_runs(instance))
        assert expected <= set(counts) and max(counts.values()) == 1, counts
    finally:
        daemon.stop(close=True)
