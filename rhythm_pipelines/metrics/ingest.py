"""Raw ingestion of one time window from the landing zone into a store (pure: no Dagster).

Each function reads what belongs to ``[start, end)``, writes it idempotently (upserts by key) and
returns an :class:`IngestReport` for the asset's metadata. Rejected rows go to the ``quarantine``
table with file, row, field and reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.calls import channel_minute_metrics, conflicting_calls, read_call_log
from rhythm_pipelines.metrics.landing import data_files, read_metric_file
from rhythm_pipelines.metrics.rollups import hourly_rollups
from rhythm_pipelines.metrics.schema import SCORE_PREFIX, RowError, quarantine_frame, validate_metrics
from rhythm_pipelines.metrics.store import MetricsStore


@dataclass
class IngestReport:
    rows: int = 0
    files: list[str] = field(default_factory=list)
    quarantined: list[RowError] = field(default_factory=list)
    by_source: pd.DataFrame = field(default_factory=pd.DataFrame)
    data: pd.DataFrame = field(default_factory=pd.DataFrame)  # the metric points written
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def untimed_rejects(self) -> int:
        """Rejected rows with no usable time: every window that reads their file reports them."""
        return sum(e.ts is None for e in self.quarantined)

    @property
    def quarantine_rate(self) -> float:
        """Share of this window's own rows that were rejected (untimed rejects left out)."""
        timed = len(self.quarantined) - self.untimed_rejects
        return timed / (self.rows + timed) if self.rows + timed else 0.0


def _quarantine(store: MetricsStore, errors: list[RowError], kind: str) -> None:
    if errors:
        store.write_table("quarantine", quarantine_frame(errors, kind))


def _count_by_source(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=["source", "metrics", "points"])
    g = frame.groupby("source")
    return pd.DataFrame({"metrics": g["metric"].nunique(), "points": g.size()}).reset_index()


def _read_window(root: Path, start: pd.Timestamp, end: pd.Timestamp, reader, report: IngestReport) -> pd.DataFrame:
    """Concatenate ``reader(path, start, end)`` over the window's files; collect rejects in the report.

    Every file is read before anything is written, so a file that cannot be read at all (a missing
    column) fails the window with its name and stores nothing.
    """
    frames = []
    for path in data_files(root, start, end):
        good, bad = reader(path, start, end)
        report.quarantined += bad
        if len(good) or bad:
            report.files.append(str(path))
        frames.append(good)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def ingest_metric_files(store: MetricsStore, root: Path, start: pd.Timestamp, end: pd.Timestamp) -> IngestReport:
    """Long-format metric files under ``root`` (``landing/metrics``) for the window."""
    report = IngestReport()
    data = _read_window(root, start, end, read_metric_file, report)
    if not data.empty:
        data = data.drop_duplicates(["source", "metric", "ts"], keep="last")
        report.rows = store.write_metrics(data)
    _quarantine(store, report.quarantined, "metrics")
    report.by_source = _count_by_source(data)
    report.data = data
    return report


def ingest_call_logs(store: MetricsStore, root: Path, start: pd.Timestamp, end: pd.Timestamp) -> IngestReport:
    """Gateway call logs under ``root`` (``landing/calls``) for the window: calls plus per-minute metrics."""
    report = IngestReport()
    calls = _read_window(root, start, end, read_call_log, report)
    metrics = pd.DataFrame()
    if not calls.empty:
        stored = store.read_keys("channel_calls", "call_id", calls["call_id"].unique().tolist())
        calls, conflicts = conflicting_calls(calls, stored)
        report.quarantined += conflicts
        duplicates = int(calls.duplicated("call_id", keep="first").sum())
        calls = calls.drop_duplicates("call_id", keep="first")
        # everything is computed and validated before the first write, which all happen in one batch
        metrics = validate_metrics(channel_minute_metrics(calls), origin="<channel metrics>")
        report.rows = len(calls)
        report.by_source = _count_by_source(metrics)
        report.data = metrics
        report.extra = {
            "duplicate_calls": duplicates,  # the same call seen again (same request_id and content, or identical rows)
            "conflicting_calls": len(conflicts),  # a request_id seen before with other content: quarantined
            "channels": int(calls["channel"].nunique()),
            "error_rate": float((calls["status"] != "ok").mean()),
            "cost_usd": float(np.nansum(calls["cost_usd"])),
        }
    with store.batch():
        if not calls.empty:
            store.write_table("channel_calls", calls)
            store.write_metrics(metrics)
        _quarantine(store, report.quarantined, "calls")
    return report


def run_records_frame(runs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Dagster run records (plain dicts: run_id, job, status, start, end, failure, partition, created) as rows."""
    rows = list(runs)
    cols = ["run_id", "job", "status", "start", "end", "failure", "partition", "created"]
    frame = pd.DataFrame(rows, columns=cols)
    for col in ("start", "end", "created"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    # a run belongs to the hour it was created in: the partition that reads it, and a time that never moves
    frame["ts"] = frame["created"]
    return frame.drop(columns="created")


def ingest_runs(store: MetricsStore, runs: pd.DataFrame) -> IngestReport:
    """Write run records and per-job ``run_count`` / ``run_failures`` / ``run_duration_s_max`` per creation hour.

    Runs still in flight are stored as they are now; re-running the hour later updates them by run_id.
    """
    report = IngestReport()
    if runs.empty:
        return report
    store.write_table("runs", runs)
    hour = runs["ts"].dt.floor("h")
    g = runs.assign(
        hour=hour,
        failed=(runs["status"] == "FAILURE").astype(int),
        duration=(runs["end"] - runs["start"]).dt.total_seconds(),
    ).groupby(["job", "hour"])
    wide = pd.DataFrame(
        {"run_count": g.size(), "run_failures": g["failed"].sum(), "run_duration_s_max": g["duration"].max()}
    ).reset_index()
    long = wide.melt(id_vars=["job", "hour"], var_name="metric", value_name="value").dropna(subset=["value"])
    metrics = validate_metrics(
        pd.DataFrame(
            {
                "ts": long["hour"],
                "source": "dagster:" + long["job"],
                "metric": long["metric"],
                "value": long["value"],
            }
        ),
        origin="<run history>",
    )
    store.write_metrics(metrics)
    report.rows = len(runs)
    report.by_source = _count_by_source(metrics)
    report.extra = {"failures": int((runs["status"] == "FAILURE").sum())}
    return report


def build_rollups(store: MetricsStore, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Hourly rollups of every measured series in the store for the window, written to the ``rollups`` table.

    Derived series (anomaly scores) are left out, so rollups do not depend on whether scoring ran first.
    """
    points = store.read_metrics(start, end)
    rollups = hourly_rollups(points[~points["metric"].str.startswith(SCORE_PREFIX)])
    if not rollups.empty:
        store.write_table("rollups", rollups)
    return rollups
