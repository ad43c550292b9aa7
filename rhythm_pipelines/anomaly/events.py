"""From flagged points to alert events: one alert per incident, not a flood.

An event starts at a flagged point and lasts while the score stays at or above ``hold`` (scores are
relative to the alert bar: at 0.5 the excursion is still half-way to the bar); events of one series
closer than ``merge_gap`` are merged. Its severity comes from its peak score: 1.5× the bar is major,
3× is critical. The event id is stable (source, metric, kind, start), so re-running a window upserts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

SEVERITIES = ((3.0, "critical"), (1.5, "major"), (0.0, "minor"))  # by peak score, in multiples of the bar
MERGE_GAP = pd.Timedelta("30min")


@dataclass(frozen=True)
class AlertEvent:
    source: str
    metric: str
    start: pd.Timestamp
    end: pd.Timestamp
    peak: pd.Timestamp
    score: float
    severity: str
    kind: str = "anomaly"

    @property
    def event_id(self) -> str:
        return f"{self.source}|{self.metric}|{self.kind}|{self.start.isoformat()}"


def severity_of(score: float) -> str:
    return next(name for bound, name in SEVERITIES if score >= bound)


def assemble_events(
    timestamps: pd.Series | pd.DatetimeIndex,
    scores: np.ndarray,
    flags: np.ndarray,
    source: str,
    metric: str,
    hold: float = 0.5,
    merge_gap: pd.Timedelta = MERGE_GAP,
) -> list[AlertEvent]:
    ts = pd.DatetimeIndex(timestamps)
    scores = np.asarray(scores, dtype="float64")
    spans: list[list[int]] = []  # [first, last] point indices
    for i in np.flatnonzero(flags):
        if spans and i <= spans[-1][1]:
            continue  # already inside the current excursion
        j = i
        while j + 1 < len(scores) and scores[j + 1] >= hold:
            j += 1
        if spans and ts[i] - ts[spans[-1][1]] <= merge_gap:
            spans[-1][1] = j
        else:
            spans.append([i, j])
    events = []
    for a, b in spans:
        k = a + int(np.argmax(scores[a : b + 1]))
        events.append(AlertEvent(source, metric, ts[a], ts[b], ts[k], float(scores[k]), severity_of(scores[k])))
    return events


def events_frame(events: list[AlertEvent]) -> pd.DataFrame:
    """Events as rows of the store's ``events`` table."""
    return (
        pd.DataFrame(
            {
                "ts": [e.start for e in events],
                "event_id": [e.event_id for e in events],
                "kind": [e.kind for e in events],
                "source": [e.source for e in events],
                "metric": [e.metric for e in events],
                "end": [e.end for e in events],
                "severity": [e.severity for e in events],
                "score": [e.score for e in events],
                "payload": [json.dumps({"peak": e.peak.isoformat()}) for e in events],
            }
        )
        if events
        else pd.DataFrame(columns=["ts", "event_id", "kind", "source", "metric", "end", "severity", "score", "payload"])
    )
