from __future__ import annotations

import shutil

import dagster as dg
import pytest

from rhythm_pipelines.defs.resources import LandingZone, SQLiteStoreResource
from rhythm_pipelines_tests.conftest import FIXTURES


@pytest.fixture
def resources(tmp_path, monkeypatch):
    monkeypatch.setenv("RHYTHM_HOME", str(tmp_path / "home"))  # the sampler key and any state stay in the test
    landing = tmp_path / "landing"
    (landing / "calls").mkdir(parents=True)
    (landing / "metrics").mkdir(parents=True)
    shutil.copy(FIXTURES / "calls_mixed.jsonl", landing / "calls")
    shutil.copy(FIXTURES / "metrics_mixed.csv", landing / "metrics")
    return {"store": SQLiteStoreResource(path=str(tmp_path / "metrics.db")), "landing": LandingZone(root=str(landing))}


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst
