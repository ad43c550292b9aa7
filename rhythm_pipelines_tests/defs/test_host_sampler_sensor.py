"""The host sampler sensor: a real tick on this machine, its cursor, and the hourly run request."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from rhythm_pipelines.defs.sensors import INGEST_GRACE_S, host_sampler


def tick(instance, resources, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return host_sampler(context), context.cursor


def test_tick_writes_samples_and_spool_and_keeps_counters(instance, resources, monkeypatch):
    monkeypatch.setenv("RHYTHM_HOST", "sensor-host")
    result, cursor = tick(instance, resources)
    assert isinstance(result, dg.SkipReason) and "points written" in result.skip_message
    state = json.loads(cursor)["sampler"]
    assert {"ts", "cpu"} <= set(state) and "procs" not in state  # one entry per process: kept in a file
    assert len(cursor) < 400 and "first sample" in result.skip_message
    now = pd.Timestamp.now(tz="UTC")
    with resources["store"].open() as s:
        got = s.read_metrics(now - pd.Timedelta("5min"), now + pd.Timedelta("1min"), sources=["sensor-host"])
        everything = s.read_metrics(now - pd.Timedelta("5min"), now + pd.Timedelta("1min"))
    assert {"cpu_percent", "mem_percent", "zombie_count"} <= set(got["metric"])
    assert everything["source"].str.startswith("sensor-host").all()  # the host and its top processes
    assert everything["source"].str.startswith("sensor-host/proc/").any()
    spooled = list((resources["landing"].path / "metrics" / "host" / "sensor-host").rglob("*.jsonl"))
    assert len(spooled) == 1 and len(spooled[0].read_text().splitlines()) == len(everything)

    result, cursor2 = tick(instance, resources, cursor)  # second tick: rates from the carried counters
    with resources["store"].open() as s:
        got = s.read_metrics(now - pd.Timedelta("5min"), now + pd.Timedelta("1min"), sources=["sensor-host"])
    assert "net_recv_bytes_per_s" in set(got["metric"])
    with resources["store"].open() as s:
        procs = s.read_metrics(now - pd.Timedelta("5min"), now + pd.Timedelta("1min"), metrics=["proc_cpu_percent"])
    assert len(procs)  # per-process CPU needs the counters of the tick before: carried in the file
    assert json.loads(cursor2)["sampler"]["ts"] > state["ts"]
    assert "s since the last sample" in result.skip_message


def hours_between(previous_ts: float, cursor: str) -> list[str]:
    """Keys of the hours that closed (two minutes ago: late logs) between two sampler timestamps (the spec)."""
    grace = pd.Timedelta(seconds=INGEST_GRACE_S)
    now = pd.Timestamp(json.loads(cursor)["sampler"]["ts"], unit="s", tz="UTC") - grace
    first = (pd.Timestamp(previous_ts, unit="s", tz="UTC") - grace).floor("h")
    hours = pd.date_range(first, now.floor("h"), freq="h")[:-1]  # up to, not including, the current hour
    return [h.strftime("%Y-%m-%d-%H:%M") for h in hours]


def test_closing_hours_request_their_ingestion_runs_once(instance, resources, monkeypatch):
    monkeypatch.setenv("RHYTHM_HOST", "sensor-host")
    _, cursor = tick(instance, resources)
    state = json.loads(cursor)
    previous = state["sampler"]["ts"] - 3 * 3600  # the sampler last ran three hours ago
    state["sampler"]["ts"] = previous
    result, cursor = tick(instance, resources, json.dumps(state))
    assert isinstance(result, dg.SensorResult)
    expected = hours_between(previous, cursor)
    assert len(expected) in (3, 4)  # 4 when this test runs across an hour boundary
    assert [r.partition_key for r in result.run_requests] == expected
    assert [r.run_key for r in result.run_requests] == [f"hourly-ingestion-{k}" for k in expected]

    again, cursor2 = tick(instance, resources, cursor)  # the next tick asks again only if an hour closed
    closed = hours_between(json.loads(cursor)["sampler"]["ts"], cursor2)
    if closed:
        assert [r.partition_key for r in again.run_requests] == closed
    else:
        assert isinstance(again, dg.SkipReason)


def test_host_samples_fresh_check(instance, resources, monkeypatch):
    from rhythm_pipelines.defs.ingestion import host_samples_fresh

    monkeypatch.setenv("RHYTHM_HOST", "fresh-host")
    live = dg.build_asset_check_context()
    stale = host_samples_fresh(live, store=resources["store"])
    assert not stale.passed and stale.metadata["newest_sample_age_s"].value == "none in the last hour"
    tick(instance, resources)
    fresh = host_samples_fresh(live, store=resources["store"])
    assert fresh.passed and fresh.metadata["newest_sample_age_s"].value < 120


def test_a_backfill_of_history_does_not_judge_the_live_sampler(instance, resources, monkeypatch):
    """The demo seed materializes past hours before any sampler runs: the check says so instead of failing."""
    from rhythm_pipelines.defs.ingestion import host_samples_fresh, raw_metrics

    monkeypatch.setenv("RHYTHM_HOST", "fresh-host")
    result = dg.materialize(
        [raw_metrics, host_samples_fresh], partition_key="2026-11-01-10:00", resources=resources, instance=instance
    )
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "host_samples_fresh"]
    assert check.passed and check.metadata["judged"].value is False
    assert "history up to 2026-11-01 11:00" in check.metadata["why"].value
