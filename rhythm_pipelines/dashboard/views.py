"""What each dashboard page shows, as plain JSON-ready values from the store (no web framework here).

Series are bucketed to at most ``max_points`` per line (the bucket's mean; its max for spiky counts would
hide the mean, so the page draws the mean and says so), timestamps are ISO 8601 in UTC.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from rhythm_pipelines.healing.detectors import DetectorSettings
from rhythm_pipelines.healing.report import day_report
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
    """Each (source, metric) in the range as ``{source, metric, ts: [...], value: [...]}`` (bucket means,
    buckets stamped at their start; one grouping for all series)."""
    pts = store.read_metrics(start, end, sources=sources, metrics=metrics)
    if pts.empty:
        return []
    width = pd.Timedelta(bucket(pts, start, end, max_points))
    slot = (pts["ts"] - start) // width
    means = pts.groupby([pts["source"], pts["metric"], slot], sort=True)["value"].mean()
    out = []
    for (source, metric), s in means.groupby(level=[0, 1], sort=True):
        stamps = start + s.index.get_level_values(2) * width
        out.append(
            {
                "source": source,
                "metric": metric,
                "ts": [t.isoformat() for t in stamps],
                "value": s.round(4).tolist(),
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


MANY_HOSTS = 10  # more hosts than this and none chosen: the fleet's median and p95, and the busiest hosts
BUSIEST = 8


def host_lines(
    store: MetricsStore, start: pd.Timestamp, now: pd.Timestamp, chosen: list[str], last: pd.DataFrame, fleet: bool
) -> list[dict]:
    """Each chosen host's lines; for a fleet, per metric the median and p95 over hosts of each time bucket
    (sources ``fleet median`` and ``fleet p95``) and the ``BUSIEST`` hosts by their latest value."""
    if not chosen:
        return []
    lines = series_payload(store, start, now, chosen, list(HOST_METRICS))
    if not fleet:
        return lines
    out = []
    for metric in HOST_METRICS:
        mine = [ln for ln in lines if ln["metric"] == metric]
        if not mine:
            continue
        wide = pd.DataFrame({ln["source"]: pd.Series(ln["value"], index=ln["ts"]) for ln in mine}).sort_index()
        for name, q in (("fleet median", 0.5), ("fleet p95", 0.95)):
            band = wide.quantile(q, axis=1).dropna()
            out.append({"source": name, "metric": metric, "ts": list(band.index),
                        "value": [round(float(v), 4) for v in band]})  # fmt: skip
        now_values = last[last["metric"] == metric].sort_values("value", ascending=False)
        top = set(now_values["source"].head(BUSIEST)) or {ln["source"] for ln in mine[:BUSIEST]}
        out += [ln for ln in mine if ln["source"] in top]
    return out


def hosts(store: MetricsStore, now: pd.Timestamp, start: pd.Timestamp, host: list[str] | None = None) -> dict:
    """The Hosts page: the hosts, their latest CPU/memory/load/processes, series (for a fleet of more than
    ``MANY_HOSTS`` with none chosen: its median and p95 and the busiest hosts), anomalies and forecasts."""
    known = store.list_series()
    all_hosts = sorted({s for s in known["source"] if is_host(s)}) if len(known) else []
    chosen = [h for h in (host or all_hosts) if h in all_hosts]
    now_values = latest(store, now)
    last = now_values[now_values["source"].isin(chosen) & now_values["metric"].isin(HOST_METRICS)]
    table = last.pivot_table(index="source", columns="metric", values="value", aggfunc="last")
    owned = now_values["source"].map(lambda s: is_process(s) and s.split("/proc/")[0] in chosen).astype(bool)
    procs = now_values[owned]
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
        "series": host_lines(store, start, now, chosen, last, fleet=host is None and len(chosen) > MANY_HOSTS),
        "anomalies": anomaly_markers(store, start, now, chosen),
        "forecasts": forecast_bands(store, now, chosen, list(HOST_METRICS)),
    }


ENDED = {  # healing.report's status of an event -> how the timeline says it ended
    "resolved": "resolved",
    "unresolved": "open",  # "escalated" when an alert went out
    "already_resolved": "already resolved",
    "dry_run": "dry run",
    "suppressed": "suppressed",
    "reported": "reported",
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
    judged = day_report(log, pd.DataFrame(columns=["job", "status"]), start, end).events
    status = dict(zip(judged["event_id"], judged["status"], strict=True)) if len(judged) else {}
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
        escalated = (g["step"] == "alert").any()
        ended = ENDED.get(status.get(event_id, ""), "escalated" if escalated else "open")
        if ended == "open" and escalated:
            ended = "escalated"
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


CHANNEL_METRICS = ("calls", "errors", "timeouts", "latency_ms_p50", "latency_ms_p95")


def channels(
    store: MetricsStore,
    now: pd.Timestamp,
    start: pd.Timestamp,
    selected: list[str] | None = None,
    routes_file=None,
    breaker_config=None,
    max_points: int = 300,
) -> dict:
    """The Channels page: per channel@region latency p50/p95, error and timeout rates over time (rates are
    the bucket's errors over its calls), the breaker state now (the last 30 min of calls replayed through
    the healing breaker), the reroutes in force, forecasts, and a region × channel heat map of the last hour."""
    from rhythm_pipelines.healing.breaker import BreakerConfig, replay
    from rhythm_pipelines.healing.routing import read_routes

    known = store.list_series()
    every = sorted({s for s in known["source"] if is_channel(s)}) if len(known) else []
    chosen = [c for c in (selected or every) if c in every]
    pts = store.read_metrics(start, now + pd.Timedelta(microseconds=1), sources=chosen, metrics=list(CHANNEL_METRICS))
    series = []
    if len(pts):
        freq = bucket(pts, start, now, max_points)
        wide = pts.pivot_table(index=["source", "ts"], columns="metric", values="value", aggfunc="last").reset_index()
        for source, g in wide.groupby("source", sort=True):
            g = g.set_index("ts")
            counts = g.reindex(columns=["calls", "errors", "timeouts"]).fillna(0).resample(freq, origin=start).sum()
            lat = g.reindex(columns=["latency_ms_p50", "latency_ms_p95"]).resample(freq, origin=start).mean()
            keep = counts["calls"] > 0
            calls = counts["calls"][keep]
            series.append(
                {
                    "source": source,
                    "ts": [t.isoformat() for t in calls.index],
                    "calls": calls.round(3).tolist(),
                    "error_rate": (counts["errors"][keep] / calls).round(5).tolist(),
                    "timeout_rate": (counts["timeouts"][keep] / calls).round(5).tolist(),
                    "latency_ms_p50": lat["latency_ms_p50"][keep].round(2).tolist(),
                    "latency_ms_p95": lat["latency_ms_p95"][keep].round(2).tolist(),
                }
            )
    recent = store.read_table("channel_calls", now - pd.Timedelta(minutes=30), now + pd.Timedelta(microseconds=1))
    config = breaker_config or BreakerConfig()
    breakers = {}
    if len(recent):
        recent = recent.assign(source=recent["channel"] + "@" + recent["region"]).sort_values("ts", kind="stable")
        for source, g in recent.groupby("source", sort=True):
            breakers[source] = replay(g, config, now).state
    hour = store.read_table("channel_calls", now - pd.Timedelta(hours=1), now + pd.Timedelta(microseconds=1))
    heat = {"channels": [], "regions": [], "p95_latency_ms": [], "error_rate": []}
    if len(hour):
        g = hour.groupby(["region", "channel"])
        p95 = g["latency_ms"].quantile(0.95).unstack()
        err = g["status"].apply(lambda s: float((s != "ok").mean())).unstack()
        heat = {
            "channels": list(p95.columns),
            "regions": list(p95.index),
            "p95_latency_ms": p95.round(1).to_numpy().tolist(),
            "error_rate": err.reindex(index=p95.index, columns=p95.columns).round(4).to_numpy().tolist(),
        }
    routes = read_routes(routes_file, now) if routes_file is not None else {}
    return {
        "channels": every,
        "selected": chosen,
        "series": series,
        "breakers": [{"source": s, "state": breakers.get(s, "no calls")} for s in chosen],
        "routes": [{"source": k, **v} for k, v in sorted(routes.items())],
        "heat": heat,
        "forecasts": forecast_bands(store, now, chosen, None),
    }


def cost(store: MetricsStore, now: pd.Timestamp, start: pd.Timestamp, catalog, budgets: list[dict]) -> dict:
    """The Cost page: spend by channel, region and request class and per hour, the budgets (as the KPIs
    give them), the cost/latency frontier of the range's calls, the routing plan in force, and the savings of
    the default plan fitted on that plan's day (``cost.report.plan_savings``, as the cost reports count them)
    replayed on the calls since, against the allocation those calls really had."""
    from rhythm_pipelines.cost.frontier import route_frontier
    from rhythm_pipelines.cost.optimizer import RoutingInfeasible, build_problem
    from rhythm_pipelines.cost.report import plan_savings

    calls = store.read_table("channel_calls", start, now + pd.Timedelta(microseconds=1))
    out: dict = {"budgets": budgets, "by": {}, "hourly": [], "frontier": [], "plan": None, "savings": None}
    if calls.empty:
        return out
    priced = catalog.price_calls(calls)
    priced["cost"] = pd.to_numeric(priced["cost"], errors="coerce").fillna(0.0)
    for col, name in (("channel", "channel"), ("region", "region"), ("cls", "class")):
        s = priced.groupby(col)["cost"].sum().sort_values(ascending=False)
        out["by"][name] = {"labels": [str(k) for k in s.index], "usd": s.round(4).tolist()}
    hourly = priced.assign(hour=priced["ts"].dt.floor("h")).pivot_table(
        index="hour", columns="channel", values="cost", aggfunc="sum", fill_value=0.0
    )
    out["hourly"] = [
        {"channel": c, "ts": [t.isoformat() for t in hourly.index], "usd": hourly[c].round(4).tolist()}
        for c in hourly.columns
    ]
    out["total_usd"] = round(float(priced["cost"].sum()), 4)
    try:
        frontier = route_frontier(build_problem(calls, catalog))
        out["frontier"] = frontier.round(6).to_dict("records")
    except (RoutingInfeasible, ValueError) as exc:
        out["frontier_error"] = str(exc)
    plans = store.read_table("routing_plans", now - pd.Timedelta(days=30), now + pd.Timedelta(microseconds=1))
    if len(plans):
        plan = plans.sort_values("ts").iloc[-1]
        fitted_day = pd.Timestamp(plan["ts"])
        out["plan"] = {
            "plan_id": plan["plan_id"],
            "mode": plan["mode"],
            "fitted_on": fitted_day.isoformat(),
            "shares": json.loads(plan["shares"] or "{}"),
            "expected": json.loads(plan["expected"] or "{}"),
        }
        since = max(fitted_day + pd.Timedelta(days=1), start)
        fit_calls = store.read_table("channel_calls", fitted_day, fitted_day + pd.Timedelta(days=1))
        later = calls[calls["ts"] >= since]
        if len(fit_calls) and len(later):
            out["savings"] = {**plan_savings(fit_calls, later, catalog, plan["plan_id"]), "since": since.isoformat()}
    return out


def forecasts(store: MetricsStore, now: pd.Timestamp, start: pd.Timestamp, registry=None) -> dict:
    """The Forecasts page: per series and horizon, the MAPE of the forecasts served for ``[start, now)``
    against the value that came, beside Naive's (the last value known when the forecast was issued); the
    model serving each series and its last retraining (from the registry, when given)."""
    fc = store.read_table("forecasts", start, now)
    rows: list[dict] = []
    if len(fc):
        actual = store.read_metrics(
            start - pd.Timedelta(days=1), now + pd.Timedelta(minutes=5),
            sources=sorted(fc["source"].unique()), metrics=sorted(fc["metric"].unique()),
        )[["ts", "source", "metric", "value"]].sort_values("ts", kind="stable")  # fmt: skip
        tol = pd.Timedelta(minutes=5)
        came = pd.merge_asof(fc.sort_values("ts"), actual, on="ts", by=["source", "metric"], direction="nearest",
                             tolerance=tol)  # fmt: skip
        known = actual.rename(columns={"ts": "issued", "value": "naive"})
        came = pd.merge_asof(came.sort_values("issued"), known, on="issued", by=["source", "metric"],
                             direction="backward")  # fmt: skip
        came = came.dropna(subset=["value", "mean", "naive"])
        came = came[came["value"].abs() > 1e-9]
        for (source, metric, horizon), g in came.groupby(["source", "metric", "horizon"], sort=True):
            ape = (g["mean"] - g["value"]).abs() / g["value"].abs()
            naive = (g["naive"] - g["value"]).abs() / g["value"].abs()
            inside = ((g["value"] >= g["lo_80"]) & (g["value"] <= g["hi_80"])).mean()
            rows.append(
                {
                    "source": source, "metric": metric, "horizon": str(horizon), "points": len(g),
                    "mape": float(ape.mean()), "naive_mape": float(naive.mean()),
                    "skill": float(1 - ape.mean() / naive.mean()) if naive.mean() > 0 else None,
                    "coverage_80": float(inside), "model": str(g.sort_values("issued")["model"].iloc[-1]),
                }
            )  # fmt: skip
    models = []
    if registry is not None:
        for source, metric in registry.series():
            try:
                mv = registry.meta(source, metric)
            except (LookupError, OSError, ValueError):
                continue
            models.append({"source": source, "metric": metric, "version": mv.version,
                           "model": mv.meta.get("model"), "trained_until": mv.meta.get("train_end"),
                           "fit_s": mv.meta.get("fit_s")})  # fmt: skip
    return {"accuracy": rows, "models": models}
