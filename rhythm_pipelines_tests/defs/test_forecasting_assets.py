"""The forecasting assets, materialized for real: a 3-day backfill of training and accuracy, live forecasts,
and the nightly schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.definitions import defs
from rhythm_pipelines.defs.forecasting import cpu_forecasts, forecast_accuracy, forecaster_models
from rhythm_pipelines.defs.resources import ModelRegistryResource, SQLiteStoreResource
from rhythm_pipelines.forecasting.registry import CURRENT, ModelRegistry
from rhythm_pipelines_tests.conftest import T0

DAYS = 5  # 2026-03-02 .. 2026-03-06
HOSTS = ("web-01", "db-01")
CHANNEL = "gpt-4o@us-east-1"
MODELS = ["naive", "median", "seasonal_naive", "ets"]  # a small zoo keeps the test quick
TRAIN = {"window_days": 2.0, "models": MODELS}


def _cycle(ts: pd.DatetimeIndex) -> np.ndarray:
    return np.sin(2 * np.pi * np.asarray((ts - T0) / pd.Timedelta("1D")))


def _ar(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    e, out, acc = rng.normal(0, sigma, n), np.empty(n), 0.0
    for i in range(n):
        acc = 0.9 * acc + e[i]
        out[i] = acc
    return out


@pytest.fixture
def fleet(tmp_path):
    """Minute points of 5 days: CPU and memory of two hosts (daily cycle + AR noise), a channel's latency."""
    ts = pd.date_range(T0, T0 + pd.Timedelta(days=DAYS), freq="min", inclusive="left")
    rng = np.random.default_rng(0)
    frames = []
    for host in HOSTS:
        for metric, level, amp, sigma in (("cpu_percent", 40, 15, 1.5), ("mem_percent", 55, 5, 0.3)):
            values = level + amp * _cycle(ts) + _ar(rng, len(ts), sigma)
            frames.append(pd.DataFrame({"ts": ts, "source": host, "metric": metric, "value": values}))
    latency = 800 * (1 + 0.3 * _cycle(ts)) * np.exp(rng.normal(0, 0.2, len(ts)))
    frames.append(pd.DataFrame({"ts": ts, "source": CHANNEL, "metric": "latency_ms_p50", "value": latency}))
    store = SQLiteStoreResource(path=str(tmp_path / "metrics.db"))
    with store.open() as s:
        s.write_metrics(pd.concat(frames, ignore_index=True).assign(tags=None))
    return {"store": store, "model_registry": ModelRegistryResource(root=str(tmp_path / "models"))}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    assert events, f"{asset} was not materialized"
    return events[0].materialization.metadata


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_a_three_day_backfill_builds_a_walk_forward_model_history_and_scores_it(fleet, tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [forecaster_models, forecast_accuracy],
            resources=fleet,
            instance=instance,
            run_config={"ops": {"forecaster_models": {"config": TRAIN}}},
            tags={
                "dagster/asset_partition_range_start": "2026-03-03",
                "dagster/asset_partition_range_end": "2026-03-05",
            },
        )
        assert result.success
        materialized = {(e.asset_key.to_user_string(), e.partition) for e in result.get_asset_materialization_events()}
        days = ("2026-03-03", "2026-03-04", "2026-03-05")
        assert {("forecaster_models", d) for d in days} <= materialized

    trained = _metadata(result, "forecaster_models")
    assert trained["series_trained"].value == 3 * 5 and trained["series_failed"].value == 0
    assert _check(result, "every_series_trained").passed

    registry = ModelRegistry(tmp_path / "models")
    assert sorted(registry.series()) == sorted(
        [(h, m) for h in HOSTS for m in ("cpu_percent", "mem_percent")] + [(CHANNEL, "latency_ms_p50")]
    )
    for day in days:  # each partition trained on the window that ends with its day
        mv = registry.meta("web-01", "cpu_percent", tag=f"partition-{day}")
        assert pd.Timestamp(mv.meta["train_end"]) == pd.Timestamp(day, tz="UTC") + pd.Timedelta("23h55min")
        assert pd.Timestamp(mv.meta["train_start"]) == pd.Timestamp(day, tz="UTC") - pd.Timedelta("1D")
    served = registry.tagged("web-01", "cpu_percent", CURRENT)
    assert served == registry.tagged("web-01", "cpu_percent", "partition-2026-03-05")

    # accuracy of day E uses the models of day E-1: 03-03 has none (03-02 was not trained), the others do
    acc = _metadata(result, "forecast_accuracy")
    assert acc["series_scored"].value == 2 * 5
    assert acc["mean_skill_vs_naive"].value > 0.05  # a daily cycle under AR noise: the models beat the last value
    assert "no model tagged partition-2026-03-02" in acc["skipped"].value
    assert "data:image/png;base64," in acc["worst_series"].value
    assert _check(result, "not_worse_than_naive").severity == dg.AssetCheckSeverity.WARN

    # backfilling an older day afterwards adds its models but leaves the newest one served
    with dg.DagsterInstance.ephemeral() as instance:
        older = dg.materialize(
            [forecaster_models],
            resources=fleet,
            instance=instance,
            partition_key="2026-03-02",
            run_config={"ops": {"forecaster_models": {"config": {**TRAIN, "min_history_hours": 20.0}}}},
        )
    assert older.success and _metadata(older, "forecaster_models")["served_versions_moved"].value == 0
    assert registry.tagged("web-01", "cpu_percent", CURRENT) == served


