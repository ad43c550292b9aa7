"""Anomaly detection over the metrics store, one time window at a time (pure: no Dagster).

For a window ``[start, end)`` every series worth scoring is read with ``history`` before ``start`` (one read
for all series), ``detect`` runs causally over history + window, and the window's points keep their
scores and flags. Events are assembled over history + window too, so an event is the same whichever window
computes it; a window reports the events that *start* inside it, plus the events that started before it
and are still open in it (their end moves on: :func:`save_window` never shortens a stored event).

Scores are stored as derived series: metric ``anomaly_score:M`` of the same source (``SCORE_PREFIX``),
value = the score (1 = the alert bar), tags ``{"flagged": true}`` on flagged points. Derived series are
never scored themselves.

Which series are scored: every (source, metric) with at least ``min_points`` points in history + window
(the threshold's warm-up: a shorter series can never be flagged) and one in the window, except derived
series and cumulative counters (``proc_cpu_seconds``: its rate, ``proc_cpu_percent``, is scored).
Per-process sources (``host/proc/...``) are scored by default (hung workers and leaks live there); the
host sampler's top-N processes enter and leave, so many of theirs fall under ``min_points`` and are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.channels import CHANNEL_TESTS
from rhythm_pipelines.anomaly.events import AlertEvent, assemble_events, events_frame
from rhythm_pipelines.anomaly.profiles import AUTO, detect_stored
from rhythm_pipelines.metrics.schema import SCORE_PREFIX, is_derived, tags_to_json
from rhythm_pipelines.metrics.store import MetricsStore, utc

DEFAULT_HISTORY = pd.Timedelta("48h")
MIN_POINTS = 100
CHUNK = pd.Timedelta("24h")  # a long range is scored a day at a time (one read each)
CUMULATIVE_METRICS = frozenset({"proc_cpu_seconds"})  # counters that only grow: their rates are scored
SERIES_COLUMNS = ["source", "metric", "points", "history_points", "flagged", "events", "max_score"]
FLAGGED_TAGS = tags_to_json({"flagged": True})  # the tags of a flagged point of a score series
SCORE_COLUMNS = ["ts", "source", "metric", "value", "score", "flagged"]


def score_metric(metric: str) -> str:
    """The name of the derived series holding ``metric``'s anomaly score."""
    return SCORE_PREFIX + metric


def series_to_score(series: pd.DataFrame, include_processes: bool = True) -> pd.DataFrame:
    """The (source, metric) pairs worth scoring among ``series`` (columns source, metric)."""
    keep = ~series["metric"].map(is_derived) & ~series["metric"].isin(CUMULATIVE_METRICS)
    if not include_processes:
        keep &= ~series["source"].str.contains("/proc/", regex=False)
    return series.loc[keep, ["source", "metric"]].reset_index(drop=True)


@dataclass
class WindowResult:
    """The outcome of scoring one window."""

    start: pd.Timestamp
    end: pd.Timestamp
    method: str
    scores: pd.DataFrame  # SCORE_COLUMNS: the window's points of every scored series
    events: list[AlertEvent] = field(default_factory=list)  # events starting in the window
    continued: list[AlertEvent] = field(default_factory=list)  # started before the window, still open in it
    series: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SERIES_COLUMNS))
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["source", "metric", "points"]))

    @property
    def hours(self) -> float:
        return (self.end - self.start) / pd.Timedelta("1h")

    def score_points(self) -> pd.DataFrame:
        """The window's finite scores as long-format derived series, ready for ``write_metrics``."""
        s = self.scores[np.isfinite(self.scores["score"].to_numpy(dtype="float64"))]
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(s["ts"], utc=True).dt.as_unit("ns"),
                "source": s["source"].to_numpy(dtype=object),
                "metric": (SCORE_PREFIX + s["metric"].astype(str)).to_numpy(dtype=object),
                "value": s["score"].to_numpy(dtype="float64"),
                "tags": np.where(s["flagged"].to_numpy(dtype=bool), FLAGGED_TAGS, None),
            }
        ).reset_index(drop=True)

    def events_frame(self) -> pd.DataFrame:
        """Rows for the ``events`` table (new and continued events), the method in each payload."""
        frame = events_frame(self.events + self.continued)
        frame["payload"] = [json.dumps({**json.loads(p), "method": self.method}) for p in frame["payload"]]
        return frame


