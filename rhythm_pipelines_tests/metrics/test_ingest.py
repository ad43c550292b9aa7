"""Ingestion of a window: idempotent, quarantines bad rows, backfill equals the live path."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.host import HostSampler, points_frame
from rhythm_pipelines.metrics.ingest import build_rollups, ingest_call_logs, ingest_metric_files
from rhythm_pipelines.metrics.landing import append_spool
from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines_tests.conftest import FIXTURES, T0

H1 = T0 + pd.Timedelta("1h")


def landing_with_fixtures(tmp_path):
    (tmp_path / "landing" / "calls").mkdir(parents=True)
    (tmp_path / "landing" / "metrics").mkdir(parents=True)
    shutil.copy(FIXTURES / "calls_mixed.jsonl", tmp_path / "landing" / "calls")
    shutil.copy(FIXTURES / "calls_mixed.csv", tmp_path / "landing" / "calls")
    shutil.copy(FIXTURES / "metrics_mixed.csv", tmp_path / "landing" / "metrics")
    return tmp_path / "landing"


def test_rerunning_a_window_changes_nothing(store, tmp_path):
    landing = landing_with_fixtures(tmp_path)
    for _ in range(2):
        calls = ingest_call_logs(store, landing / "calls", T0, H1)
        metrics = ingest_metric_files(store, landing / "metrics", T0, H1)
        assert (calls.rows, len(calls.quarantined)) == (5, 8)
        assert (metrics.rows, len(metrics.quarantined)) == (3, 2)
    assert len(store.read_table("channel_calls")) == 5
    quarantine = store.read_table("quarantine")
    assert len(quarantine) == 10 and not quarantine.duplicated(["origin", "row"]).any()
    assert set(quarantine["kind"]) == {"calls", "metrics"}
    points = store.read_metrics(T0, H1)
    assert not points.duplicated(["source", "metric", "ts"]).any()
    assert points[points.source == "web-01"]["value"].tolist() == [12.5, 13.0, 14.5]
    assert {"gpt-4o@us-east-1", "mistral-small@us-east-1", "llama-70b@eu-west-1"} <= set(points["source"])


def test_bad_rows_do_not_touch_what_is_stored(sqlite_store, tmp_path):
    landing = landing_with_fixtures(tmp_path)
    ingest_metric_files(sqlite_store, landing / "metrics", T0, H1)
    before = sqlite_store.read_metrics(T0, H1)
    (landing / "metrics" / "worse.csv").write_text(
        "ts,source,metric,value\n2026-03-02T00:00:00Z,web-01,cpu_percent,oops\n"
    )
    report = ingest_metric_files(sqlite_store, landing / "metrics", T0, H1)
    assert [(e.origin.split("/")[-1], e.row, e.field) for e in report.quarantined][-1] == ("worse.csv", 1, "value")
    pd.testing.assert_frame_equal(sqlite_store.read_metrics(T0, H1), before)


def test_backfill_from_the_spool_yields_the_live_rows(tmp_path):
    sampler = HostSampler(host="test-host", top_n=3)
    landing = tmp_path / "landing"
    live = SQLiteMetricsStore(tmp_path / "live.db")
    base = T0.timestamp()
    for k, offset in enumerate((3580.0, 3590.0, 3600.0, 3610.0)):  # crosses the hour boundary
        frame = points_frame(sampler.sample(now=base + offset + k * 0.001))
        live.write_metrics(frame)
        append_spool(landing, sampler.host, frame)
    rebuilt = SQLiteMetricsStore(tmp_path / "backfill.db")
    report = ingest_metric_files(rebuilt, landing / "metrics", T0, T0 + pd.Timedelta("2h"))
    assert report.rows > 0 and not report.quarantined
    span = (T0, T0 + pd.Timedelta("2h"))
    a, b = live.read_metrics(*span), rebuilt.read_metrics(*span)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["ts"].dt.hour) == {0, 1}


def test_rollups(sqlite_store):
    ts = pd.date_range(T0, periods=120, freq="1min")
    values = np.arange(120.0)
    sqlite_store.write_metrics(
        pd.DataFrame({"ts": ts, "source": "h", "metric": "cpu_percent", "value": values, "tags": None})
    )
    r = build_rollups(sqlite_store, T0, T0 + pd.Timedelta("2h"))
    assert r["ts"].tolist() == [T0, H1]
    first = r.iloc[0]
    assert (first["mean"], first["p50"], first["max"], first["count"]) == (29.5, 29.5, 59.0, 60)
    assert first["p95"] == np.percentile(values[:60], 95)
    again = build_rollups(sqlite_store, T0, T0 + pd.Timedelta("2h"))
    assert len(sqlite_store.read_table("rollups")) == len(again) == 2


def test_repeated_request_ids_are_counted(sqlite_store, tmp_path):
    (tmp_path / "calls").mkdir()
    line = (
        '{"timestamp": "2026-03-02T00:00:05Z", "channel": "c", "region": "r", "latency_ms": %d, '
        '"status": "ok", "request_id": "req-9"}\n'
    )
    (tmp_path / "calls" / "a.jsonl").write_text(line % 10 + line % 10 + line % 12)
    report = ingest_call_logs(sqlite_store, tmp_path / "calls", T0, H1)
    assert report.rows == 1 and report.extra["duplicate_calls"] == 1  # the same call twice: one call
    assert report.extra["conflicting_calls"] == 1  # the same id with other content: the later row is refused
    assert sqlite_store.read_table("channel_calls")["latency_ms"].tolist() == [10.0]  # the first one stays
    (q,) = report.quarantined
    assert (q.row, q.field) == (3, "request_id")
    assert "already seen at" in q.reason and "a.jsonl row 1" in q.reason and "latency_ms 10.0 vs 12.0" in q.reason
