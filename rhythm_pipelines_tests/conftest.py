"""Shared fixtures: real stores (an SQLite file, a real influxd process), small simulations."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from rhythm_pipelines.metrics.influx import InfluxMetricsStore
from rhythm_pipelines.metrics.influx_local import LocalInflux
from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines.metrics.store import MetricsStore
from rhythm_pipelines.simulate import SimConfig, Simulation, simulate

FIXTURES = Path(__file__).parent / "fixtures"
T0 = pd.Timestamp("2026-03-02 00:00", tz="UTC")  # a Monday


@pytest.fixture(scope="session")
def influx_server() -> Iterator[LocalInflux]:
    """A real influxd (Debian's influxdb package). Missing influxd fails loudly: `make test` installs it."""
    if shutil.which("influxd") is None:
        pytest.fail("influxd is not installed: run the tests through `make test`, which installs Debian's influxdb")
    with LocalInflux() as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def interrupts_as_a_terminal_gives_them() -> None:
    """A shell that starts the tests in the background leaves SIGINT ignored, and Dagster maps SIGTERM to
    whatever SIGINT does (``setup_interrupt_handlers``): SIGTERM would then be ignored by this process and,
    ignored dispositions surviving exec, by every worker it starts, which only SIGKILL would end. The tests
    run as from a terminal, however they were launched."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


_db_counter = iter(range(10**6))


@pytest.fixture(params=["sqlite", "influx"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetricsStore]:
    """Each store implementation, fresh for every test."""
    if request.param == "sqlite":
        s: MetricsStore = SQLiteMetricsStore(tmp_path / "metrics.db")
    else:
        server = request.getfixturevalue("influx_server")
        db = f"test{next(_db_counter)}"
        server.create_database(db)
        s = InfluxMetricsStore(server.url, token="test-token", bucket=db, batch_size=1000)
    with s:
        yield s


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteMetricsStore]:
    with SQLiteMetricsStore(tmp_path / "metrics.db") as s:
        yield s


@pytest.fixture(scope="session")
def small_sim() -> Simulation:
    """Two days, 4 hosts, 2 channels x 2 regions, fixed start."""
    return simulate(SimConfig(hosts=4, channels=2, regions=2, days=2, seed=11, start=T0, incidents_per_day=8))


@pytest.fixture
def spawn():
    """Start a chaos workload (``kind``, extra args) tagged uniquely; every one is killed at teardown."""
    started: list[subprocess.Popen] = []

    def start(kind: str, *args: str, tag: str | None = None) -> tuple[subprocess.Popen, str]:
        tag = tag or f"rhythm-test-{kind}-{uuid.uuid4().hex[:8]}"
        cmd = [sys.executable, "-m", "rhythm_pipelines.chaos.workloads", kind, "--tag", tag, *args]
        p = subprocess.Popen(cmd)
        started.append(p)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until the interpreter is up and its cmdline visible
            try:
                if tag in " ".join(psutil.Process(p.pid).cmdline()):
                    break
            except psutil.Error:
                pass
            time.sleep(0.05)
        return p, tag

    yield start
    for p in started:
        try:
            for child in psutil.Process(p.pid).children(recursive=True):
                child.kill()
        except psutil.Error:
            pass
        p.kill()
        p.wait(timeout=10)
