"""What each dashboard page shows, as plain JSON-ready values from the store (no web framework here).

Series are bucketed to at most ``max_points`` per line (the bucket's mean; its max for spiky counts would
hide the mean, so the page draws the mean and says so), timestamps are ISO 8601 in UTC.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from rhythm_pipelines.healing.detectors import DetectorSettings
from rhythm_pipelines.metrics.store import MetricsStore

LATEST = pd.Timedelta(minutes=15)  # a series silent longer than this has no "now"
HOST_METRICS = ("cpu_percent", "mem_percent", "load1", "process_count", "zombie_count")


def is_channel(source: str) -> bool:
    """Channel series are named ``channel@region``."""
    return "@" in source


def is_process(source: str) -> bool:
    """Process series are named ``host/proc/name`` (or ``host/proc/PID``)."""
    return "/proc/" in source


def is_host(source: str) -> bool:
    return not is_channel(source) and not is_process(source)


def iso(ts) -> str | None:
    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).isoformat()


def bucket(points: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, max_points: int) -> str:
    """A pandas frequency that keeps ``[start, end)`` within ``max_points`` buckets (whole seconds)."""
    seconds = max(1, int(np.ceil((end - start).total_seconds() / max_points)))
    return f"{seconds}s"


def latest(store: MetricsStore, now: pd.Timestamp, lookback: pd.Timedelta = LATEST) -> pd.DataFrame:
    """The last value of every series seen in ``[now - lookback, now]``: source, metric, ts, value."""
    pts = store.read_metrics(now - lookback, now + pd.Timedelta(microseconds=1))
    if pts.empty:
        return pd.DataFrame(columns=["source", "metric", "ts", "value"])
    return pts.groupby(["source", "metric"], sort=True).tail(1)[["source", "metric", "ts", "value"]].reset_index(
        drop=True
    )


def series_payload(
    store: MetricsStore,
    start: pd.Timestamp,
    end: pd.Timestamp,
    sources: list[str] | None,
    metrics: list[str] | None,
    max_points: int = 400,
) -> list[dict]:
    """Each (source, metric) in the range as ``{source, metric, ts: [...], value: [...]}`` (bucket means)."""
    pts = store.read_metrics(start, end, sources=sources, metrics=metrics)
    if pts.empty:
        return []
    freq = bucket(pts, start, end, max_points)
    out = []
    for (source, metric), g in pts.groupby(["source", "metric"], sort=True):
        s = g.set_index("ts")["value"].resample(freq, origin=start).mean().dropna()
        out.append(
            {
                "source": source,
                "metric": metric,
                "ts": [t.isoformat() for t in s.index],
                "value": [round(float(v), 4) for v in s.to_numpy()],
            }
        )
    return out


def anomaly_markers(store: MetricsStore, start: pd.Timestamp, end: pd.Timestamp, sources: list[str] | None) -> list:
    """Anomaly events in the range: ``{source, metric, ts, end, severity, score}``."""
    ev = store.read_table("events", start, end)
    if ev.empty:
        return []
    ev = ev[ev["kind"] == "anomaly"]
    if sources is not None:
        ev = ev[ev["source"].isin(sources)]
    return [
        {"source": r.source, "metric": r.metric, "ts": iso(r.ts), "end": iso(r.end), "severity": r.severity,
         "score": None if pd.isna(r.score) else round(float(r.score), 3)}  # fmt: skip
        for r in ev.itertuples(index=False)
    ]


def forecast_bands(store: MetricsStore, now: pd.Timestamp, sources: list[str] | None, metrics: list[str] | None):
    """Per series and horizon, the newest forecast issued (its points ahead of now, with 80/95 % bands)."""
    fc = store.read_table("forecasts", now - pd.Timedelta(hours=2), now + pd.Timedelta(days=2))
    if fc.empty:
        return []
    if sources is not None:
        fc = fc[fc["source"].isin(sources)]
    if metrics is not None:
        fc = fc[fc["metric"].isin(metrics)]
    fc = fc[fc["issued"] <= now]
    out = []
    for (source, metric, horizon), g in fc.groupby(["source", "metric", "horizon"], sort=True):
        g = g[g["issued"] == g["issued"].max()].sort_values("ts")
        out.append(
            {
                "source": source,
                "metric": metric,
                "horizon": horizon,
                "model": str(g["model"].iloc[0]),
                "issued": iso(g["issued"].iloc[0]),
                **{c: [round(float(v), 4) for v in g[c]] for c in ("mean", "lo_80", "hi_80", "lo_95", "hi_95")},
                "ts": [iso(t) for t in g["ts"]],
            }
        )
    return out


def hosts(store: MetricsStore, now: pd.Timestamp, start: pd.Timestamp, host: list[str] | None = None) -> dict:
    """The Hosts page: the hosts, their latest CPU/memory/load/processes, series, anomalies and forecasts."""
    known = store.list_series()
    all_hosts = sorted({s for s in known["source"] if is_host(s)}) if len(known) else []
    chosen = [h for h in (host or all_hosts) if h in all_hosts]
    now_values = latest(store, now)
    last = now_values[now_values["source"].isin(chosen) & now_values["metric"].isin(HOST_METRICS)]
    table = last.pivot_table(index="source", columns="metric", values="value", aggfunc="last")
    procs = now_values[[is_process(s) and s.split("/proc/")[0] in chosen for s in now_values["source"]]]
    ptable = procs.pivot_table(index="source", columns="metric", values="value", aggfunc="last")
    return {
        "hosts": all_hosts,
        "selected": chosen,
        "latest": [
            {"host": h, **{m: (None if pd.isna(v) else round(float(v), 3)) for m, v in row.items()}}
            for h, row in table.iterrows()
        ],
        "hung_after_s": DetectorSettings().hung_after_s,  # the health sensor's default bar
        "processes": [
            {"process": p, **{m: (None if pd.isna(v) else round(float(v), 3)) for m, v in row.items()}}
            for p, row in ptable.iterrows()
        ],
        "series": series_payload(store, start, now, chosen, list(HOST_METRICS)) if chosen else [],
        "anomalies": anomaly_markers(store, start, now, chosen),
        "forecasts": forecast_bands(store, now, chosen, list(HOST_METRICS)),
    }


def healing_timeline(
    store: MetricsStore,
    start: pd.Timestamp,
    end: pd.Timestamp,
    kind: str | None = None,
    target: str | None = None,
    level: str | None = None,
) -> list[dict]:
    """One row per healing event in the range: detected, level, each step (action, outcome, when), how it
    ended (resolved, escalated, open) and the Dagster run that handled it; newest first."""
    log = store.read_table("healing_log", start, end)
    if log.empty:
        return []
    log = log.sort_values("ts", kind="stable")
    rows = []
    for event_id, g in log.groupby("event_id", sort=False):
        first = g.iloc[0]
        levels = [v for v in g["level"] if isinstance(v, str) and v]
        steps = [
            {"ts": iso(r.ts), "step": r.step, "action": r.action or "", "outcome": r.outcome or "",
             "detail": (r.detail or "")[:200]}  # fmt: skip
            for r in g.itertuples(index=False)
        ]
        last = g.iloc[-1]
        ended = (
            "resolved"
            if (g["step"] == "resolve").any() and last["step"] != "alert"
            else "escalated"
            if (g["step"] == "alert").any()
            else "open"
        )
        rows.append(
            {
                "event_id": event_id,
                "kind": first["kind"],
                "target": first["source"],
                "level": levels[-1] if levels else "",
                "detected": iso(first["ts"]),
                "last": iso(last["ts"]),
                "ended": ended,
                "seconds": round((last["ts"] - first["ts"]).total_seconds(), 1),
                "run_id": first["run_id"],
                "replayed": str(first["run_id"]).startswith("replay:"),
                "steps": steps,
            }
        )
    rows.sort(key=lambda r: r["detected"], reverse=True)
    return [
        r
        for r in rows
        if (kind is None or r["kind"] == kind)
        and (target is None or r["target"] == target)
        and (level is None or r["level"] == level)
    ]


def clean(value):
    """JSON-ready: NaN and infinities become null (browsers refuse them), numpy and pandas scalars plain."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if value is pd.NaT or value is pd.NA:
        return None
    return value


def dumps(value) -> str:
    return json.dumps(clean(value), allow_nan=False)