def detect_window(
    points: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    method: str = AUTO,
    min_points: int = MIN_POINTS,
    history: pd.Timedelta = DEFAULT_HISTORY,
    calls: pd.DataFrame | None = None,
) -> WindowResult:
    """Score long-format ``points`` (history + window, sorted by source, metric, ts) for ``[start, end)``.

    ``method`` ``auto`` judges each series by its metric's profile (``profiles``); ``calls`` (rows of the
    ``channel_calls`` table over the same span) let it test channel metrics on the raw calls.

    Continued events are those open at ``start`` whose start lies in the later half of the history (an
    event starting in the cold first half could come out differently in the window that starts it).
    """
    start, end = utc(start), utc(end)
    continued_from = start - history / 2
    score_frames, rows, skipped = [], [], []
    events: list[AlertEvent] = []
    continued: list[AlertEvent] = []
    for (source, metric), g in points.groupby(["source", "metric"], sort=True):
        ts = pd.DatetimeIndex(g["ts"])
        inside = np.asarray((ts >= start) & (ts < end))
        if not inside.any():
            continue  # nothing new to score
        if len(g) < min_points:
            skipped.append((source, metric, len(g)))
            continue
        values = g["value"].to_numpy(dtype="float64")
        scores, flags = detect_stored(values, ts, source, metric, method, calls)
        found = assemble_events(ts, scores, flags, source, metric)
        mine = [e for e in found if start <= e.start < end]
        events += mine
        continued += [e for e in found if continued_from <= e.start < start and e.end >= start]
        score_frames.append(
            pd.DataFrame(
                {
                    "ts": ts[inside],
                    "source": source,
                    "metric": metric,
                    "value": values[inside],
                    "score": scores[inside],
                    "flagged": flags[inside],
                }
            )
        )
        window_scores = scores[inside]
        rows.append(
            (
                source,
                metric,
                int(inside.sum()),
                int((~inside).sum()),
                int(flags[inside].sum()),
                len(mine),
                float(np.nanmax(window_scores)) if np.isfinite(window_scores).any() else float("nan"),
            )
        )
    scores_frame = (
        pd.concat(score_frames, ignore_index=True)
        if score_frames
        else pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "ts" else object) for c in SCORE_COLUMNS})
    )
    return WindowResult(
        start,
        end,
        method,
        scores_frame,
        events,
        continued,
        pd.DataFrame(rows, columns=SERIES_COLUMNS),
        pd.DataFrame(skipped, columns=["source", "metric", "points"]),
    )


def score_window(
    store: MetricsStore,
    start: pd.Timestamp,
    end: pd.Timestamp,
    method: str = AUTO,
    history: pd.Timedelta = DEFAULT_HISTORY,
    min_points: int = MIN_POINTS,
    include_processes: bool = True,
) -> WindowResult:
    """Read every series worth scoring over ``[start - history, end)`` in one query (and the channels' raw
    calls, for ``auto``) and score the window."""
    start, end = utc(start), utc(end)
    wanted = series_to_score(store.list_series(), include_processes)
    if wanted.empty:
        points = pd.DataFrame(columns=["ts", "source", "metric", "value"])
    else:
        # sources x metrics may add pairs we do not want (a host's metric under a process): filter them after
        points = store.read_metrics(
            start - history, end, sources=sorted(set(wanted["source"])), metrics=sorted(set(wanted["metric"]))
        )
        points = points.merge(wanted, on=["source", "metric"], how="inner", sort=False)
        points = points.sort_values(["source", "metric", "ts"], kind="stable", ignore_index=True)
    calls = None
    if method == AUTO and (wanted["metric"].isin(CHANNEL_TESTS) & wanted["source"].str.contains("@")).any():
        calls = store.read_table("channel_calls", start - history, end)
    return detect_window(points, start, end, method, min_points, history, calls)


def merge_stored_events(store: MetricsStore, frame: pd.DataFrame) -> pd.DataFrame:
    """Combine events about to be written with the stored ones of the same id: the later end and the higher
    peak win, so re-running an older window after a newer one never shortens an event."""
    if frame.empty:
        return frame
    starts = pd.to_datetime(frame["ts"], utc=True)
    stored = store.read_table("events", starts.min(), starts.max() + pd.Timedelta("1ns"))
    stored = stored[stored["event_id"].isin(set(frame["event_id"]))]
    if stored.empty:
        return frame
    old = stored.set_index("event_id")
    out = frame.copy()
    for i, row in out.iterrows():
        if row["event_id"] not in old.index:
            continue
        prev = old.loc[row["event_id"]]
        if pd.notna(prev["end"]) and pd.Timestamp(prev["end"]) > pd.Timestamp(row["end"]):
            out.at[i, "end"] = prev["end"]
        if pd.notna(prev["score"]) and float(prev["score"]) > float(row["score"]):
            out.at[i, "score"], out.at[i, "severity"] = prev["score"], prev["severity"]
            out.at[i, "payload"] = prev["payload"]
    return out


def save_window(store: MetricsStore, result: WindowResult) -> tuple[int, int]:
    """Upsert the window's score series and its events; returns (score points, event rows) written."""
    points = store.write_metrics(result.score_points()) if not result.scores.empty else 0
    events = merge_stored_events(store, result.events_frame())
    return points, store.write_table("events", events) if not events.empty else 0


def windows(
    start: pd.Timestamp, end: pd.Timestamp, chunk: pd.Timedelta = CHUNK
) -> Iterator[tuple[pd.Timestamp, pd.Timestamp]]:
    """``[start, end)`` cut into consecutive windows of at most ``chunk`` (a long backfill, a day at a time)."""
    a = utc(start)
    while a < utc(end):
        b = min(a + chunk, utc(end))
        yield a, b
        a = b


def alert_rates(series: pd.DataFrame, hours: float) -> dict[str, float]:
    """Flags and events per scored series per hour, over the fleet (a detector gone noisy raises both)."""
    n = len(series)
    if n == 0 or hours <= 0:
        return {"series": n, "flags_per_series_hour": 0.0, "events_per_series_hour": 0.0}
    return {
        "series": n,
        "flags_per_series_hour": float(series["flagged"].sum()) / (n * hours),
        "events_per_series_hour": float(series["events"].sum()) / (n * hours),
    }
