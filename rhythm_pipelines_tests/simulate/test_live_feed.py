"""The demo feed: the simulated fleet's newest minutes as hour files that hourly ingestion reads."""

import dagster as dg
import pandas as pd

from rhythm_pipelines.defs.demo import demo_traffic
from rhythm_pipelines.defs.resources import LandingZone
from rhythm_pipelines.metrics.ingest import ingest_call_logs, ingest_metric_files
from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines.simulate.live import next_minutes


def test_the_feed_resumes_where_it_stopped_and_catches_up_at_most_an_hour():
    now = pd.Timestamp("2026-11-30 12:34:56", tz="UTC")
    sim = next_minutes(pd.Timestamp("2026-11-30 12:30", tz="UTC"), now)
    assert sim.metrics["ts"].min() == pd.Timestamp("2026-11-30 12:30", tz="UTC")
    assert sim.metrics["ts"].max() == pd.Timestamp("2026-11-30 12:33", tz="UTC") and sim.incidents.empty
    assert next_minutes(pd.Timestamp("2026-11-30 12:34", tz="UTC"), now) is None  # 12:34 is not whole yet
    late = next_minutes(pd.Timestamp("2026-11-29", tz="UTC"), now)
    assert late.metrics["ts"].min() == pd.Timestamp("2026-11-30 11:34", tz="UTC")


def test_the_sensor_writes_hour_files_that_the_hourly_ingestion_reads(tmp_path):
    """No recorded fleet in the landing zone: the feed simulates."""
    landing = LandingZone(root=str(tmp_path / "landing"))
    start = pd.Timestamp.now(tz="UTC").floor("min") - pd.Timedelta("5min")
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_sensor_context(instance=instance, cursor=start.isoformat(), resources={"landing": landing})
        result = demo_traffic(ctx)
        assert "appended" in result.skip_message and pd.Timestamp(ctx.cursor) > start
        again = dg.build_sensor_context(instance=instance, cursor=ctx.cursor, resources={"landing": landing})
        assert "no whole minute" in demo_traffic(again).skip_message  # nothing written twice
    files = sorted((tmp_path / "landing").rglob("*.jsonl"))
    assert {f.parts[-4] for f in files} == {"metrics", "calls"} and all(f.parent.parent.name == "demo" for f in files)
    with SQLiteMetricsStore(tmp_path / "m.db") as store:
        hour = start.floor("h")
        m = ingest_metric_files(store, tmp_path / "landing" / "metrics", hour, hour + pd.Timedelta("2h"))
        c = ingest_call_logs(store, tmp_path / "landing" / "calls", hour, hour + pd.Timedelta("2h"))
    assert m.rows > 0 and c.rows > 0 and not m.quarantined and not c.quarantined


def test_the_feed_replays_the_recorded_fleet_from_a_day_no_incident_touched(tmp_path):
    """The seeded history goes on at its own levels: yesterday's hour, shifted a day, unless an incident was
    near it (then the day before)."""
    from rhythm_pipelines.simulate import SimConfig, simulate
    from rhythm_pipelines.simulate.live import feed, write_hour_files

    now = pd.Timestamp("2026-11-30 12:34:56", tz="UTC")
    history = simulate(SimConfig(days=3, seed=0, start=pd.Timestamp("2026-11-27 12:00", tz="UTC")))
    landing = tmp_path / "landing"
    write_hour_files(history, landing)
    (landing / "incidents").mkdir()
    pd.DataFrame(  # an incident labelled yesterday 11:50-12:10: the 12:00 hour of yesterday is not replayed
        {"start": ["2026-11-29T11:50:00Z"], "end": ["2026-11-29T12:10:00Z"], "source": ["db-01"]}
    ).to_csv(landing / "incidents" / "sim-0.csv", index=False)
    end, points, calls, how = feed(landing, pd.Timestamp("2026-11-30 12:30", tz="UTC"), now)
    assert how == "replayed from the recorded fleet" and end == pd.Timestamp("2026-11-30 12:34", tz="UTC")
    written = pd.read_json(landing / "metrics" / "demo" / "2026-11-30" / "12.jsonl", lines=True, dtype=False)
    mine = written[pd.to_datetime(written["ts"], utc=True) >= pd.Timestamp("2026-11-30 12:30", tz="UTC")]
    two_days_ago = history.metrics[
        (history.metrics["ts"] >= pd.Timestamp("2026-11-28 12:30", tz="UTC"))
        & (history.metrics["ts"] < pd.Timestamp("2026-11-28 12:34", tz="UTC"))
    ]
    assert len(mine) == points == len(two_days_ago)  # 2 days back: yesterday's hour had an incident
    assert sorted(mine["value"].round(6)) == sorted(two_days_ago["value"].round(6))
    log = pd.read_json(landing / "calls" / "demo" / "2026-11-30" / "12.jsonl", lines=True, dtype=False)
    replayed = log[log["request_id"].str.endswith("@20261130")]
    assert len(replayed) == calls and replayed["request_id"].is_unique  # new calls, not the old ones again
    with SQLiteMetricsStore(tmp_path / "m.db") as store:
        hour = pd.Timestamp("2026-11-30 12:00", tz="UTC")
        c = ingest_call_logs(store, landing / "calls", hour, hour + pd.Timedelta("1h"))
    assert not c.quarantined
