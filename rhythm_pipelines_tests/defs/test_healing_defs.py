"""The healing wiring: the health sensor's run requests and cursor, healing_job on a real hung process,
the follow-up sensor, the run-failure sensor on real failed runs, and the low-priority pause."""

from __future__ import annotations

import json
import os
import pwd
import socket
from pathlib import Path

import dagster as dg
import pandas as pd
import psutil
import pytest

from rhythm_pipelines.defs.forecasting import live_forecasts_schedule
from rhythm_pipelines.defs.healing import (
    OUTCOME_TAG,
    TARGET_TAG,
    healing_followups_sensor,
    healing_job,
    healing_run_failure_sensor,
    health_sensor,
    run_request,
)
from rhythm_pipelines.defs.resources import HealingResource
from rhythm_pipelines.healing import pause
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.playbooks import default_text
from rhythm_pipelines.metrics.provenance import sampler_key, sign
from rhythm_pipelines_tests.defs.conftest import HEALING_HOST

HOST = HEALING_HOST


def cpu_points(now: pd.Timestamp, minutes: float, value: float = 96.0, signed: bool = True) -> pd.DataFrame:
    """This host's CPU as its own sampler writes it (signed), or as an agent claiming its name would."""
    ts = pd.date_range(end=now, periods=int(minutes * 6), freq="10s")
    frame = pd.DataFrame({"ts": ts, "source": HOST, "metric": "cpu_percent", "value": value, "tags": None})
    return sign(frame, sampler_key()) if signed else frame


def test_points_naming_this_host_without_its_sampler_signature_raise_nothing(healing_resources):
    now = pd.Timestamp.now(tz="UTC")
    with healing_resources["store"].open() as s:  # an agent started with --host <this host>
        s.write_metrics(
            pd.concat([cpu_points(now - pd.Timedelta(minutes=6), 4, 30.0, False), cpu_points(now, 6, signed=False)])
        )
    with dg.DagsterInstance.ephemeral() as instance:
        result = health_sensor(dg.build_sensor_context(instance=instance, resources=healing_resources))
        assert not [r for r in result.run_requests or [] if r.tags["rhythm/event_kind"] == "cpu_spike"]
        assert "60 unsigned point(s) naming this host left out" in result.skip_reason.skip_message


def test_health_sensor_launches_one_run_per_event_with_its_run_key_and_target(healing_resources):
    now = pd.Timestamp.now(tz="UTC")
    with healing_resources["store"].open() as s:
        s.write_metrics(pd.concat([cpu_points(now - pd.Timedelta(minutes=6), 4, 30.0), cpu_points(now, 6)]))
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources=healing_resources)
        result = health_sensor(ctx)
        (req,) = [r for r in result.run_requests if r.tags["rhythm/event_kind"] == "cpu_spike"]
        event = HealthEvent.from_config({**req.run_config["ops"]["heal_event"]["config"]["event"], "detail": {}})
        assert req.run_key == event.event_id and event.source == HOST
        assert req.tags[TARGET_TAG] == HOST
        assert HOST + "|cpu_spike" in json.loads(result.cursor)["episodes"]
        again = health_sensor(
            dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=healing_resources)
        )
        assert not [r for r in again.run_requests if r.tags["rhythm/event_kind"] == "cpu_spike"]
        # a restarted daemon evaluates from the stored cursor: still nothing new
        restarted = dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=healing_resources)
        assert not [r for r in health_sensor(restarted).run_requests if r.tags["rhythm/event_kind"] == "cpu_spike"]


def with_books(tmp_path, resources: dict, text: str) -> dict:
    books = tmp_path / "books.yaml"
    books.write_text(text)
    return {**resources, "healing": HealingResource(state_dir=str(tmp_path / "healing"), playbooks=str(books))}


def hung_event(worker) -> HealthEvent:
    """A process_hung event on a worker this test started."""
    detail = {"pid": worker.pid, "create_time": psutil.Process(worker.pid).create_time()}
    start = pd.Timestamp.now(tz="UTC").floor("s")
    return HealthEvent(
        "process_hung", f"{socket.gethostname()}/proc/{worker.pid}", start, "heartbeat_age_s", 40.0, detail
    )


def calm(text: str) -> str:
    """The shipped playbooks with the CPU rule of the severity out of reach: a level that does not depend on how
    busy this machine is while the tests run."""
    return text.replace("- {metric: cpu_percent, above: 90}", "- {metric: cpu_percent, above: 100}")


def test_healing_job_terminates_an_allowlisted_hung_worker_and_logs_every_step(
    tmp_path, healing_resources, spawn, monkeypatch
):
    monkeypatch.setenv("RHYTHM_HOST", socket.gethostname())  # the runner acts on its own host only
    worker, tag = spawn("hung", "--heartbeat-dir", str(tmp_path / "hb"))
    books = tmp_path / "books.yaml"
    me = pwd.getpwuid(os.getuid()).pw_name
    rule = f"allow_processes: [{{cmdline: '.*{tag}.*', user: {me}}}]"
    text = calm(default_text()).replace("allow_processes: []", rule)
    books.write_text(text.replace("  wait_s: 3 ", "  wait_s: 0.5 "))
    resources = {
        **healing_resources,
        "healing": HealingResource(state_dir=str(tmp_path / "healing"), playbooks=str(books)),
    }
    detail = {"pid": worker.pid, "create_time": psutil.Process(worker.pid).create_time()}
    start = pd.Timestamp.now(tz="UTC").floor("s")
    event = HealthEvent(
        "process_hung", f"{socket.gethostname()}/proc/{worker.pid}", start, "heartbeat_age_s", 40.0, detail
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = healing_job.execute_in_process(
            run_config=run_request(event).run_config, resources=resources, instance=instance
        )
        assert result.success and result.output_for_node("heal_event") == "resolved"
        (obs,) = instance.fetch_observations(dg.AssetKey("healing_log"), limit=5).records
        assert obs.asset_observation.metadata["status"].value == "resolved"
    assert worker.wait(timeout=5) is not None
    with resources["store"].open() as s:
        log = s.read_table("healing_log")
    assert list(log["step"]) == ["detect", "assess", "act", "verify", "resolve"]
    act = log[log["step"] == "act"].iloc[0]
    assert act["action"] == "terminate_process" and act["outcome"] == "done" and "terminated" in act["detail"]
    assert log["run_id"].nunique() == 1 and log["event_id"].eq(event.event_id).all()


def test_an_incident_left_unresolved_fails_its_run_with_the_reason(tmp_path, healing_resources, spawn, monkeypatch):
    """Nothing allowlisted (the shipped default): the hung worker cannot be touched, so the run must not look
    green: it fails with what was decided, and rhythm/outcome says unresolved."""
    monkeypatch.setenv("RHYTHM_HOST", socket.gethostname())
    healing_resources = with_books(tmp_path, healing_resources, calm(default_text()))
    worker, _ = spawn("hung", "--heartbeat-dir", str(tmp_path / "hb"))
    event = hung_event(worker)
    with dg.DagsterInstance.ephemeral() as instance:
        result = healing_job.execute_in_process(
            run_config=run_request(event).run_config,
            resources=healing_resources,
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        failure = result.failure_data_for_node("heal_event").error
        assert "UNRESOLVED at soft" in failure.message and "nothing allowed at soft" in failure.message
        assert instance.get_run_by_id(result.run_id).tags[OUTCOME_TAG] == "unresolved"
    assert worker.poll() is None  # untouched


def test_followups_are_launched_once_when_due(healing_resources):
    event = HealthEvent("cpu_spike", HOST, pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=20))
    now = pd.Timestamp.now(tz="UTC")
    rows = pd.DataFrame(
        [
            (now - pd.Timedelta(seconds=5), f"{event.event_id}|resume_low_priority|soft", "resume_low_priority"),
            (now + pd.Timedelta(minutes=5), f"{event.event_id}|recheck|critical", "recheck"),
        ],
        columns=["ts", "followup_id", "action"],
    ).assign(event_id=event.event_id, params="{}", event=json.dumps(event.to_config()), status="pending")
    with healing_resources["store"].open() as s:
        s.write_table("healing_followups", rows)
    with dg.DagsterInstance.ephemeral() as instance:
        result = healing_followups_sensor(dg.build_sensor_context(instance=instance, resources=healing_resources))
        (req,) = result.run_requests
        assert req.run_key.endswith("|resume_low_priority|soft")
        assert req.run_config["ops"]["heal_event"]["config"]["follow_up_action"] == "resume_low_priority"
        again = healing_followups_sensor(dg.build_sensor_context(instance=instance, resources=healing_resources))
        assert isinstance(again, dg.SkipReason)
    with healing_resources["store"].open() as s:
        status = s.read_table("healing_followups").set_index("action")["status"]
    assert status.to_dict() == {"resume_low_priority": "launched", "recheck": "pending"}


@dg.op
def flaky_op():
    raise RuntimeError("upstream service down")


@dg.job
def flaky_job():
    flaky_op()


def test_run_failure_sensor_raises_a_task_failure_pattern_after_repeated_failures(healing_resources):
    with dg.DagsterInstance.ephemeral() as instance:
        runs = [flaky_job.execute_in_process(instance=instance, raise_on_error=False) for _ in range(3)]
        last = instance.get_run_by_id(runs[-1].run_id)
        failure = next(e for e in runs[-1].all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)

        def evaluate(run):
            ctx = dg.build_run_status_sensor_context(
                sensor_name="healing_run_failure_sensor",
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=run,
                resources=healing_resources,
            ).for_run_failure()
            return healing_run_failure_sensor(ctx)

        (req,) = evaluate(last)
        assert req.tags["rhythm/event_kind"] == "task_failure_pattern" and req.tags[TARGET_TAG] == "flaky_job"
        detail = json.loads(req.run_config["ops"]["heal_event"]["config"]["event"]["detail_json"])
        assert detail["last_run_id"] == last.run_id and len(detail["run_ids"]) == 3
        assert req.run_key == evaluate(last)[0].run_key  # the same pattern: the same run key


def test_low_priority_schedule_skips_while_healing_holds_a_pause(tmp_path, monkeypatch):
    monkeypatch.setenv("RHYTHM_HEALING_DIR", str(tmp_path))
    ctx = dg.build_schedule_context()
    assert isinstance(live_forecasts_schedule(ctx), dg.RunRequest)
    pause.pause(tmp_path / "paused.json", "h|cpu_spike|t", pd.Timestamp.now(tz="UTC"))
    skipped = live_forecasts_schedule(ctx)
    assert isinstance(skipped, dg.SkipReason) and "h|cpu_spike|t" in skipped.skip_message
    pause.resume(tmp_path / "paused.json", "h|cpu_spike|t")
    assert isinstance(live_forecasts_schedule(ctx), dg.RunRequest)


def test_healing_report_materializes_a_day(healing_resources):
    from rhythm_pipelines.defs.healing import healing_report

    day = pd.Timestamp("2026-11-20", tz="UTC")
    rows = [
        (day + pd.Timedelta(hours=1), "e1", "detect", "", "received"),
        (day + pd.Timedelta(hours=1), "e1", "assess", "hard", "hard"),
        (day + pd.Timedelta(hours=1), "e1", "act", "hard", "done"),
        (day + pd.Timedelta(hours=3), "e1", "resolve", "hard", "resolved"),
    ]
    log = pd.DataFrame(rows, columns=["ts", "event_id", "step", "level", "outcome"]).assign(
        entry_id=[f"r:{i}" for i in range(4)], kind="memory_leak", source=HOST, action="clear_cache"
    )
    with healing_resources["store"].open() as s:
        s.write_table("healing_log", log)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [healing_report], partition_key="2026-11-20", resources=healing_resources, instance=instance
        )
    md = result.asset_materializations_for_node("healing_report")[0].metadata
    assert md["events"].value == 1 and md["mttr_p50_s"].value == 7200.0
    assert md["availability"].value == pytest.approx(1 - 2 / 24)
    assert "memory_leak" in md["top_causes"].value and md["timeline"].value.startswith("![healing on 2026-11-20]")
    assert md["dashboard"].value == "http://127.0.0.1:3001/healing?hours=24.0"
    assert "| availability | 91.67 % | ≥ 99.5 % | red |" in md["kpis"].value  # 2 h of a hard incident in 24
    page = Path(md["html"].value).read_text()
    assert "<h1>Healing report, 2026-11-20</h1>" in page and '<td class="red">red</td>' in page
    assert 'src="data:image/png;base64,' in page  # the timeline, embedded


def test_the_sampler_key_is_made_once_whole_and_private(tmp_path):
    import stat
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:  # the sampler and health sensors may both make it on their first tick
        keys = set(pool.map(lambda _: sampler_key(tmp_path), range(8)))
    assert len(keys) == 1 and len(keys.pop()) == 32
    assert stat.S_IMODE((tmp_path / "sampler.key").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["sampler.key"]
