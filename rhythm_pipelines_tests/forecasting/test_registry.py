"""The model registry (a local directory and S3 through moto) and the Forecaster serving from it."""

from __future__ import annotations

import shutil

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from rhythm_pipelines.forecasting.registry import ModelRegistry
from rhythm_pipelines.forecasting.serving import Forecaster, horizon_steps, train_series
from rhythm_pipelines_tests.forecasting.conftest import STEP, noisy_level

SOURCE, METRIC = "gpt-4o@us-east-1", "latency_ms/p95"  # a '/' and an '@' must survive as path segments


def _train(n: int = 600, seed: int = 0):
    s = noisy_level(n, seed=seed)
    return s, train_series(s.index, s.to_numpy(), 12, ("naive", "ets", "arima"), SOURCE, METRIC)


def _round_trip(registry: ModelRegistry) -> None:
    s, first = _train(seed=0)
    _, second = _train(seed=1)
    v1 = registry.save(SOURCE, METRIC, first.model, first.meta)
    v2 = registry.save(SOURCE, METRIC, second.model, second.meta)
    assert (v1.version, v2.version) == (1, 2) and registry.versions(SOURCE, METRIC) == [1, 2]
    assert registry.series() == [(SOURCE, METRIC)]
    model, mv = registry.load(SOURCE, METRIC)  # the latest
    assert mv.version == 2 and mv.meta["model"] == second.meta["model"]
    assert {"statsforecast", "numpy", "pandas"} <= set(mv.meta["libraries"])
    assert mv.meta["train_points"] == 600 and mv.meta["step"] == "5min" and mv.meta["cv"]
    np.testing.assert_allclose(model.forecast().mean, second.model.forecast().mean)
    old, mv1 = registry.load(SOURCE, METRIC, version=1)
    np.testing.assert_allclose(old.forecast().mean, first.model.forecast().mean)
    with pytest.raises(LookupError, match="no version 7"):
        registry.load(SOURCE, METRIC, version=7)
    with pytest.raises(LookupError, match="no model"):
        registry.load(SOURCE, "cpu_percent")
    # tags: a partition's model is found by its tag; "current" only moves to a model trained on newer data
    assert registry.promote(SOURCE, METRIC, 2) and registry.tagged(SOURCE, METRIC, "current") == 2
    older = {**first.meta, "train_end": "2026-01-01T00:00:00+00:00"}
    v3 = registry.save(SOURCE, METRIC, first.model, older, tags=["partition-2025-12-31"])
    assert not registry.promote(SOURCE, METRIC, v3.version)
    assert registry.load(SOURCE, METRIC)[1].version == 2  # the served model stays the newer one
    assert registry.load(SOURCE, METRIC, tag="partition-2025-12-31")[1].version == 3
    with pytest.raises(LookupError, match="no model tagged"):
        registry.load(SOURCE, METRIC, tag="partition-2020-01-01")
    with pytest.raises(ValueError, match="a tag is"):
        registry.tag(SOURCE, METRIC, "../escape", 2)


def test_local_registry_round_trip(tmp_path):
    _round_trip(ModelRegistry(tmp_path / "models"))
    # a version whose metadata never landed (a crash mid-save) is not served
    series = tmp_path / "models" / "gpt-4o%40us-east-1" / "latency_ms%2Fp95"
    (series / "v000004").mkdir()
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(LookupError, match="no version 4"):
        registry.meta(SOURCE, METRIC, version=4)
    shutil.rmtree(series / "tags")  # untagged: the newest complete version is served
    assert registry.meta(SOURCE, METRIC).version == 3


@mock_aws
def test_s3_registry_round_trip():
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="rhythm-models")
    registry = ModelRegistry("s3://rhythm-models/prod/forecasts", s3_client=client)
    _round_trip(registry)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="rhythm-models")["Contents"]]
    assert "prod/forecasts/gpt-4o%40us-east-1/latency_ms%2Fp95/v000002/model.pkl" in keys


def test_forecaster_follows_new_points_and_predicts_with_intervals(tmp_path):
    registry = ModelRegistry(tmp_path)
    full = noisy_level(700, seed=5)
    trained = train_series(full.index[:600], full.to_numpy()[:600], 12, ("naive", "ets"), SOURCE, METRIC)
    registry.save(SOURCE, METRIC, trained.model, trained.meta)
    f = Forecaster(registry)
    out = f.predict(SOURCE, METRIC, "1h")
    assert list(out.columns) == ["ds", "mean", "lo-80", "hi-80", "lo-95", "hi-95"] and len(out) == 12
    assert out["ds"].iloc[0] == full.index[599] + STEP
    assert ((out["lo-95"] <= out["lo-80"]) & (out["lo-80"] <= out["mean"]) & (out["mean"] <= out["hi-95"])).all()
    assert len(f.predict(SOURCE, METRIC, "15min")) == 3 and len(f.predict(SOURCE, METRIC, 30)) == 30
    # points already seen are ignored; newer ones move the state (no refit) and the forecast's start
    assert f.update(SOURCE, METRIC, full.index[590:650], full.to_numpy()[590:650]) == 50
    moved = f.predict(SOURCE, METRIC, "1h")
    assert moved["ds"].iloc[0] == full.index[649] + STEP
    reference = train_series(full.index[:600], full.to_numpy()[:600], 12, ("naive", "ets"))
    reference.model.update(full.to_numpy()[600:650])
    np.testing.assert_allclose(moved["mean"], reference.model.forecast().mean)
    info = f.info(SOURCE, METRIC)
    assert info["version"] == 1 and info["last_seen"] == full.index[649].isoformat()
    assert horizon_steps("1h", pd.Timedelta("10s")) == 360 and horizon_steps("7min", STEP) == 2
    with pytest.raises(ValueError, match="shorter than one step"):
        horizon_steps("0s", STEP)
