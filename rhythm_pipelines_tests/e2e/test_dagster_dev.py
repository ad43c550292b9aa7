"""End to end: `dagster dev` (webserver + daemon) on a temporary DAGSTER_HOME, for real.

The host sampler sensor writes this machine's samples; an hourly partition is launched through the
webserver's GraphQL API and run by the daemon through the run queue, and a healing run too, whose page and
the asset graph render in a real browser; the CLI backfills a range of hours
into a second store and gets the same rows as the live path; everything shuts down cleanly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import pytest
from dagster_graphql import DagsterGraphQLClient

from rhythm_pipelines.metrics.influx_local import free_port
from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines_tests.browser import Console, chromium, screenshot
from rhythm_pipelines_tests.conftest import FIXTURES, T0

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FIXTURE_PARTITION = "2026-03-02-00:00"


def wait_for(what: str, predicate, timeout: float, proc: subprocess.Popen, log: Path, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-4000:]}")
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{log.read_text()[-4000:]}")


def host_points(db: Path, host: str) -> pd.DataFrame:
    if not db.exists():
        return pd.DataFrame()
    with SQLiteMetricsStore(db) as s:
        got = s.read_metrics(T0, pd.Timestamp.now(tz="UTC") + pd.Timedelta("1h"))
    return got[got["source"].str.startswith(host)].reset_index(drop=True)


@pytest.fixture
def dev(tmp_path):
    home, rhythm = tmp_path / "dagster_home", tmp_path / "rhythm"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    for kind, name in (("calls", "calls_mixed.jsonl"), ("metrics", "metrics_mixed.csv")):
        (rhythm / "landing" / kind).mkdir(parents=True)
        shutil.copy(FIXTURES / name, rhythm / "landing" / kind / name)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "RHYTHM_HOME": str(rhythm), "RHYTHM_HOST": "e2e-host"}
    env.pop("RHYTHM_STORE", None)
    log = tmp_path / "dagster_dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # a non-interactive shell leaves SIGINT ignored, and dagster dev copies that: restore it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        yield {"proc": proc, "port": port, "env": env, "rhythm": rhythm, "log": log}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def stop_cleanly(proc: subprocess.Popen) -> None:
    """SIGINT, as Ctrl-C in a terminal; every process of the group must be gone."""
    group = [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == proc.pid]
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(60)
    gone, alive = psutil.wait_procs(group, timeout=30)
    assert not alive, f"left running after shutdown: {[p.pid for p in alive]}"


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def the_ui_renders_the_asset_graph_and_the_healing_run(base: str, run_id: str) -> None:
    """Dagster's own UI in Chromium: the asset graph shows the pipeline's assets; the healing run's page shows
    its op and its id. Screenshots: test-artefacts/screenshots/dagster_*.png."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        console = Console(page)
        page.goto(base + "/asset-groups")  # the global lineage: one node per group
        for group in ("ingestion", "anomaly", "forecasting", "healing", "cost"):
            page.get_by_text(group, exact=True).first.wait_for(timeout=90_000)
        page.goto(base + "/locations/rhythm_pipelines/asset-groups/ingestion")  # a group: one node per asset
        for asset in ("raw_metrics", "channel_calls", "hourly_rollups", "run_history"):
            page.get_by_text(asset, exact=True).first.wait_for(timeout=90_000)
        screenshot(page, "dagster_asset_graph")
        page.goto(f"{base}/runs/{run_id}")
        page.get_by_text("heal_event").first.wait_for(timeout=90_000)
        page.get_by_text(run_id.split("-")[0]).first.wait_for(timeout=30_000)
        page.wait_for_function("() => !document.body.innerText.includes('Loading run logs')", timeout=90_000)
        page.get_by_text("healing_job").first.wait_for(timeout=30_000)
        assert page.get_by_text("heal_event").count() >= 2  # its step in the Gantt chart and in the event log
        screenshot(page, "dagster_healing_run")
        assert not [e for e in console.errors if e.startswith("uncaught")], console.errors


def test_dagster_dev_end_to_end(dev, tmp_path):
    proc, port, log, rhythm = dev["proc"], dev["port"], dev["log"], dev["rhythm"]
    db = rhythm / "metrics.db"

    def webserver_up():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).status == 200
        except OSError:
            return False

    wait_for("the webserver", webserver_up, 120, proc, log)

    # the sensor samples this host every ~10 s: wait for two ticks (the second one has the rates)
    def two_samples():
        pts = host_points(db, "e2e-host")
        return not pts.empty and pts[pts.source == "e2e-host"]["ts"].nunique() >= 2

    wait_for("two host samples from the sensor", two_samples, 150, proc, log)
    cpu = host_points(db, "e2e-host").query("source == 'e2e-host' and metric == 'cpu_percent'")
    assert cpu["value"].between(0, 100).all()

    # an hourly partition, launched through the webserver, queued and run by the daemon
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution("hourly_ingestion_job", tags={"dagster/partition": FIXTURE_PARTITION})
    status = wait_for(
        "the hourly ingestion run",
        lambda: (s := client.get_run_status(run_id).value) in ("SUCCESS", "FAILURE", "CANCELED") and s,
        240,
        proc,
        log,
        every=2.0,
    )
    assert status == "SUCCESS", log.read_text()[-4000:]
    with SQLiteMetricsStore(db) as s:
        calls = s.read_table("channel_calls")
        assert len(calls) == 3 and len(s.read_table("rollups", T0, T0 + pd.Timedelta("1h"))) > 0
        assert len(s.read_table("quarantine")) == 8

    # a healing run, launched as the health sensor launches one, then the UI in a real browser
    event = {"kind": "anomaly", "source": "e2e-host", "start": pd.Timestamp.now(tz="UTC").isoformat(),
             "metric": "cpu_percent", "value": 97.0, "detail_json": "{}"}  # fmt: skip
    heal_id = client.submit_job_execution(
        "healing_job", run_config={"ops": {"heal_event": {"config": {"event": event}}}}
    )
    wait_for(
        "the healing run",
        lambda: client.get_run_status(heal_id).value in ("SUCCESS", "FAILURE", "CANCELED"),
        240,
        proc,
        log,
        every=2.0,
    )
    the_ui_renders_the_asset_graph_and_the_healing_run(f"http://127.0.0.1:{port}", heal_id)

    live = host_points(db, "e2e-host")
    stop_cleanly(proc)
    live_after_stop = host_points(db, "e2e-host")

    # the CLI backfill of a range of hours, into a second store, yields the live rows
    hours = live_after_stop["ts"].dt.floor("h")
    first, last = hours.min().strftime("%Y-%m-%d-%H:%M"), hours.max().strftime("%Y-%m-%d-%H:%M")
    env = {**dev["env"], "RHYTHM_SQLITE_PATH": str(tmp_path / "backfill.db")}
    cli = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "rhythm_pipelines.definitions",
            "--select",
            "raw_metrics,hourly_rollups",
            "--partition-range",
            f"{first}...{last}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-4000:]
    rebuilt = host_points(tmp_path / "backfill.db", "e2e-host")
    assert len(live) <= len(live_after_stop)
    pd.testing.assert_frame_equal(rebuilt, live_after_stop)
