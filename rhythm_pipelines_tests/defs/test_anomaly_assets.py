"""The anomaly assets, materialized for real against an SQLite store and an ephemeral instance."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.anomaly.evaluate import score_simulation
from rhythm_pipelines.anomaly.pipeline import SCORE_PREFIX
from rhythm_pipelines.definitions import defs
from rhythm_pipelines.defs.anomaly import SIM_START, anomaly_detection, detector_scorecard
from rhythm_pipelines.simulate import SimConfig, simulate
from rhythm_pipelines_tests.conftest import T0

PARTITION = "2026-03-02-00:00"
H, MIN = pd.Timedelta("1h"), pd.Timedelta("1min")
HOSTS = [f"web-{i:02d}" for i in range(8)] + ["db-01"]  # db-01 has a CPU burst at 00:20


def seed_fleet(store_res, spike_at: pd.Timestamp = T0 + 20 * MIN) -> None:
    """Minute cpu_percent of 9 hosts from T0 - 48 h to T0 + 2 h; db-01 jumps by 45 points for 5 minutes."""
    ts = pd.date_range(T0 - 48 * H, T0 + 2 * H, freq="min", inclusive="left")
    frames = []
    for i, host in enumerate(HOSTS):
        values = np.random.default_rng(i).normal(40.0, 2.0, len(ts))
        if host == "db-01":
            values[(ts >= spike_at) & (ts < spike_at + 5 * MIN)] += 45.0
        frames.append(pd.DataFrame({"ts": ts, "source": host, "metric": "cpu_percent", "value": values}))
    with store_res.open() as s:
        s.write_metrics(pd.concat(frames, ignore_index=True).assign(tags=None))


def run(resources, instance, config: dict | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {"anomaly_detection": {"config": config}}} if config else None
    result = dg.materialize(
        [anomaly_detection], resources=resources, instance=instance, run_config=run_config, **kwargs
    )
    assert result.success
    return result


def metadata(result: dg.ExecuteInProcessResult, asset: str, partitions: int = 1) -> dict:
    """The metadata of the asset's materialization (a range run records one per partition, the same)."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    assert len(events) == partitions
    return events[0].materialization.metadata


def check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_jobs_run_anomaly_detection_after_ingestion():
    hourly = defs.resolve_job_def("hourly_ingestion_job").asset_layer.executable_asset_keys
    assert {dg.AssetKey("anomaly_scores"), dg.AssetKey("anomaly_events")} <= hourly
    assert dg.AssetKey("detector_scorecard") not in hourly
    anomaly = defs.resolve_job_def("anomaly_job").asset_layer.executable_asset_keys
    assert anomaly == {dg.AssetKey("anomaly_scores"), dg.AssetKey("anomaly_events")}
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("anomaly_scores")).parent_keys == {
        dg.AssetKey("raw_metrics"),
        dg.AssetKey("channel_calls"),
    }
    assert graph.get(dg.AssetKey("anomaly_events")).parent_keys == {dg.AssetKey("anomaly_scores")}


