"""Scoring a range a day at a time: the report sums the days, and equals scoring the days one by one."""

from __future__ import annotations

import pandas as pd

from rhythm_pipelines.anomaly.pipeline import score_window
from rhythm_pipelines.anomaly.range_report import events_table, score_range
from rhythm_pipelines_tests.anomaly.test_pipeline import MIN, H, cpu_series
from rhythm_pipelines_tests.conftest import T0


def test_a_range_is_scored_a_day_at_a_time_and_summed(sqlite_store):
    bursts = [(T0 - 30 * H, 5 * MIN), (T0 - 10 * H, 5 * MIN), (T0 + H, 5 * MIN)]
    sqlite_store.write_metrics(cpu_series("db-01", bursts))
    sqlite_store.write_metrics(cpu_series("db-02", [], seed=1))
    heard: list[str] = []
    start, end = T0 - 36 * H, T0 + 3 * H  # 39 hours: two windows (24 h + 15 h)
    report = score_range(sqlite_store, start, end, history=pd.Timedelta("12h"), progress=heard.append)
    assert len(heard) == 2 and heard[0].startswith(str(start))

    days = [
        score_window(sqlite_store, a, b, history=pd.Timedelta("12h"))
        for a, b in [(start, T0 - 12 * H), (T0 - 12 * H, end)]
    ]
    assert [e.start for e in report.events] == [e.start for d in days for e in d.events] == [b[0] for b in bursts]
    s = report.series.set_index("source")
    assert s.loc["db-01", "points"] == 39 * 60 and s.loc["db-01", "events"] == 3 and s.loc["db-02", "events"] == 0
    assert report.flagged == int(s["flagged"].sum()) >= 3
    assert report.points_written == 2 * 39 * 60 and report.events_written == 3
    assert report.nonfinite.empty and report.continued == []
    # the picture shows the series with the most events, over the window that had them
    assert set(report.top["source"]) == {"db-01"} and report.top["flagged"].any()
    by_metric = report.by_metric().set_index("metric")
    assert by_metric.loc["cpu_percent", "series"] == 2 and by_metric.loc["cpu_percent", "events"] == 3
    noisy = report.noisiest()
    assert noisy["source"].tolist()[0] == "db-01"
    assert noisy["events_per_hour"].iloc[0] == 3 / 39
    assert report.rates()["events_per_series_hour"] == 3 / (2 * 39)
    assert events_table(report.events)["start"].tolist() == [b[0] for b in reversed(bursts)]  # newest first


def test_events_of_one_channel_or_host_close_in_time_are_one_incident_newest_first():
    from rhythm_pipelines.anomaly.events import AlertEvent
    from rhythm_pipelines.anomaly.range_report import incidents, readable_score

    t = pd.Timestamp("2026-11-30 08:00", tz="UTC")
    m = pd.Timedelta("1min")

    def ev(source, metric, start, minutes, score):
        a = t + start * m
        return AlertEvent(source, metric, a, a + minutes * m, a, score, "critical" if score >= 3 else "major")

    events = [
        ev("gpt-4o@us-east-1", "latency_ms_p50", 0, 10, 2.0),
        ev("gpt-4o@us-east-1", "latency_ms_p95", 2, 12, 1.7e5),  # one latency incident raises three series
        ev("gpt-4o@us-east-1", "timeout_rate", 20, 5, 1.6),  # 6 min after the others end: the same incident
        ev("web-01/proc/42", "proc_rss_bytes", 5, 30, 1.6),
        ev("web-01", "cpu_percent", 10, 5, 2.5),  # the host and its process: one incident
        ev("gpt-4o@us-east-1", "latency_ms_p50", 120, 5, 1.9),  # two hours later: a new one
    ]
    out = incidents(events)
    assert list(out["entity"]) == ["gpt-4o@us-east-1", "web-01", "gpt-4o@us-east-1"]  # newest first
    first = out.iloc[2]
    assert first["events"] == 3 and first["severity"] == "critical" and first["peak"] == ">100×"
    assert first["series"] == "latency_ms_p50, latency_ms_p95, timeout_rate"
    assert out.iloc[1]["series"] == "42:proc_rss_bytes, cpu_percent"
    assert readable_score(2.46) == "2.5×" and readable_score(float("nan")) == "n/a"
