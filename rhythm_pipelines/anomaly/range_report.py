"""Score a range of the store a day at a time and sum it up for the operator (pure: no Dagster).

``score_range`` runs ``pipeline.score_window`` + ``save_window`` over each day of ``[start, end)`` and
collects a :class:`RangeReport`: per-series counts over the whole range, the events, the series that
scored non-finite, and the points of the most anomalous series (for a picture).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly import pipeline
from rhythm_pipelines.anomaly.events import AlertEvent
from rhythm_pipelines.metrics.store import MetricsStore, utc

EVENT_COLUMNS = ["source", "metric", "start", "end", "severity", "score"]


@dataclass
class RangeReport:
    start: pd.Timestamp
    end: pd.Timestamp
    method: str
    series: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=pipeline.SERIES_COLUMNS))
    events: list[AlertEvent] = field(default_factory=list)  # starting in the range
    continued: list[AlertEvent] = field(default_factory=list)  # started before the range, still open in it
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["source", "metric", "points"]))
    nonfinite: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=pipeline.SCORE_COLUMNS))
    top: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=pipeline.SCORE_COLUMNS))
    points_written: int = 0
    events_written: int = 0

    @property
    def hours(self) -> float:
        return (self.end - self.start) / pd.Timedelta("1h")

    @property
    def flagged(self) -> int:
        return int(self.series["flagged"].sum()) if len(self.series) else 0

    def rates(self) -> dict[str, float]:
        return pipeline.alert_rates(self.series, self.hours)

    def by_metric(self) -> pd.DataFrame:
        """Series, points, flags, events and the highest score per metric, most eventful first."""
        if self.series.empty:
            return self.series
        out = self.series.groupby("metric", sort=True).agg(
            series=("source", "size"),
            points=("points", "sum"),
            flagged=("flagged", "sum"),
            events=("events", "sum"),
            max_score=("max_score", "max"),
        )
        return out.reset_index().sort_values(["events", "max_score"], ascending=False, kind="stable")

    def noisiest(self) -> pd.DataFrame:
        """Flags and events per hour of the series that raised any, noisiest first."""
        s = self.series[self.series["flagged"] > 0]
        return s.assign(flags_per_hour=s["flagged"] / self.hours, events_per_hour=s["events"] / self.hours).sort_values(
            ["events", "flagged"], ascending=False, kind="stable"
        )[["source", "metric", "flags_per_hour", "events_per_hour"]]

    def severity_counts(self) -> pd.DataFrame:
        return (
            pd.Series([e.severity for e in self.events], dtype=object)
            .value_counts()
            .rename_axis("severity")
            .reset_index()
        )


SCORE_CAP = 100.0  # scores are multiples of the alert bar; past this they only say "far off"
INCIDENT_GAP = pd.Timedelta("15min")
_RANK = {"minor": 0, "major": 1, "critical": 2}


def readable_score(score: float) -> str:
    """A score as a person reads it: multiples of the alert bar (1× = the bar), capped."""
    if not np.isfinite(score):
        return "n/a"
    return f">{SCORE_CAP:g}×" if score > SCORE_CAP else f"{score:.1f}×"


def events_table(events: list[AlertEvent]) -> pd.DataFrame:
    """The events, newest first, scores as multiples of the alert bar."""
    frame = pd.DataFrame(
        [(e.source, e.metric, e.start, e.end, e.severity, e.score) for e in events], columns=EVENT_COLUMNS
    ).sort_values(["start", "source", "metric"], ascending=[False, True, True], kind="stable")
    return frame.assign(score=frame["score"].map(readable_score))


def entity(source: str) -> str:
    """What an event is about: a channel@region, or a host (its processes belong to it)."""
    return source.split("/proc/")[0]


def incidents(events: list[AlertEvent], gap: pd.Timedelta = INCIDENT_GAP) -> pd.DataFrame:
    """Events grouped into incidents: the events of one host or channel@region that overlap or follow within
    ``gap`` are one incident (a latency incident raises p50, p95 and timeouts together). Newest first."""
    cols = ["start", "end", "entity", "severity", "peak", "events", "series"]
    if not events:
        return pd.DataFrame(columns=cols)
    rows: list[dict] = []
    open_: dict[str, dict] = {}
    for e in sorted(events, key=lambda e: (e.start, e.source, e.metric)):
        key = entity(e.source)
        cur = open_.get(key)
        if cur is None or e.start > cur["end"] + gap:
            cur = {"start": e.start, "end": e.end, "entity": key, "severity": e.severity, "peak": e.score,
                   "events": 0, "series": []}  # fmt: skip
            rows.append(cur)
            open_[key] = cur
        cur["end"] = max(cur["end"], e.end)
        cur["events"] += 1
        cur["peak"] = max(cur["peak"], e.score)
        if _RANK.get(e.severity, 0) > _RANK.get(cur["severity"], 0):
            cur["severity"] = e.severity
        name = e.metric if e.source == key else f"{e.source.split('/proc/')[1]}:{e.metric}"
        if name not in cur["series"]:
            cur["series"].append(name)
    out = pd.DataFrame(rows, columns=cols)
    out["series"] = out["series"].map(", ".join)
    out = out.sort_values("start", ascending=False, kind="stable")
    return out.assign(peak=out["peak"].map(readable_score))


def _summary(series: pd.DataFrame) -> pd.DataFrame:
    """Per-series counts summed over the days of a range."""
    if series.empty:
        return pd.DataFrame(columns=pipeline.SERIES_COLUMNS)
    return (
        series.groupby(["source", "metric"], sort=True)
        .agg(
            points=("points", "sum"),
            history_points=("history_points", "max"),
            flagged=("flagged", "sum"),
            events=("events", "sum"),
            max_score=("max_score", "max"),
        )
        .reset_index()
    )


def _rank(series: pd.DataFrame) -> tuple[tuple[int, float], pd.Series] | None:
    """The most anomalous series of a window (most events, then highest score) and its rank."""
    if series.empty:
        return None
    best = series.sort_values(["events", "max_score"], ascending=False, kind="stable").iloc[0]
    return (int(best["events"]), float(np.nan_to_num(best["max_score"], nan=-1.0))), best


def score_range(
    store: MetricsStore,
    start: pd.Timestamp,
    end: pd.Timestamp,
    method: str = pipeline.AUTO,
    history: pd.Timedelta = pipeline.DEFAULT_HISTORY,
    min_points: int = pipeline.MIN_POINTS,
    include_processes: bool = True,
    progress: Callable[[str], None] | None = None,
) -> RangeReport:
    """Score and save ``[start, end)`` a day at a time (one read per day); ``progress`` hears of each day."""
    start, end = utc(start), utc(end)
    report = RangeReport(start, end, method)
    summaries, skipped, nonfinite = [], [], []
    best_rank: tuple[int, float] | None = None
    for a, b in pipeline.windows(start, end):
        result = pipeline.score_window(store, a, b, method, history, min_points, include_processes)
        points, events = pipeline.save_window(store, result)
        report.points_written += points
        report.events_written += events
        report.events += result.events
        report.continued += [e for e in result.continued if e.start < start]  # a range's own events go on
        summaries.append(result.series)
        skipped.append(result.skipped)
        sc = result.scores
        nonfinite.append(sc[~np.isfinite(sc["score"].to_numpy(dtype="float64"))])
        ranked = _rank(result.series)
        if ranked is not None and (best_rank is None or ranked[0] > best_rank):
            best_rank, best = ranked
            report.top = sc[(sc["source"] == best["source"]) & (sc["metric"] == best["metric"])]
        if progress is not None:
            progress(f"{a}..{b}: {len(result.series)} series, {len(result.events)} new events, {points} points saved")
    report.series = _summary(pd.concat(summaries, ignore_index=True))
    report.skipped = pd.concat(skipped, ignore_index=True).drop_duplicates(["source", "metric"], keep="last")
    report.nonfinite = pd.concat(nonfinite, ignore_index=True)
    return report
