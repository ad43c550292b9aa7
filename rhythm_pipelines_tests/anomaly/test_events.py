"""Alert events from flags, and scoring the simulator's incidents."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.evaluate import probation_rows, score_simulation
from rhythm_pipelines.anomaly.events import assemble_events, events_frame, severity_of

TS = pd.date_range("2026-03-02", periods=20, freq="5min", tz="UTC")


def test_one_event_per_excursion_merged_across_short_gaps():
    scores = np.zeros(20)
    scores[[3, 4, 5, 6]] = [1.2, 2.0, 0.6, 0.4]  # in multiples of the alert bar
    scores[8], scores[15] = 1.1, 4.0
    flags = np.zeros(20, dtype=bool)
    flags[[3, 4, 8, 15]] = True
    events = assemble_events(TS, scores, flags, "db-01", "cpu_percent")
    # 3..5 is one excursion (4 is inside it, 6 is under the hold); 8 is 15 min later: merged;
    # 15 is 35 min after 8: a new event
    assert [(e.start, e.end, e.peak, e.score, e.severity) for e in events] == [
        (TS[3], TS[8], TS[4], 2.0, "major"),
        (TS[15], TS[15], TS[15], 4.0, "critical"),
    ]
    assert events[0].event_id == "db-01|cpu_percent|anomaly|2026-03-02T00:15:00+00:00"
    frame = events_frame(events)
    assert frame["event_id"].is_unique and frame["severity"].tolist() == ["major", "critical"]
    assert events_frame([]).empty and severity_of(0.5) == "minor"


def test_simulator_incidents_are_all_scored(small_sim):
    table, total = score_simulation(small_sim, "zscore")
    assert (total.tp, total.fp, total.fn) == (table["tp"].sum(), table["fp"].sum(), table["fn"].sum())
    scored = table.set_index(["source", "metric"])
    incidents = small_sim.incidents
    # every incident lands in its own series' row, and each is found or missed exactly once
    assert scored["incidents"].sum() == len(incidents)
    n = len(small_sim.metrics[small_sim.metrics.metric == "cpu_percent"]) // len(small_sim.hosts)
    late = incidents["start"] >= small_sim.metrics["ts"].min() + pd.Timedelta(minutes=probation_rows(n))
    assert total.tp + total.fn == int(late.sum())
    assert {"cpu_percent", "mem_percent", "error_rate", "latency_ms_p95"} <= set(table["metric"])
