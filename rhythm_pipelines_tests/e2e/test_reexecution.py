"""Healing re-executes a failed run from failure as a new run through the instance's queue, launched by a real
daemon; a later attempt finds the chain recovered and submits nothing."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from rhythm_pipelines.chaos.runner import Daemon, Sandbox
from rhythm_pipelines.defs.healing import REEXEC_TAG, DagsterWorkControl

DAGSTER = Path(sys.executable).parent / "dagster"


def wait_finished(instance: dg.DagsterInstance, run_id: str, timeout_s: float = 120) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish in {timeout_s} s")


class Log:
    def info(self, msg: str) -> None:
        pass


@pytest.mark.timeout(300)
def test_a_failed_run_is_reexecuted_from_failure_through_the_queue(tmp_path, monkeypatch):
    sb = Sandbox(tmp_path)
    sb.write_config()
    for key in ("DAGSTER_HOME", "RHYTHM_HOME", "RHYTHM_CHAOS", "RHYTHM_CHAOS_DIR"):  # as a healing run worker has
        monkeypatch.setenv(key, sb.env()[key])
    (sb.chaos_dir / "flaky.fail").write_text("1")  # the first run fails, the next one passes
    instance = dg.DagsterInstance.from_config(str(sb.dagster_home))
    instance.get_runs()  # the run storage is created here, before the daemon and the CLI race to create it
    daemon = Daemon(sb)
    daemon.start()
    try:
        deadline = time.monotonic() + 120
        while "QUEUED_RUN_COORDINATOR" not in instance.get_daemon_heartbeats() and time.monotonic() < deadline:
            time.sleep(0.5)
        parent_id = str(uuid.uuid4())
        cmd = [str(DAGSTER), "job", "launch", "-m", "rhythm_pipelines.definitions", "-j", "chaos_flaky_job"]
        out = subprocess.run([*cmd, "--run-id", parent_id], env=sb.env(), cwd=sb.root, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        assert wait_finished(instance, parent_id).status == dg.DagsterRunStatus.FAILURE

        work = DagsterWorkControl(instance, sb.healing_dir / "paused.json", Log())
        state, detail = work.rerun_failed(parent_id, 1)
        assert state == "submitted", detail
        (child,) = [r for r in instance.get_runs() if r.parent_run_id == parent_id]
        assert child.root_run_id == parent_id and child.tags[REEXEC_TAG] == parent_id
        assert child.tags["rhythm/healing_attempt"] == "1"
        assert child.step_keys_to_execute == ["chaos_flaky_op"]  # from failure
        assert wait_finished(instance, child.run_id).status == dg.DagsterRunStatus.SUCCESS  # launched by the daemon

        assert work.rerun_failed(parent_id, 2) == ("recovered", f"run {child.run_id} of the chain succeeded")
        flaky = instance.get_runs(filters=dg.RunsFilter(job_name="chaos_flaky_job"))  # the sandbox's sensors may heal
        assert len(flaky) == 2, "nothing more was submitted"
        assert "re-execute it" not in detail
    finally:
        daemon.stop(close=True)


def test_a_run_executed_outside_a_workspace_is_not_reexecuted(tmp_path):
    sb = Sandbox(tmp_path)
    sb.write_config()
    (sb.chaos_dir / "flaky.fail").write_text("1")
    cmd = [str(DAGSTER), "job", "execute", "-m", "rhythm_pipelines.definitions", "-j", "chaos_flaky_job"]
    subprocess.run(cmd, env=sb.env(), cwd=sb.root, capture_output=True, check=False)
    instance = dg.DagsterInstance.from_config(str(sb.dagster_home))
    (run,) = instance.get_runs()
    state, detail = DagsterWorkControl(instance, sb.healing_dir / "paused.json", Log()).rerun_failed(run.run_id, 1)
    assert state == "failed" and "executed outside a workspace" in detail
    assert len(instance.get_runs()) == 1  # no daemon here: nothing else can have launched a run
