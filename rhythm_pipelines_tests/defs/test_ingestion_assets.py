"""The hourly ingestion assets, materialized for real against an SQLite file and an ephemeral instance."""

from __future__ import annotations

import re

import dagster as dg
import pandas as pd

from rhythm_pipelines.definitions import defs
from rhythm_pipelines.defs.ingestion import ingestion_assets
from rhythm_pipelines_tests.conftest import T0

PARTITION = "2026-03-02-00:00"


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    assert len(events) == 1
    return events[0].materialization.metadata


def checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}


def test_definitions_load():
    job = defs.resolve_job_def("hourly_ingestion_job")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    # ingestion, then anomaly detection of the same hour (see test_anomaly_assets)
    assert keys == {"raw_metrics", "channel_calls", "run_history", "hourly_rollups", "anomaly_scores", "anomaly_events"}
    assert defs.resolve_sensor_def("host_sampler").minimum_interval_seconds == 10


def test_one_partition_then_rerun_is_idempotent(resources, instance):
    store_res = resources["store"]
    counts = []
    for _ in range(2):
        result = dg.materialize(ingestion_assets, partition_key=PARTITION, resources=resources, instance=instance)
        assert result.success
        meta = materialization(result, "channel_calls")
        assert meta["rows_written"].value == 3 and meta["quarantined_rows"].value == 6
        quarantine = meta["quarantine"].value
        assert re.search(r"calls_mixed\.jsonl\s*\|\s*3\s*\|\s*latency_ms\s*\|\s*not a number", quarantine)
        raw = materialization(result, "raw_metrics")
        assert raw["rows_written"].value == 3 and raw["quarantined_rows"].value == 2
        rolled = materialization(result, "hourly_rollups")
        assert rolled["rows"].value > 0
        with store_res.open() as s:
            counts.append(
                (
                    len(s.read_metrics(T0, T0 + pd.Timedelta("1h"))),
                    len(s.read_table("channel_calls")),
                    len(s.read_table("quarantine")),
                    len(s.read_table("rollups")),
                )
            )
        got = checks(result)
        assert got[("raw_metrics", "value_ranges")] and got[("channel_calls", "value_ranges")]
        assert not got[("channel_calls", "quarantine_rate")]  # 6 of 9 rows rejected
    assert counts[0] == counts[1] and counts[0][1] == 3 and counts[0][2] == 8


def test_range_in_a_single_run_equals_hour_by_hour(resources, instance, tmp_path):
    from rhythm_pipelines.defs.resources import SQLiteStoreResource

    one_run = dg.materialize(
        ingestion_assets,
        resources=resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2026-03-02-00:00",
            "dagster/asset_partition_range_end": "2026-03-02-01:00",
        },
    )
    assert one_run.success
    hourly = {**resources, "store": SQLiteStoreResource(path=str(tmp_path / "hourly.db"))}
    for key in ("2026-03-02-00:00", "2026-03-02-01:00"):
        assert dg.materialize(ingestion_assets, partition_key=key, resources=hourly, instance=instance).success
    span = (T0, T0 + pd.Timedelta("2h"))
    with resources["store"].open() as a, hourly["store"].open() as b:
        pd.testing.assert_frame_equal(a.read_metrics(*span), b.read_metrics(*span))
        for table in ("channel_calls", "quarantine", "rollups"):
            pd.testing.assert_frame_equal(a.read_table(table), b.read_table(table))
        assert len(a.read_table("channel_calls")) == 4 and len(a.read_table("rollups")) > 0


def test_run_history_records_failures(resources, instance):
    @dg.op
    def boom():
        raise RuntimeError("disk on fire")

    @dg.job
    def flaky_job():
        boom()

    failed_run = flaky_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not failed_run.success
    created = pd.Timestamp(instance.get_run_record_by_id(failed_run.run_id).create_timestamp)
    hour = (created.tz_localize("UTC") if created.tzinfo is None else created.tz_convert("UTC")).floor("h")
    run_history = next(a for a in ingestion_assets if a.key == dg.AssetKey("run_history"))
    result = dg.materialize(
        [run_history], partition_key=hour.strftime("%Y-%m-%d-%H:%M"), resources=resources, instance=instance
    )
    assert result.success
    with resources["store"].open() as s:
        runs = s.read_table("runs")
        failures = s.read_metrics(hour, hour + pd.Timedelta("1h"), sources=["dagster:flaky_job"])
    failed = runs[runs.job == "flaky_job"]
    assert failed["status"].tolist() == ["FAILURE"] and "disk on fire" in failed["failure"].iloc[0]
    assert failures.set_index("metric")["value"]["run_failures"] == 1
    assert failed["ts"].iloc[0].floor("h") == hour  # filed under its creation hour, the partition that read it
    other = hour - pd.Timedelta("1h")  # the hour before does not see it
    assert dg.materialize(
        [run_history], partition_key=other.strftime("%Y-%m-%d-%H:%M"), resources=resources, instance=instance
    ).success
    with resources["store"].open() as s:
        assert s.read_metrics(other, other + pd.Timedelta("1h"), sources=["dagster:flaky_job"]).empty


def test_the_same_partition_on_influxdb_gives_the_same_rows(influx_server, resources, instance, monkeypatch):
    from rhythm_pipelines.defs.resources import InfluxStoreResource, store_from_env

    influx_server.create_database("dagster_assets")
    monkeypatch.setenv("RHYTHM_STORE", "influx")
    monkeypatch.setenv("RHYTHM_INFLUX_URL", influx_server.url)
    monkeypatch.setenv("RHYTHM_INFLUX_TOKEN", "a-token")
    monkeypatch.setenv("RHYTHM_INFLUX_BUCKET", "dagster_assets")
    influx = store_from_env()
    assert isinstance(influx, InfluxStoreResource)
    on_influx = {**resources, "store": influx}
    assert dg.materialize(ingestion_assets, partition_key=PARTITION, resources=on_influx, instance=instance).success
    assert dg.materialize(ingestion_assets, partition_key=PARTITION, resources=resources, instance=instance).success
    window = (T0, T0 + pd.Timedelta("1h"))
    with influx.process_config_and_initialize().open() as a, resources["store"].open() as b:
        pd.testing.assert_frame_equal(a.read_metrics(*window), b.read_metrics(*window))
        pd.testing.assert_frame_equal(a.read_table("channel_calls"), b.read_table("channel_calls"))
        pd.testing.assert_frame_equal(a.read_table("rollups"), b.read_table("rollups"))
        assert len(a.read_table("quarantine")) == len(b.read_table("quarantine")) == 8
