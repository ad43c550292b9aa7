"""Scoring a window of the store: history read before it, events that start in it, idempotent saves."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.pipeline import (
    SCORE_PREFIX,
    detect_window,
    save_window,
    score_window,
    series_to_score,
    windows,
)
from rhythm_pipelines.metrics.ingest import build_rollups
from rhythm_pipelines_tests.conftest import T0

H = pd.Timedelta("1h")
MIN = pd.Timedelta("1min")


def cpu_series(
    source: str, spikes: list[tuple[pd.Timestamp, pd.Timedelta]], seed: int = 0, height: float = 45.0
) -> pd.DataFrame:
    """Minute points of cpu_percent from T0 - 48 h to T0 + 3 h: noise around 40, bursts ``height`` higher
    (each burst taller than the one before: a burst must beat the series' own recent record)."""
    ts = pd.date_range(T0 - 48 * H, T0 + 3 * H, freq="min", inclusive="left")
    values = np.random.default_rng(seed).normal(40.0, 2.0, len(ts))
    for i, (at, length) in enumerate(spikes):
        values[(ts >= at) & (ts < at + length)] += height * (1 + i)
    return pd.DataFrame({"ts": ts, "source": source, "metric": "cpu_percent", "value": values, "tags": None})


def test_events_are_those_starting_in_the_window(sqlite_store):
    # one burst in the history (3 h before), one inside the window
    sqlite_store.write_metrics(cpu_series("db-01", [(T0 - 3 * H, 5 * MIN), (T0 + 20 * MIN, 5 * MIN)]))
    result = score_window(sqlite_store, T0, T0 + H)
    assert [(e.source, e.metric) for e in result.events] == [("db-01", "cpu_percent")]
    event = result.events[0]
    assert event.start == T0 + 20 * MIN and event.severity in ("major", "critical")
    assert result.continued == []  # the history burst ended hours ago
    # scores of the window's points only: 60 minutes, the burst's first minute flagged
    assert len(result.scores) == 60 and result.scores["ts"].between(T0, T0 + H - MIN).all()
    flagged = result.scores.loc[result.scores["flagged"], "ts"].tolist()
    assert flagged and flagged[0] == T0 + 20 * MIN
    row = result.series.iloc[0]
    assert (row["points"], row["history_points"], row["events"]) == (60, 48 * 60, 1)


def test_history_makes_the_start_of_the_window_warm(sqlite_store):
    sqlite_store.write_metrics(cpu_series("db-01", [(T0 + 5 * MIN, 5 * MIN)]))
    warm = score_window(sqlite_store, T0, T0 + H)
    assert [e.start for e in warm.events] == [T0 + 5 * MIN]
    # without history the window alone is too short to score ...
    cold = score_window(sqlite_store, T0, T0 + H, history=pd.Timedelta(0))
    assert cold.series.empty and cold.skipped[["source", "points"]].values.tolist() == [["db-01", 60]]
    # ... and scored anyway, the detector is still warming up 5 minutes in: the burst is missed
    cold = score_window(sqlite_store, T0, T0 + H, history=pd.Timedelta(0), min_points=1)
    assert cold.events == [] and not cold.scores["flagged"].any()


def test_an_event_is_the_same_whichever_window_computes_it(sqlite_store):
    sqlite_store.write_metrics(cpu_series("db-01", [(T0 + 20 * MIN, 5 * MIN)]))
    hour = score_window(sqlite_store, T0, T0 + H).events
    two_hours = score_window(sqlite_store, T0 - H, T0 + H).events
    assert hour == two_hours and len(hour) == 1
    assert score_window(sqlite_store, T0 + H, T0 + 2 * H).events == []  # the next hour does not repeat it


def test_an_open_event_continues_into_the_next_window_and_is_never_shortened(sqlite_store):
    sqlite_store.write_metrics(cpu_series("db-01", [(T0 + 55 * MIN, 20 * MIN)]))  # 00:55 .. 01:15
    first = score_window(sqlite_store, T0, T0 + H)
    save_window(sqlite_store, first)
    (event,) = first.events
    assert event.start == T0 + 55 * MIN and event.end < T0 + H  # all the first hour can know

    second = score_window(sqlite_store, T0 + H, T0 + 2 * H)
    assert second.events == [] and [e.event_id for e in second.continued] == [event.event_id]
    save_window(sqlite_store, second)
    stored = sqlite_store.read_table("events")
    assert stored["event_id"].tolist() == [event.event_id]
    longer = stored["end"].iloc[0]
    assert longer >= T0 + 75 * MIN  # the burst lasts until 01:15

    save_window(sqlite_store, first)  # re-running the first hour later keeps the longer end
    again = sqlite_store.read_table("events")
    assert again["event_id"].tolist() == [event.event_id] and again["end"].iloc[0] == longer


def test_saving_twice_upserts_and_scores_are_derived_series(sqlite_store):
    sqlite_store.write_metrics(cpu_series("db-01", [(T0 + 20 * MIN, 5 * MIN)]))
    result = score_window(sqlite_store, T0, T0 + H)
    assert save_window(sqlite_store, result) == (60, 1)
    assert save_window(sqlite_store, result) == (60, 1)
    scores = sqlite_store.read_metrics(T0, T0 + H, metrics=[SCORE_PREFIX + "cpu_percent"])
    assert len(scores) == 60 and len(sqlite_store.read_table("events")) == 1
    np.testing.assert_allclose(scores["value"].to_numpy(), result.scores["score"].to_numpy())
    assert (
        scores.loc[scores["tags"].notna(), "ts"].tolist() == result.scores.loc[result.scores["flagged"], "ts"].tolist()
    )
    # a score series is not scored again, nor rolled up
    rescored = score_window(sqlite_store, T0, T0 + H)
    assert rescored.series[["source", "metric"]].values.tolist() == [["db-01", "cpu_percent"]]
    assert not build_rollups(sqlite_store, T0, T0 + H)["metric"].str.startswith(SCORE_PREFIX).any()


def test_which_series_are_scored():
    series = pd.DataFrame(
        [
            ("db-01", "cpu_percent"),
            ("db-01", SCORE_PREFIX + "cpu_percent"),
            ("db-01/proc/42", "proc_cpu_percent"),
            ("db-01/proc/42", "proc_cpu_seconds"),
            ("gpt@eu", "latency_ms_p95"),
        ],
        columns=["source", "metric"],
    )
    assert series_to_score(series).values.tolist() == [
        ["db-01", "cpu_percent"],
        ["db-01/proc/42", "proc_cpu_percent"],
        ["gpt@eu", "latency_ms_p95"],
    ]
    assert series_to_score(series, include_processes=False)["source"].tolist() == ["db-01", "gpt@eu"]


def test_an_empty_window_and_range_chunks():
    empty = pd.DataFrame(columns=["ts", "source", "metric", "value"])
    result = detect_window(empty, T0, T0 + H)
    assert result.scores.empty and result.events == [] and result.score_points().empty
    cuts = list(windows(T0, T0 + 50 * H))
    assert [b - a for a, b in cuts] == [24 * H, 24 * H, 2 * H] and cuts[0][0] == T0 and cuts[-1][1] == T0 + 50 * H


def test_auto_judges_a_channel_on_its_raw_calls_from_the_store(sqlite_store):
    from rhythm_pipelines.metrics.calls import channel_minute_metrics

    rng = np.random.default_rng(5)
    n = 6 * 60 * 3  # 6 hours of 3 calls a minute before and through the window
    ts = T0 - 5 * H + pd.to_timedelta(np.sort(rng.uniform(0, 6 * 3600, n)), unit="s")
    status = np.where(rng.random(n) < 0.01, "error", "ok")
    burst = (ts >= T0 + 20 * MIN) & (ts < T0 + 30 * MIN)
    status[burst & (rng.random(n) < 0.6)] = "error"
    calls = pd.DataFrame(
        {
            "ts": ts,
            "call_id": [f"c{i}" for i in range(n)],
            "channel": "gpt-4o",
            "region": "us-east-1",
            "latency_ms": 800 * np.exp(rng.normal(0, 0.3, n)),
            "status": status,
            "tokens_in": 500,
            "tokens_out": 200,
            "cost_usd": 0.003,
            "task": "chat",
            "origin": "test",
        }
    )
    sqlite_store.write_table("channel_calls", calls)
    sqlite_store.write_metrics(channel_minute_metrics(calls))
    auto = score_window(sqlite_store, T0, T0 + H)
    flagged = auto.scores[auto.scores["flagged"].astype(bool)]
    errors = flagged[flagged["metric"] == "error_rate"]
    assert len(errors) == 1 and T0 + 20 * MIN <= errors["ts"].iloc[0] < T0 + 30 * MIN
    metrics = {e.metric for e in auto.events}
    assert "error_rate" in metrics and not metrics & {"latency_ms_p95", "cost_usd"}  # latency and cost held
