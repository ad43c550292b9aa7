"""Incidents: one row per failure, from labelled files or from what the product recorded.

Columns: ``incident_id, kind, source, host, metric, start, end, breach, message, fix, fix_params, resolved``
plus ``root`` and ``cause`` where labels give them, and ``ended`` for a healing event (healing resolved it or
gave up with its final alert; False while its playbook is still at work). ``kind`` is the healing engine's event
kind (a labelled file's own kinds are mapped: ``latency_surge`` → ``high_latency``…; an unknown kind by its
metric). ``breach`` is when the incident crossed its threshold: for a labelled incident, the first minute its
metric is half way from its level in the hour before to its extreme within the incident; for a recorded one,
when healing saw it.
``fix`` is the action that worked (healing's log) or, for labels, the preventive action of its kind.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from rhythm_pipelines.learning.signals import Signals, host_of

COLUMNS = ["incident_id", "kind", "source", "host", "metric", "start", "end", "breach", "message", "fix",
           "fix_params", "resolved", "root", "cause", "ended"]  # fmt: skip
LABEL_COLUMNS = ("start", "end", "source", "metric", "kind", "root")
LABEL_KIND = {  # a labelled file's kinds (the simulator's) → the healing engine's event kinds
    "cpu_spike": "cpu_spike",
    "memory_leak": "memory_leak",
    "zombie_process": "process_zombie",
    "hung_process": "process_hung",
    "cascade": "cascade_failure",
    "latency_surge": "high_latency",
    "error_burst": "circuit_breaker_open",
    "cost_surge": "anomaly",
}
METRIC_KIND = (  # an unknown kind, by a word of its metric
    ("cpu", "cpu_spike"),
    ("load", "cpu_spike"),
    ("mem", "memory_leak"),
    ("rss", "memory_leak"),
    ("latency", "high_latency"),
    ("error", "circuit_breaker_open"),
    ("zombie", "process_zombie"),
    ("heartbeat", "process_hung"),
    ("disk", "disk_pressure"),
)
# what acts before the breach, per kind: the playbook action a prevention applies when no healing run
# recorded a fix that worked
PREVENTIVE_FIX = {
    "cpu_spike": ("pause_low_priority", {}),
    "cascade_failure": ("pause_low_priority", {}),
    "memory_leak": ("terminate_process", {"select": "top_memory", "grace_s": 5}),
    "process_hung": ("terminate_process", {"select": "event", "grace_s": 3}),
    "process_zombie": ("reap_zombies", {"grace_s": 2, "terminate_parent": True}),
    "high_latency": ("reroute_channel", {"ttl_s": 3600}),
    "circuit_breaker_open": ("reroute_channel", {"ttl_s": 3600}),
    "disk_pressure": ("remove_temp_files", {"older_than_s": 3600}),
    "task_failure_pattern": ("rerun_failed", {"max_attempts": 3, "backoff_s": 5}),
    "anomaly": ("notify_admin", {}),
}
OPEN_FOR = pd.Timedelta(hours=2)  # an incident healing did not close counts as open this long after its last entry
ALERT_ONLY = ("notify_admin", "recheck", "resume_low_priority", "restore_route")


class IncidentFileError(ValueError):
    """A labelled incidents file that cannot be read: names the file, the row and the field."""


def health_kind(kind: str, metric: str) -> str:
    if kind in PREVENTIVE_FIX:
        return kind
    if kind in LABEL_KIND:
        return LABEL_KIND[kind]
    m = (metric or "").lower()
    return next((k for word, k in METRIC_KIND if word in m), "anomaly")


def breach_time(signals: Signals, source: str, metric: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Timestamp:
    """The first minute in [start, end] the metric is half way from its prior level to its extreme there
    (``start`` when the signal is missing or flat)."""
    if not signals.has(source, metric) or not len(signals.index):
        return start
    v = signals.series(source, metric)
    a, b = signals.position(start), signals.position(end)
    before = v[max(0, a - 60) : a]
    before = before[~np.isnan(before)]
    inside = v[a : b + 1]
    if not len(before) or not np.isfinite(inside).any():
        return start
    base = float(np.median(before))
    hi, lo = np.nanmax(inside), np.nanmin(inside)
    up = abs(hi - base) >= abs(lo - base)
    mid = base + ((hi if up else lo) - base) / 2
    if (hi if up else lo) == base:
        return start
    crossed = np.flatnonzero(inside >= mid if up else inside <= mid)
    return signals.index[a + int(crossed[0])] if len(crossed) else start


def from_labels(labels: pd.DataFrame, signals: Signals, origin: str = "<incidents>") -> pd.DataFrame:
    """Incidents from a labelled file's rows (the simulator's ``incidents/*.csv`` layout). Bad rows raise
    :class:`IncidentFileError` naming ``origin``, the row (its line in the file) and the field."""
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise IncidentFileError(f"{origin}: missing column(s) {', '.join(missing)} (need {', '.join(LABEL_COLUMNS)})")
    rows = []
    for i, r in enumerate(labels.itertuples(index=False)):
        line = i + 2  # the header is line 1
        try:  # ISO 8601 only: a lenient parser reads "March 4" as the year 1
            start, end = (pd.to_datetime(str(v), utc=True, format="ISO8601") for v in (r.start, r.end))
        except (ValueError, TypeError):
            raise IncidentFileError(
                f"{origin}: line {line}: start/end: not an ISO 8601 timestamp ({r.start!r}, {r.end!r})"
            ) from None
        if pd.isna(start) or pd.isna(end):
            raise IncidentFileError(f"{origin}: line {line}: start/end: empty")
        start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
        if end < start:
            raise IncidentFileError(f"{origin}: line {line}: end: {end} is before start {start}")
        for field in ("source", "metric", "kind"):
            v = getattr(r, field)
            if not isinstance(v, str) or not v.strip():
                raise IncidentFileError(f"{origin}: line {line}: {field}: empty")
        kind = health_kind(r.kind, r.metric)
        fix, params = PREVENTIVE_FIX[kind]
        root = r.root if isinstance(r.root, str) and r.root else ""
        rows.append({
            "incident_id": f"{r.source}|{kind}|{start.isoformat()}",
            "kind": kind, "source": r.source, "host": host_of(r.source), "metric": r.metric,
            "start": start, "end": end, "breach": breach_time(signals, r.source, r.metric, start, end),
            "message": f"{r.kind} on {r.metric}", "fix": fix, "fix_params": json.dumps(params, sort_keys=True),
            "resolved": True, "root": root, "cause": "" if pd.isna(cause := getattr(r, "cause", "")) else str(cause),
        })  # fmt: skip
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.drop_duplicates("incident_id").sort_values(["start", "source"], ignore_index=True)


def from_healing_log(log: pd.DataFrame) -> pd.DataFrame:
    """One incident per healing event (preventions left out): when it was detected, what its detect step said,
    whether it was resolved and the action done at the level that resolved it. A replayed event (``rhythm
    healing replay``: detection on stored history, actions in dry run) is an incident too; its fix is what
    healing would have done, and it ends when the history says it cleared."""
    if log.empty:
        return pd.DataFrame(columns=COLUMNS)
    log = log.assign(ts=pd.to_datetime(log["ts"], utc=True)).sort_values(["ts", "entry_id"], kind="stable")
    log = log[log["kind"] != "recurrence_risk"]
    rows = []
    for event_id, g in log.groupby("event_id", sort=False):
        first = g.iloc[0]
        resolved = bool(g["step"].isin(["resolve", "clear"]).any())
        level = g.loc[g["step"] == "resolve", "level"].iloc[-1] if (g["step"] == "resolve").any() else ""
        acts = g[(g["step"] == "act") & g["outcome"].isin(["done", "dry_run"]) & ~g["action"].isin(ALERT_ONLY)]
        acts = acts[acts["level"] == level] if resolved and (acts["level"] == level).any() else acts
        fix, params = (
            (acts.iloc[0]["action"], acts.iloc[0]["params"])
            if len(acts)
            else PREVENTIVE_FIX.get(first["kind"], ("notify_admin", {}))
        )
        detect = g.loc[g["step"] == "detect", "detail"]
        closed = g.loc[g["step"].isin(["resolve", "clear"]), "ts"]
        # healing did not close it (it alerted, or ran dry): open for OPEN_FOR after its last entry
        end = closed.iloc[-1] if len(closed) else g["ts"].iloc[-1] + OPEN_FOR
        rows.append({
            "incident_id": event_id, "kind": first["kind"], "source": first["source"],
            "host": host_of(first["source"]), "metric": "", "start": first["ts"], "end": end, "breach": first["ts"],
            "message": detect.iloc[0] if len(detect) else "", "fix": fix,
            "fix_params": params if isinstance(params, str) else json.dumps(params, sort_keys=True),
            "resolved": resolved, "root": "", "cause": "", "ended": resolved or bool((g["step"] == "alert").any()),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def from_failed_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One incident per failed Dagster run: its job is the source, its error text the message."""
    if runs.empty or "status" not in runs:
        return pd.DataFrame(columns=COLUMNS)
    bad = runs[runs["status"].astype(str).str.upper() == "FAILURE"]
    rows = []
    for r in bad.itertuples(index=False):
        ts = pd.Timestamp(r.ts)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        fix, params = PREVENTIVE_FIX["task_failure_pattern"]
        rows.append({
            "incident_id": f"{r.job}|task_failure_pattern|{r.run_id}", "kind": "task_failure_pattern",
            "source": r.job, "host": r.job, "metric": "", "start": ts,
            "end": pd.Timestamp(r.end) if pd.notna(getattr(r, "end", None)) else ts, "breach": ts,
            "message": "" if pd.isna(r.failure) else str(r.failure), "fix": fix,
            "fix_params": json.dumps(params, sort_keys=True),
            "resolved": False, "root": "", "cause": "",
        })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def recorded(log: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Every incident the product recorded (healing events and failed runs), in time order."""
    frames = [f for f in (from_healing_log(log), from_failed_runs(runs)) if len(f)]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    for c in ("start", "end", "breach"):
        out[c] = pd.to_datetime(out[c], utc=True)
    return out.sort_values(["start", "source"], kind="stable", ignore_index=True)