def test_accuracy_check_warns_when_models_lose_to_naive_and_live_forecasts_use_the_served_model(fleet):
    with dg.DagsterInstance.ephemeral() as instance:
        for day in ("2026-03-04", "2026-03-05"):
            assert dg.materialize(
                [forecaster_models],
                resources=fleet,
                instance=instance,
                partition_key=day,
                run_config={"ops": {"forecaster_models": {"config": TRAIN}}},
            ).success
        # a tolerance of -1 demands a skill above 100%: every model "loses", the check warns
        strict = dg.materialize(
            [forecast_accuracy],
            resources=fleet,
            instance=instance,
            partition_key="2026-03-05",
            run_config={"ops": {"forecast_accuracy": {"config": {"skill_tolerance": -1.0}}}},
        )
        evaluation = _check(strict, "not_worse_than_naive")
        assert not evaluation.passed and evaluation.metadata["worse_than_naive"].value == 5

        live = dg.materialize(
            [cpu_forecasts],
            resources=fleet,
            instance=instance,
            run_config={"ops": {"cpu_forecasts": {"config": {"now": "2026-03-06T10:07:00Z"}}}},
        )
    meta = _metadata(live, "cpu_forecasts")
    assert meta["sources_forecast"].value == 2 and meta["rows_written"].value == 2 * 12
    assert "15min" in meta["forecasts"].value and "1h" in meta["forecasts"].value
    with fleet["store"].open() as s:
        rows = s.read_table("forecasts")
    assert set(rows["source"]) == set(HOSTS) and set(rows["metric"]) == {"cpu_percent"}
    # caught up on every whole step to 10:05 (10:05-10:07 is not whole): the forecast starts at 10:05
    assert rows["ts"].min() == pd.Timestamp("2026-03-06 10:05", tz="UTC")
    assert (rows["issued"] == pd.Timestamp("2026-03-06 10:05", tz="UTC")).all()
    assert ((rows["lo_95"] <= rows["lo_80"]) & (rows["lo_80"] <= rows["mean"]) & (rows["mean"] <= rows["hi_80"])).all()
    # the mean one hour out follows the daily cycle near 40 + 15 sin(...)
    at = rows[rows["horizon"] == "1h"]
    truth = 40 + 15 * _cycle(pd.DatetimeIndex(at["ts"]))
    assert np.abs(at["mean"].to_numpy() - truth).max() < 10
    assert "2026-03-06 10:00" in meta["forecasts"].value and _check(live, "forecasts_are_live").passed  # its origin


def test_a_forecast_whose_data_is_older_than_its_horizon_is_refused_not_served(fleet):
    """The demo's data ends; an hour and a half later its "next 15 min" would be in the past."""
    end = T0 + pd.Timedelta(days=DAYS)
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize(
            [forecaster_models], resources=fleet, instance=instance, partition_key="2026-03-05",
            run_config={"ops": {"forecaster_models": {"config": TRAIN}}},
        ).success  # fmt: skip
        late = dg.materialize(
            [cpu_forecasts], resources=fleet, instance=instance,
            run_config={"ops": {"cpu_forecasts": {"config": {"now": (end + pd.Timedelta("90min")).isoformat()}}}},
        )  # fmt: skip
    meta = _metadata(late, "cpu_forecasts")
    assert meta["sources_forecast"].value == 0 and meta["sources_stale"].value == 2
    assert "more than the 1h horizon: no live forecast" in meta["skipped"].value
    check = _check(late, "forecasts_are_live")
    assert not check.passed and check.metadata["stale_sources"].value == 2


def test_the_nightly_schedule_retrains_yesterday_and_live_forecasts_run_every_15_minutes():
    schedule = defs.resolve_schedule_def("forecast_training_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 6, 0, 30, tzinfo=UTC))
    (request,) = schedule.evaluate_tick(ctx).run_requests
    assert request.partition_key == "2026-03-05"
    job = defs.resolve_job_def("forecast_training_job")
    assert job.asset_layer.executable_asset_keys >= {dg.AssetKey("forecaster_models"), dg.AssetKey("forecast_accuracy")}
    assert defs.resolve_schedule_def("live_forecasts_schedule").cron_schedule == "*/15 * * * *"


def test_a_series_without_a_model_gets_its_first_one_once_it_has_three_hours(tmp_path):
    """The real host of a fresh `make dev`: no model, so no live forecast, until the nightly training; now a
    sensor trains a first one as soon as three hours are stored."""
    from rhythm_pipelines.defs.forecasting import first_models_sensor, forecast_first_models_job

    now = pd.Timestamp.now(tz="UTC").floor("min")
    store = SQLiteStoreResource(path=str(tmp_path / "metrics.db"))
    resources = {"store": store, "model_registry": ModelRegistryResource(root=str(tmp_path / "models"))}

    def write(hours: float, host: str) -> None:
        ts = pd.date_range(end=now, periods=int(hours * 60), freq="min")
        values = 40 + 10 * np.sin(np.arange(len(ts)) / 30)
        with store.open() as s:
            s.write_metrics(pd.DataFrame({"ts": ts, "source": host, "metric": "cpu_percent", "value": values}))

    write(1, "young-host")
    with dg.DagsterInstance.ephemeral() as instance:
        skip = first_models_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(skip, dg.SkipReason) and "1 still gathering" in skip.skip_message
        write(4, "old-host")
        req = first_models_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert req.run_config["ops"]["train_first_models"]["config"]["series"] == ["cpu:old-host"]
        result = forecast_first_models_job.execute_in_process(
            run_config=req.run_config, resources=resources, instance=instance
        )
        assert result.success
        live = dg.materialize([cpu_forecasts], resources=resources, instance=instance)
    meta = _metadata(live, "cpu_forecasts")
    assert meta["sources_forecast"].value == 1 and "old-host" in meta["forecasts"].value
    assert "young-host" in meta["skipped"].value and "no trained model yet" in meta["skipped"].value
    assert _check(live, "forecasts_are_live").passed  # a series still without a model is expected, not stale