def test_the_hourly_job_scores_the_hour_after_ingesting_it(resources, instance):
    from rhythm_pipelines.defs.ingestion import ingestion_assets
    from rhythm_pipelines.defs.jobs import hourly_ingestion_job

    seed_fleet(resources["store"])
    job = dg.Definitions(
        assets=[*ingestion_assets, anomaly_detection], jobs=[hourly_ingestion_job], resources=resources
    ).resolve_job_def("hourly_ingestion_job")
    # what the host sampler launches; the generic ensemble sees dips too (auto's CPU profile only rises)
    ensemble = {"ops": {"anomaly_detection": {"config": {"method": "ensemble"}}}}
    result = job.execute_in_process(partition_key=PARTITION, instance=instance, run_config=ensemble)
    assert result.success
    done = [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
    assert done.index("anomaly_detection") > max(done.index("raw_metrics"), done.index("channel_calls"))
    with resources["store"].open() as s:
        rollups = s.read_table("rollups")
        events = s.read_table("events")
    # the landing file's web-01 points (12.5 % where the seeded history is near 40 %) were ingested first
    assert events[["source", "ts"]].values.tolist() == [["web-01", T0], ["db-01", T0 + 20 * MIN]]
    assert not rollups.empty and not rollups["metric"].str.startswith(SCORE_PREFIX).any()


def test_a_burst_becomes_one_stored_event_and_a_rerun_duplicates_nothing(resources, instance):
    store_res = resources["store"]
    seed_fleet(store_res)
    stored = []
    for _ in range(2):
        result = run(resources, instance, partition_key=PARTITION)
        scores, events = metadata(result, "anomaly_scores"), metadata(result, "anomaly_events")
        assert scores["series_scored"].value == len(HOSTS)  # the score series are never scored themselves
        assert scores["points_scored"].value == len(HOSTS) * 60 and scores["flagged_points"].value == 1
        assert events["events"].value == 1 and "db-01" in events["table"].value and "figures_cover" not in events
        assert events["incidents"].value == 1 and "| db-01 " in events["incident_list"].value
        assert "data:image/png;base64," in events["most_anomalous"].value
        assert "db-01 cpu_percent" in events["most_anomalous"].value
        assert check(result, "finite_scores").passed
        rate = check(result, "alert_rate")
        assert rate.passed and rate.metadata["events_per_series_hour"].value == pytest.approx(1 / 9, rel=1e-3)
        with store_res.open() as s:
            table = s.read_table("events")
            score_points = s.read_metrics(T0, T0 + H, metrics=[SCORE_PREFIX + "cpu_percent"])
            stored.append((table, len(score_points), len(s.list_series())))
    (first, n_scores, n_series), (again, n_scores2, n_series2) = stored
    assert len(first) == 1 and first["source"].iloc[0] == "db-01" and first["ts"].iloc[0] == T0 + 20 * MIN
    assert json.loads(first["payload"].iloc[0])["method"] == "auto"
    pd.testing.assert_frame_equal(first, again)
    assert n_scores == n_scores2 == len(HOSTS) * 60 and n_series == n_series2 == 2 * len(HOSTS)


def test_the_alert_rate_check_warns_when_alerts_pass_the_ceiling(resources, instance):
    seed_fleet(resources["store"])
    result = run(resources, instance, {"max_events_per_series_hour": 0.05}, partition_key=PARTITION)
    rate = check(result, "alert_rate")
    assert not rate.passed and rate.severity == dg.AssetCheckSeverity.WARN
    assert rate.metadata["max_events_per_series_hour"].value == 0.05
    assert "db-01" in rate.metadata["noisiest"].value
    # the asset itself is fine: the event is stored
    with resources["store"].open() as s:
        assert len(s.read_table("events")) == 1


def test_a_range_in_one_run_equals_hour_by_hour(resources, instance, tmp_path):
    from rhythm_pipelines.defs.resources import SQLiteStoreResource

    seed_fleet(resources["store"], spike_at=T0 + 55 * MIN)  # an event open across the hour boundary
    hourly = {**resources, "store": SQLiteStoreResource(path=str(tmp_path / "hourly.db"))}
    seed_fleet(hourly["store"], spike_at=T0 + 55 * MIN)
    one_run = run(
        resources,
        instance,
        tags={
            "dagster/asset_partition_range_start": "2026-03-02-00:00",
            "dagster/asset_partition_range_end": "2026-03-02-01:00",
        },
    )
    assert metadata(one_run, "anomaly_scores", partitions=2)["run_points_scored"].value == len(HOSTS) * 120
    scope = metadata(one_run, "anomaly_events", partitions=2)["figures_cover"].value
    assert scope.startswith("the whole run: 2 partitions, 2026-03-02-00:00 … 2026-03-02-01:00")
    seen = {
        r.asset_observation.partition: r.asset_observation.metadata["events"].value
        for r in instance.fetch_observations(dg.AssetKey("anomaly_events"), limit=10).records
        if r.run_id == one_run.run_id
    }
    assert seen == {"2026-03-02-00:00": 1, "2026-03-02-01:00": 0}  # each hour's own figure: the event starts at :55
    for key in ("2026-03-02-00:00", "2026-03-02-01:00"):
        run(hourly, instance, partition_key=key)
    with resources["store"].open() as a, hourly["store"].open() as b:
        events_a, events_b = a.read_table("events"), b.read_table("events")
        scores = [s.read_metrics(T0, T0 + 2 * H, metrics=[SCORE_PREFIX + "cpu_percent"]) for s in (a, b)]
    assert len(events_a) == 1 and events_a["end"].iloc[0] > T0 + H  # not cut at the first hour's end
    pd.testing.assert_frame_equal(events_a, events_b)
    pd.testing.assert_frame_equal(*scores)


def test_detector_scorecard_on_the_simulator(instance):
    config = {"sim_days": 2.0, "sim_seed": 3, "methods": ["auto", "jump"]}
    result = dg.materialize(
        [detector_scorecard], instance=instance, run_config={"ops": {"detector_scorecard": {"config": config}}}
    )
    assert result.success
    meta = metadata(result, "detector_scorecard")
    sim = simulate(SimConfig(days=2.0, seed=3, start=SIM_START))
    for method in ("auto", "jump"):
        expected = score_simulation(sim, method)[1]
        assert meta[f"f1_sim_{method}"].value == pytest.approx(round(expected.f1, 4))
        row = f"| simulator (2 d, seed 3) | {method} | {expected.tp} | {expected.fp} | {expected.fn} |"
        assert row in " ".join(meta["scorecard"].value.split())
    assert meta["nab"].value.startswith("skipped")
    assert "data:image/png;base64," in meta["example"].value
    assert check(result, "every_method_scored").passed


def test_detector_scorecard_on_a_nab_directory_and_a_broken_method(instance, tmp_path, monkeypatch):
    windows = {}
    for category, spike in (("demoA", 1500), ("demoB", 1300)):
        data = tmp_path / "nab" / "data" / category
        data.mkdir(parents=True)
        ts = pd.date_range("2014-01-01", periods=2000, freq="5min")
        values = np.random.default_rng(0).normal(10.0, 1.0, len(ts))
        values[spike : spike + 5] += 30.0
        frame = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": values})
        frame.to_csv(data / "one.csv", index=False)
        windows[f"{category}/one.csv"] = [[str(ts[spike - 10]), str(ts[spike + 20])]]
    labels = tmp_path / "nab" / "labels"
    labels.mkdir()
    (labels / "combined_windows.json").write_text(json.dumps(windows))
    monkeypatch.setenv("RHYTHM_NAB_DIR", str(tmp_path / "nab" / "data"))  # windows: ../labels by default

    config = {"sim_days": 1.0, "methods": ["ensemble", "no-such-method"]}
    result = dg.materialize(
        [detector_scorecard], instance=instance, run_config={"ops": {"detector_scorecard": {"config": config}}}
    )
    assert result.success
    meta = metadata(result, "detector_scorecard")
    table = " ".join(meta["scorecard"].value.split())
    assert "| NAB held-out | ensemble | 2 | 0 | 0 |" in table and "| NAB in-sample | ensemble | 2 | 0 | 0 |" in table
    assert meta["f1_nab_ensemble"].value == 1.0 and meta["f1_nab_in_sample_ensemble"].value == 1.0
    by_category = " ".join(meta["nab_by_category"].value.split())
    for category in ("demoA", "demoB"):  # method, category, files, tp, fp, fn
        assert f"| ensemble | {category} | 1 | 1 | 0 | 0 |" in by_category
    assert str(tmp_path / "nab" / "data") in meta["nab"].value and "leave-one-category-out" in meta["nab"].value
    assert "no-such-method" in meta["errors"].value
    failed = check(result, "every_method_scored")
    assert not failed.passed and "no-such-method on NAB" in failed.metadata["failed"].value
