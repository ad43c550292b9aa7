from __future__ import annotations

import shutil

import dagster as dg
import pytest

from rhythm_pipelines.defs.resources import HealingResource, LandingZone, SQLiteStoreResource
from rhythm_pipelines_tests.conftest import FIXTURES

HEALING_HOST = "heal-host"  # the host name the healing tests' runner believes it is


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


@pytest.fixture
def healing_resources(tmp_path, monkeypatch):
    monkeypatch.setenv("RHYTHM_HOST", HEALING_HOST)
    monkeypatch.setenv("RHYTHM_HOME", str(tmp_path / "home"))  # the sampler key lives there
    monkeypatch.delenv("RHYTHM_PLAYBOOKS", raising=False)
    return {
        "store": SQLiteStoreResource(path=str(tmp_path / "metrics.db")),
        "healing": HealingResource(state_dir=str(tmp_path / "healing")),
        "landing": LandingZone(root=str(tmp_path / "landing")),
    }
