"""The learning wiring over a real SQLite store and Dagster instance: failure_patterns learns the patterns of a
simulated fleet's recorded history (the same ids on a second materialization, operator labels kept, a bad
labels file refused with its file and line); recurrence_prevention launches one healing run when a precursor
holds; healing_job applies the prevention under the rails and records it."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.defs.healing import healing_job, run_request
from rhythm_pipelines.defs.learning import failure_patterns, recurrence_prevention
from rhythm_pipelines.defs.resources import HealingResource, SQLiteStoreResource
from rhythm_pipelines.learning.patterns import Pattern
from rhythm_pipelines.learning.precursors import Precursor
from rhythm_pipelines.learning.prevention import prevention_event
from rhythm_pipelines.simulate import history
from rhythm_pipelines.simulate.fleet import SimConfig, simulate

NOW = pd.Timestamp.now(tz="UTC").floor("min")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("RHYTHM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RHYTHM_HOST", "this-host")
    monkeypatch.delenv("RHYTHM_PLAYBOOKS", raising=False)
    monkeypatch.delenv("RHYTHM_PATTERN_LABELS", raising=False)
    return {
        "store": SQLiteStoreResource(path=str(tmp_path / "metrics.db")),
        "healing": HealingResource(state_dir=str(tmp_path / "healing"), dry_run=True),
    }


def snapshot(env) -> pd.DataFrame:
    with env["store"].open() as s:
        rows = s.read_table("failure_patterns")
    return rows[rows["ts"] == rows["ts"].max()]


def test_failure_patterns_learns_the_recorded_history_and_keeps_ids_and_labels(env, tmp_path):
    sim = simulate(SimConfig(days=4, seed=5, recurring=True, incidents_per_day=3))
    with env["store"].open() as s:
        history.fill(s, sim, seed=5)
    first = dg.materialize([failure_patterns], resources=env)
    assert first.success
    meta = first.asset_materializations_for_node("failure_patterns")[0].metadata
    assert meta["recurring"].value >= 2 and "| root cause" in meta["pattern_table"].value
    assert "| `simulated " in meta["pattern_table"].value  # templates in code spans: a <NUM> mask is not HTML
    assert meta["timeline"].value.startswith("![incidents per recurring pattern](data:image/png;base64,")
    rows = snapshot(env)
    leak = rows[(rows["kind"] == "memory_leak") & (rows["occurrences"] >= 3)]
    assert len(leak) == 1 and leak["fix"].iloc[0] == "terminate_process"  # what the recorded healing did
    pid = leak["pattern_id"].iloc[0]
    labels = tmp_path / "home" / "pattern_labels.yaml"
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text(f"patterns:\n  {pid}:\n    label: worker leak before OOM\n")
    assert dg.materialize([failure_patterns], resources=env).success
    again = snapshot(env)
    assert sorted(again["pattern_id"]) == sorted(rows["pattern_id"])  # the same patterns, the same ids
    assert again.set_index("pattern_id").loc[pid, "label"] == "worker leak before OOM"
    assert (
        again.set_index("pattern_id").loc[rows["pattern_id"], "members"].to_numpy() == rows["members"].to_numpy()
    ).all()


def test_a_bad_labels_file_fails_the_materialization_naming_file_and_line(env, tmp_path):
    labels = tmp_path / "labels.yaml"
    labels.write_text("patterns:\n  0a1b2c3d:\n    prevent: sometimes\n")
    result = dg.materialize(
        [failure_patterns], resources=env, raise_on_error=False,
        run_config={"ops": {"failure_patterns": {"config": {"labels_file": str(labels)}}}},
    )  # fmt: skip
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert f"{labels}:3: patterns.0a1b2c3d.prevent: expected true or false" in str(failure.event_specific_data)


def store_pattern(env, confidence=0.9, at=None, metric="cpu_percent") -> Pattern:
    """A confident pattern whose precursor holds on metrics ending now (the sensor reads the wall clock)."""
    now = pd.Timestamp.now(tz="UTC").floor("min")
    rule = Precursor("db-01", metric, "rise15", 10.0, 30, lead_min=8, recall=0.9, fired=5)
    p = Pattern("0a1b2c3d", "cpu_spike", "db-01", "(no message)", ["a", "b", "c"], NOW - pd.Timedelta(days=3),
                NOW - pd.Timedelta(days=1), 1440.0, "pause_low_priority", {}, rule, confidence,
                occurrences=3)  # fmt: skip
    with env["store"].open() as s:
        s.write_table("failure_patterns", pd.DataFrame([{**p.row(), "ts": at or now - pd.Timedelta(minutes=20)}]))
        idx = pd.date_range(end=now, periods=40, freq="min", tz="UTC")
        s.write_metrics(pd.DataFrame({"ts": idx, "source": "db-01", "metric": metric,
                                      "value": np.linspace(20, 70, 40), "tags": None}))  # fmt: skip
    return p


@pytest.mark.parametrize("metric", ["cpu_percent", "queue_depth"])  # a precursor on a metric of its own too
def test_a_holding_precursor_launches_one_prevention_run(env, metric):
    store_pattern(env, metric=metric)
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources=env)
        result = recurrence_prevention(ctx)
        (req,) = result.run_requests
        assert req.job_name == "healing_job" and req.run_key.startswith("prevent|db-01|recurrence_risk|")
        event = req.run_config["ops"]["heal_event"]["config"]["event"]
        assert event["kind"] == "recurrence_risk" and json.loads(event["detail_json"])["pattern"] == "0a1b2c3d"
        ctx = dg.build_sensor_context(instance=instance, resources=env, cursor=result.cursor)
        assert recurrence_prevention(ctx).run_requests == []  # within its horizon: once


def test_an_unconfident_pattern_is_not_acted_on(env):
    store_pattern(env, confidence=0.1)
    with dg.instance_for_test() as instance:
        result = recurrence_prevention(dg.build_sensor_context(instance=instance, resources=env))
        assert result.run_requests == [] and "no learned pattern" in result.skip_reason.skip_message


def test_healing_job_applies_a_prevention_in_dry_run_and_records_it(env):
    p = store_pattern(env)
    event = prevention_event(p, NOW)
    with dg.DagsterInstance.ephemeral() as instance:
        result = healing_job.execute_in_process(run_config=run_request(event).run_config, resources=env,
                                                instance=instance)  # fmt: skip
        assert result.success and result.output_for_node("heal_event") == "dry_run"
    with env["store"].open() as s:
        prev = s.read_table("preventions")
        log = s.read_table("healing_log")
    assert prev[["pattern_id", "of_kind", "root", "status"]].values.tolist() == [
        ["0a1b2c3d", "cpu_spike", "db-01", "dry_run"]
    ]
    assert prev["horizon_min"].iloc[0] == 30
    act = log[log["step"] == "act"].iloc[0]
    assert act["action"] == "pause_low_priority" and act["outcome"] == "dry_run" and act["kind"] == "recurrence_risk"


def test_tuned_policies_writes_a_version_per_change_and_rolls_back(env, tmp_path):
    from rhythm_pipelines.defs.learning import tuned_policies
    from rhythm_pipelines.learning.tuning import PolicyFile

    rng = np.random.default_rng(0)

    def calls(median_ms: float, n: int = 600) -> pd.DataFrame:
        ts = NOW - pd.to_timedelta(np.sort(rng.uniform(60, 3600, n)), unit="s")
        return pd.DataFrame({"ts": ts, "call_id": [f"c{median_ms}-{i}" for i in range(n)], "channel": "gpt-4o",
                             "region": "eu-west-1", "latency_ms": median_ms * np.exp(rng.normal(0, 0.3, n)),
                             "status": "ok", "tokens_in": 10, "tokens_out": 10, "cost_usd": 0.001})  # fmt: skip

    with env["store"].open() as s:
        s.write_table("channel_calls", calls(200.0))
    first = dg.materialize([tuned_policies], resources=env)
    assert first.success
    meta = first.asset_materializations_for_node("tuned_policies")[0].metadata
    assert meta["version"].value == 1 and "gpt-4o@eu-west-1" in meta["policies"].value and "timeout" in meta[
        "policies"].value  # fmt: skip
    files = PolicyFile(tmp_path / "home" / "policies")
    v1 = files.policies()["gpt-4o@eu-west-1"]
    with env["store"].open() as s:
        s.write_table("channel_calls", calls(3000.0, 3000))  # the channel got much slower
    assert dg.materialize([tuned_policies], resources=env).success
    v2 = files.policies()["gpt-4o@eu-west-1"]
    assert files.current() == 2 and v1.timeout_s < v2.timeout_s <= 4 * v1.timeout_s + 1e-9  # one bounded step (x4 up)
    back = dg.materialize([tuned_policies], resources=env,
                          run_config={"ops": {"tuned_policies": {"config": {"rollback_to": 1}}}})  # fmt: skip
    assert back.success and files.current() == 3 and files.policies()["gpt-4o@eu-west-1"] == v1
    bad = dg.materialize([tuned_policies], resources=env, raise_on_error=False,
                         run_config={"ops": {"tuned_policies": {"config": {"rollback_to": 7}}}})  # fmt: skip
    assert not bad.success
    (failure,) = [e for e in bad.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "no policy version 7 (have 1, 2, 3)" in str(failure.event_specific_data)


def test_an_operators_prevent_false_and_a_stale_snapshot_stop_preventions(env, tmp_path, monkeypatch):
    store_pattern(env)
    labels = tmp_path / "labels.yaml"
    labels.write_text("patterns:\n  0a1b2c3d:\n    prevent: false\n")
    monkeypatch.setenv("RHYTHM_PATTERN_LABELS", str(labels))
    with dg.instance_for_test() as instance:
        assert recurrence_prevention(dg.build_sensor_context(instance=instance, resources=env)).run_requests == []
        labels.write_text("patterns:\n  0a1b2c3d:\n    prevent: perhaps\n")
        result = recurrence_prevention(dg.build_sensor_context(instance=instance, resources=env))
        assert result.run_requests == [] and "labels.yaml:3" in result.skip_reason.skip_message


def test_a_snapshot_older_than_three_hours_is_not_acted_on(env):
    store_pattern(env, at=NOW - pd.Timedelta(hours=4))  # failure_patterns has not run since
    with dg.instance_for_test() as instance:
        result = recurrence_prevention(dg.build_sensor_context(instance=instance, resources=env))
        assert result.run_requests == [] and "no learned pattern" in result.skip_reason.skip_message


def test_an_incident_healing_could_not_close_gets_its_patterns_fix_at_the_root(env):
    now = pd.Timestamp.now(tz="UTC").floor("s")
    p = Pattern(
        "9336aa24",
        "cascade_failure",
        "db-02",
        "(no message)",
        ["a", "b", "c"],
        NOW - pd.Timedelta(days=3),
        NOW - pd.Timedelta(days=1),
        1440.0,
        "pause_low_priority",
        {},
        None,
        0.8,
        sources=["api-01", "db-02"],
        occurrences=3,
    )  # fmt: skip  (no precursor: it cannot be prevented)
    start = now - pd.Timedelta(minutes=3)
    event_id = f"api-01|cascade_failure|{start.isoformat()}"
    steps = [("detect", "", "received"), ("act", "rerun_failed", "noop"), ("act", "notify_admin", "done"),
             ("alert", "notify_admin", "sent")]  # fmt: skip
    log = pd.DataFrame([{"ts": start + pd.Timedelta(seconds=i), "entry_id": f"e{i}", "event_id": event_id,
                         "run_id": "r1", "kind": "cascade_failure", "source": "api-01", "level": "soft", "step": st,
                         "action": a, "target": "api-01", "params": "{}", "outcome": o, "detail": ""}
                        for i, (st, a, o) in enumerate(steps)])  # fmt: skip
    with env["store"].open() as s:
        s.write_table("failure_patterns", pd.DataFrame([{**p.row(), "ts": now - pd.Timedelta(minutes=20)}]))
        s.write_table("healing_log", log)
    with dg.instance_for_test() as instance:
        result = recurrence_prevention(dg.build_sensor_context(instance=instance, resources=env))
        (req,) = result.run_requests
        assert req.run_key.startswith("rootfix|db-02|recurrence_risk|9336aa24|")
        event = req.run_config["ops"]["heal_event"]["config"]["event"]
        assert event["source"] == "db-02" and json.loads(event["detail_json"])["trigger"] == "incident"
        again = recurrence_prevention(dg.build_sensor_context(instance=instance, resources=env, cursor=result.cursor))
        assert again.run_requests == []  # once within its horizon
    with env["store"].open() as s:  # healing closed it: nothing goes to the root
        s.write_table("healing_log", log.head(1).assign(entry_id="e9", step="resolve", outcome="resolved",
                                                        ts=now - pd.Timedelta(minutes=1)))  # fmt: skip
    with dg.instance_for_test() as instance:
        assert recurrence_prevention(dg.build_sensor_context(instance=instance, resources=env)).run_requests == []
