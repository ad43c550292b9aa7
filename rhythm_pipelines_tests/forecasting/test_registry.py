"""The model registry (a local directory and S3 through moto) and the Forecaster serving from it."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("source", ["..", ".", "a/../../x", "../../etc", "%2e%2e", "a\\..\\..\\x"])
def test_hostile_names_stay_inside_the_root(tmp_path, source):
    root = tmp_path / "reg" / "models"
    registry = ModelRegistry(root, hmac_key=b"")
    _, trained = _train(n=300)
    registry.save(source, "..", trained.model, trained.meta)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(root.resolve() in p.resolve().parents for p in written), written
    assert registry.series() == [(source, "..")]
    assert registry.load(source, "..")[1].version == 1
    with pytest.raises(ValueError, match="non-empty"):
        registry.save("", METRIC, trained.model, trained.meta)


def test_a_raw_key_cannot_leave_the_root(tmp_path):
    from rhythm_pipelines.forecasting.registry import LocalStorage

    storage = LocalStorage(tmp_path / "models")
    with pytest.raises(ValueError, match="leaves the registry root"):
        storage.put("../outside.pkl", b"x")
    assert not (tmp_path / "outside.pkl").exists()


def test_a_tampered_model_is_never_unpickled(tmp_path):
    from rhythm_pipelines.forecasting.registry import IntegrityError

    registry = ModelRegistry(tmp_path, hmac_key=b"")
    _, trained = _train(n=300)
    mv = registry.save(SOURCE, METRIC, trained.model, trained.meta)
    assert len(mv.meta["artifact_sha256"]) == 64 and "artifact_hmac" not in mv.meta
    pkl = next(tmp_path.rglob("model.pkl"))
    marker = tmp_path / "pwned"

    class Planted:
        def __reduce__(self):
            return (marker.touch, ())

    import pickle

    pkl.write_bytes(pickle.dumps(Planted()))
    with pytest.raises(IntegrityError, match="does not match its SHA-256"):
        registry.load(SOURCE, METRIC)
    assert not marker.exists()
    meta = next(tmp_path.rglob("meta.json"))  # a version saved before digests is refused, not trusted
    doc = json.loads(meta.read_text())
    del doc["artifact_sha256"]
    meta.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="no artifact_sha256"):
        registry.load(SOURCE, METRIC)
    assert not marker.exists()


def _plant(registry: ModelRegistry, model, meta) -> None:
    """A writer without the key: a model and metadata with a correct digest, but no valid signature."""
    unsigned = ModelRegistry(registry.root, s3_client=getattr(registry.storage, "client", None), hmac_key=b"")
    unsigned.save(SOURCE, METRIC, model, meta)


def _signed_registry_refuses_unsigned(registry: ModelRegistry, other_key: ModelRegistry):
    from rhythm_pipelines.forecasting.registry import IntegrityError

    _, trained = _train(n=300)
    good = registry.save(SOURCE, METRIC, trained.model, trained.meta)
    assert len(good.meta["artifact_hmac"]) == 64
    assert registry.load(SOURCE, METRIC, version=good.version)[1].version == good.version
    _plant(registry, trained.model, trained.meta)
    with pytest.raises(IntegrityError, match="not signed with this registry's key"):
        registry.load(SOURCE, METRIC)  # the newest, planted, version
    with pytest.raises(IntegrityError, match="not signed"):
        other_key.load(SOURCE, METRIC, version=good.version)
    # a signed model moved to another series does not verify there: as it is, or with its metadata edited
    moved = f"{registry._series(SOURCE, 'moved')}v000001/"
    registry.storage.put(
        moved + "model.pkl", registry.storage.get(f"{registry._series(SOURCE, METRIC)}v000001/model.pkl")
    )
    registry.storage.put(moved + "meta.json", json.dumps(good.meta).encode())
    with pytest.raises(IntegrityError, match="its metadata names"):
        registry.load(SOURCE, "moved")
    registry.storage.put(moved + "meta.json", json.dumps({**good.meta, "metric": "moved"}).encode())
    with pytest.raises(IntegrityError, match="not signed"):
        registry.load(SOURCE, "moved")
    # tags are signed too: a tag written without the key is not followed
    registry.tag(SOURCE, METRIC, "current", good.version)
    assert registry.load(SOURCE, METRIC, tag="current")[1].version == good.version
    registry.storage.put(f"{registry._series(SOURCE, METRIC)}tags/current", b"2")
    with pytest.raises(IntegrityError, match="tag 'current' is not signed"):
        registry.load(SOURCE, METRIC, tag="current")
    # a lost key does not silently turn verification off
    keyless = ModelRegistry(registry.root, s3_client=getattr(registry.storage, "client", None), hmac_key=b"")
    with pytest.raises(IntegrityError, match="signed but this registry has no key"):
        keyless.load(SOURCE, METRIC, version=good.version)


def test_local_registry_with_a_key_loads_only_signed_versions(tmp_path):
    _signed_registry_refuses_unsigned(
        ModelRegistry(tmp_path, hmac_key=b"k" * 32), ModelRegistry(tmp_path, hmac_key=b"another key")
    )


@mock_aws
def test_s3_registry_with_a_key_from_the_environment(monkeypatch):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="rhythm-models")
    monkeypatch.setenv("RHYTHM_MODEL_HMAC_KEY", "s3cret-s3cret-s3cret")
    signed = ModelRegistry("s3://rhythm-models/p", s3_client=client)
    assert signed.signed
    _signed_registry_refuses_unsigned(signed, ModelRegistry("s3://rhythm-models/p", client, hmac_key="other"))


def _race(registry_factory, n: int = 8) -> list[int]:
    """``n`` trainings saving the same series at once, each through its own registry object."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    _, trained = _train(n=300)
    barrier = Barrier(n)

    def one(_):
        registry = registry_factory()
        original = registry.versions
        registry.versions = lambda s, m: (barrier.wait(), original(s, m))[1]  # all list before any writes
        return registry.save(SOURCE, METRIC, trained.model, trained.meta).version

    with ThreadPoolExecutor(n) as pool:
        return sorted(pool.map(one, range(n)))


def test_concurrent_saves_take_distinct_versions_locally(tmp_path):
    versions = _race(lambda: ModelRegistry(tmp_path, hmac_key=b""))
    assert versions == list(range(1, 9))
    assert ModelRegistry(tmp_path, hmac_key=b"").versions(SOURCE, METRIC) == versions


@mock_aws
def test_concurrent_saves_take_distinct_versions_on_s3():
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="rhythm-models")
    versions = _race(lambda: ModelRegistry("s3://rhythm-models/p", s3_client=client, hmac_key=b""), n=4)
    assert versions == [1, 2, 3, 4]
