"""Retraining when a forecast drifts: a host whose CPU turns volatile (a regime change) makes its model's error
jump in forecast_accuracy; the drift sensor asks to retrain that series alone, from the change on, and says
why; the retrain serves a new model. The rule's two triggers on plain rows too."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from rhythm_pipelines.defs.forecasting import (
    forecast_accuracy,
    forecast_drift_sensor,
    forecast_retrain_job,
    forecaster_models,
)
from rhythm_pipelines.defs.resources import ModelRegistryResource, SQLiteStoreResource
from rhythm_pipelines.forecasting.drift import drifted
from rhythm_pipelines.forecasting.registry import CURRENT, ModelRegistry

MODELS = ["naive", "median", "seasonal_naive", "ets"]


def test_the_rule_flags_a_losing_streak_and_a_jump_and_nothing_else():
    day = pd.Timestamp("2026-03-10", tz="UTC")
    rows = []
    for i in range(6):
        t = day + pd.Timedelta(days=i)
        rows.append({"ts": t, "target": "cpu", "source": "losing", "skill": -0.1 if i >= 3 else 0.2, "mae": 1.0})
        rows.append({"ts": t, "target": "cpu", "source": "jumped", "skill": 0.3, "mae": 5.0 if i == 5 else 1.0})
        rows.append({"ts": t, "target": "cpu", "source": "fine", "skill": -0.1 if i in (2, 4) else 0.1, "mae": 1.2})
    found = {d.source: d for d in drifted(pd.DataFrame(rows))}
    assert set(found) == {"losing", "jumped"}  # two bad days apart is not a streak
    assert (
        found["losing"].since == day + pd.Timedelta(days=3) and "lost to Naive 3 days running" in found["losing"].reason
    )
    assert found["jumped"].since == day + pd.Timedelta(days=5) and "MAE jumped to 5.0x" in found["jumped"].reason


def test_a_regime_change_triggers_a_retrain_of_that_series_alone(tmp_path):
    t0 = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=6)
    change = t0 + pd.Timedelta(days=5)  # yesterday: the CPU of web-01 turns volatile
    ts = pd.date_range(t0, change + pd.Timedelta(days=1), freq="min", inclusive="left")
    rng = np.random.default_rng(3)
    cycle = 15 * np.sin(2 * np.pi * np.asarray((ts - t0) / pd.Timedelta("1D")))
    frames = []
    for host in ("web-01", "db-01"):
        noise = rng.normal(0, 1.0, len(ts))
        if host == "web-01":
            noise = np.where(ts >= change, rng.normal(0, 15.0, len(ts)), noise)
        frames.append(pd.DataFrame({"ts": ts, "source": host, "metric": "cpu_percent", "value": 40 + cycle + noise}))
    resources = {
        "store": SQLiteStoreResource(path=str(tmp_path / "metrics.db")),
        "model_registry": ModelRegistryResource(root=str(tmp_path / "models")),
    }
    with resources["store"].open() as s:
        s.write_metrics(pd.concat(frames, ignore_index=True).assign(tags=None))
    train = {"targets": ["cpu"], "window_days": 2.0, "models": MODELS}
    with dg.DagsterInstance.ephemeral() as instance:
        for d in range(1, 6):  # train each day, score the next: days 2-4 are the usual error, day 5 the change
            day = f"{t0 + pd.Timedelta(days=d):%Y-%m-%d}"
            assets = [forecaster_models, forecast_accuracy] if d > 1 else [forecaster_models]  # day 1: none to score
            config = {"ops": {"forecaster_models": {"config": train}}}
            if d > 1:
                config["ops"]["forecast_accuracy"] = {"config": {"targets": ["cpu"]}}
            result = dg.materialize(
                assets, partition_key=day, resources=resources, instance=instance, run_config=config
            )
            assert result.success
        with resources["store"].open() as s:
            scored = s.read_table("forecast_accuracy")
        assert set(scored["ts"]) == {t0 + pd.Timedelta(days=d) for d in range(2, 6)}
        requests = forecast_drift_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        (req,) = requests
        assert req.run_key == f"retrain|cpu:web-01|{change:%Y-%m-%d}"  # web-01 only, once for the day
        op = req.run_config["ops"]["retrain_series"]["config"]
        assert op["series"] == ["cpu:web-01"] and pd.Timestamp(op["since"]) == change
        assert req.tags["rhythm/retrain_reason"].startswith("MAE jumped to")
        registry = ModelRegistry(tmp_path / "models")
        before = registry.tagged("web-01", "cpu_percent", CURRENT)
        run = forecast_retrain_job.execute_in_process(run_config=req.run_config, resources=resources,
                                                      instance=instance, tags=req.tags)  # fmt: skip
        assert run.success
        after = registry.tagged("web-01", "cpu_percent", CURRENT)
        assert after != before  # a new model serves web-01, trained from the change on
        _, meta = registry.load("web-01", "cpu_percent", after)
        assert pd.Timestamp(meta.meta["train_start"]) >= change - pd.Timedelta(hours=12)  # not the old regime
