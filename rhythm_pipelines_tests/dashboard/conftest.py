"""A store filled the way two days of running fill it, and the real `rhythm dashboard` process over it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import requests

from rhythm_pipelines.healing.routing import set_route
from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines.simulate import SimConfig, Simulation, simulate
from rhythm_pipelines.simulate.history import fill

START = pd.Timestamp("2026-03-02 00:00", tz="UTC")  # a Monday
AS_OF = START + pd.Timedelta(days=2, hours=13, minutes=30)  # mid-afternoon of the third day


@dataclass
class Filled:
    sim: Simulation
    db: Path
    landing: Path
    as_of: pd.Timestamp

    def open(self) -> SQLiteMetricsStore:
        return SQLiteMetricsStore(self.db)


@pytest.fixture(scope="session")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """Three simulated days (six hosts, four channels in two regions) and the product's history of them."""
    root = tmp_path_factory.mktemp("dashboard")
    sim = simulate(SimConfig(days=2.6, seed=3, start=START))
    with SQLiteMetricsStore(root / "metrics.db") as store:
        fill(store, sim, seed=3, heal_rate=0.7)  # some incidents stay open
    sim.write(root / "landing")  # the labelled incidents the anomaly KPIs are judged on
    return Filled(sim, root / "metrics.db", root / "landing", AS_OF)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    started_in_s: float
    log: Path


def start_dashboard(db: Path, landing: Path, log: Path, *extra: str, dagster_home: Path | None = None) -> Server:
    port = free_port()
    outer = ("DAGSTER_HOME", "RHYTHM_HEALING_DIR", "RHYTHM_MODEL_REGISTRY")  # this machine's, not the test's
    env = {k: v for k, v in os.environ.items() if k not in outer}
    env |= {"RHYTHM_LANDING_DIR": str(landing), "RHYTHM_HOME": str(log.parent / "home")}  # healing state, models
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    cmd = [sys.executable, "-m", "rhythm_pipelines.cli", "dashboard", "--store", f"sqlite:///{db}",
           "--port", str(port), "--refresh", "1", *extra]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() - t0 < 30:
        if proc.poll() is not None:
            raise AssertionError(f"rhythm dashboard exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if requests.get(url + "/", timeout=1).status_code == 200:
                return Server(url, proc, time.monotonic() - t0, log)
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"rhythm dashboard did not answer in 30 s: {log.read_text()[-2000:]}")


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)


@pytest.fixture(scope="session")
def dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Dagster instance on disk with one succeeded and one failed run (job ``__ephemeral_asset_job__``)."""
    import dagster as dg

    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    @dg.asset
    def fine() -> int:
        return 1

    @dg.asset
    def broken() -> int:
        raise RuntimeError("a failing asset, on purpose")

    with dg.instance_for_test(temp_dir=str(home)) as instance:
        assert dg.materialize([fine], instance=instance).success
        assert not dg.materialize([broken], instance=instance, raise_on_error=False).success
    return home


@pytest.fixture(scope="session")
def dashboard(filled: Filled, dagster_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`rhythm dashboard --as-of` over the filled store (a fixed "now", so figures can be checked exactly),
    with the Dagster instance of ``dagster_home``."""
    log = tmp_path_factory.mktemp("dashboard-log") / "dashboard.log"
    set_route(log.parent / "home" / "healing" / "routes.json", "gpt-4o@us-east-1", "gpt-4o@eu-west-1",
              filled.as_of + pd.Timedelta(minutes=10), "gpt-4o@us-east-1|high_latency|test")  # fmt: skip
    server = start_dashboard(
        filled.db, filled.landing, log, "--as-of", filled.as_of.isoformat(), dagster_home=dagster_home
    )
    yield server
    stop(server)
