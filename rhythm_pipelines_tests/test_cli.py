"""The `rhythm` command line, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines.metrics.store import open_store
from rhythm_pipelines_tests.conftest import FIXTURES, T0

RHYTHM = [sys.executable, "-m", "rhythm_pipelines.cli"]
SIM_ARGS = [
    "--hosts",
    "2",
    "--channels",
    "1",
    "--regions",
    "1",
    "--days",
    "0.5",
    "--seed",
    "4",
    "--start",
    "2026-03-02T00:00:00Z",
]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*RHYTHM, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_simulate_then_ingest(tmp_path):
    out = tmp_path / "sim"
    sim = run("simulate", "-o", str(out), *SIM_ARGS)
    assert sim.returncode == 0, sim.stderr
    summary = json.loads(sim.stdout)
    assert summary["incidents"] == len(pd.read_csv(summary["files"]["incidents"])) > 0
    again = run("simulate", "-o", str(tmp_path / "again"), *SIM_ARGS)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "calls" / "sim-4.jsonl").read_bytes() == (out / "calls" / "sim-4.jsonl").read_bytes()

    db = tmp_path / "m.db"
    ingest = run(
        "ingest",
        "--store",
        f"sqlite:///{db}",
        "--landing",
        str(out),
        "--start",
        "2026-03-02T00:00",
        "--end",
        "2026-03-02T12:00",
    )
    assert ingest.returncode == 0, ingest.stderr
    report = json.loads(ingest.stdout)
    assert report["hours"] == 12 and report["quarantined"] == 0 and report["calls"] == summary["calls"]
    with SQLiteMetricsStore(db) as s:
        assert len(s.read_metrics(T0, T0 + pd.Timedelta("12h"), metrics=["cpu_percent"])) == 2 * 720


def test_bad_log_is_reported_by_file_row_and_field(tmp_path):
    (tmp_path / "calls").mkdir()
    (tmp_path / "calls" / "gw.jsonl").write_text((FIXTURES / "calls_mixed.jsonl").read_text())
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "broken.csv").write_text("ts,source,value\n2026-03-02,h,1\n")
    store, hour = f"sqlite:///{tmp_path / 'm.db'}", ["--start", "2026-03-02T00:00", "--end", "2026-03-02T01:00"]
    ingest = ["ingest", "--store", store, "--landing", str(tmp_path), *hour]
    res = run(*ingest)
    assert res.returncode == 2
    assert "broken.csv, field 'metric': missing required column" in res.stderr
    (tmp_path / "metrics" / "broken.csv").unlink()
    res = run(*ingest)
    assert res.returncode == 0
    assert "gw.jsonl, row 7, field 'status': must be one of ok, error, timeout" in res.stderr
    assert json.loads(res.stdout)["quarantined"] == 6


def test_agent_samples_into_a_store(tmp_path):
    res = run(
        "agent",
        "--store",
        str(tmp_path / "a.db"),
        "--interval",
        "0.5",
        "--count",
        "2",
        "--host",
        "agent-1",
        "--landing",
        str(tmp_path / "landing"),
    )
    assert res.returncode == 0, res.stderr
    with SQLiteMetricsStore(tmp_path / "a.db") as s:
        got = s.read_metrics(
            pd.Timestamp.now(tz="UTC") - pd.Timedelta("5min"), pd.Timestamp.now(tz="UTC"), sources=["agent-1"]
        )
    assert got["ts"].nunique() == 2 and "net_recv_bytes_per_s" in set(got["metric"])
    assert list((tmp_path / "landing" / "metrics" / "host" / "agent-1").rglob("*.jsonl"))


def test_store_urls(tmp_path, monkeypatch):
    with open_store(f"sqlite:///{tmp_path}/x.db") as s:
        assert isinstance(s, SQLiteMetricsStore) and s.path == tmp_path / "x.db"
    with pytest.raises(ValueError, match="unsupported store URL scheme 'mysql'"):
        open_store("mysql://x")
    with open_store(f"sqlite://{tmp_path}/y.db") as s:
        assert s.path == tmp_path / "y.db"
    with open_store(str(tmp_path / "z.db")) as s:
        assert s.path == tmp_path / "z.db"
    monkeypatch.setenv("RHYTHM_INFLUX_TOKEN", "secret")
    from rhythm_pipelines.metrics.influx import InfluxMetricsStore

    with open_store("influx://127.0.0.1:9?bucket=fleet&org=ops") as s:
        assert isinstance(s, InfluxMetricsStore)
        assert (s.url, s.bucket, s.org, s._token) == ("http://127.0.0.1:9", "fleet", "ops", "secret")


def test_demo_seed_says_what_it_does_in_a_few_lines_and_leaves_a_healing_report(tmp_path):
    """`make dev`'s first step, on a small demo (6 hours): one line per step, Dagster's output in a log file,
    and a healing report of the demo's day with the replayed incidents on it."""
    import os
    import shutil

    import dagster as dg

    home, dagster_home = tmp_path / "rhythm", tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", dagster_home)
    env = {**os.environ, "RHYTHM_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    env.pop("RHYTHM_STORE", None)
    seed = subprocess.run(
        [*RHYTHM, "demo-seed", "--days", "0.25"], capture_output=True, text=True, timeout=600, env=env
    )
    assert seed.returncode == 0, seed.stdout[-3000:] + seed.stderr[-3000:]
    lines = seed.stdout.strip().splitlines()
    steps = int(next(line for line in lines if line.startswith("[1/")).split("/")[1].split("]")[0])
    # two lines of header, two per step (its title, "done in"), and the replay's one-line summary
    assert steps <= 9 and len(lines) <= 2 + 2 * steps + 1 and "DEBUG" not in seed.stdout, seed.stdout
    assert any(line.startswith("[1/") for line in lines) and lines[-1].strip().startswith("done in")
    assert "RUN_SUCCESS" in (home / "demo-seed.log").read_text()
    assert list((home / "landing" / "metrics" / "demo").rglob("*.jsonl"))  # hour files, not one big file
    with SQLiteMetricsStore(home / "metrics.db") as store:
        log = store.read_table("healing_log")
    assert log["run_id"].str.startswith("replay:").all()  # the seed touched nothing: a dry-run replay only
    today = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        (record,) = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("healing_report"), asset_partitions=[today]), limit=1
        ).records
    replayed = record.asset_materialization.metadata["replayed_events"].value
    detected_today = (log["step"] == "detect") & (pd.to_datetime(log["ts"], utc=True) >= pd.Timestamp(today, tz="UTC"))
    assert replayed == log.loc[detected_today, "event_id"].nunique()
