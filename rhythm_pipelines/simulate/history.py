"""What the product itself would have recorded about a simulated fleet: healing log, run history, anomaly
events, served forecasts and the routing plan fitted on its first whole day, deterministic by seed.

For the dashboard's tests and benchmark, which need a store filled the way weeks of running fill it, without
running weeks of healing. Every labelled incident is detected 20–90 s after it starts; healing resolves it
(detect → assess → act → verify → resolve, 5–40 s later) or, with probability ``1 - heal_rate``, fails to
(… → verify failed → alert, left open). Runs are a few hourly jobs with ``failure_rate`` failures; anomaly
events find each labelled incident with probability ``recall`` plus ``false_alarms_per_day`` per series;
forecasts are the truth with ``forecast_error`` relative noise, issued 15 minutes ahead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.store import MetricsStore
from rhythm_pipelines.simulate.fleet import Simulation

HEALTH_KIND = {  # the simulator's incident kinds as the health sensor names them, and what healing does first
    "cpu_spike": ("cpu_spike", "pause_low_priority"),
    "memory_leak": ("memory_leak", "terminate_process"),
    "zombie_process": ("process_zombie", "terminate_process"),
    "hung_process": ("process_hung", "terminate_process"),
    "cascade": ("cascade_failure", "notify_admin"),
    "latency_surge": ("high_latency", "reroute_channel"),
    "error_burst": ("circuit_breaker_open", "reroute_channel"),
    "cost_surge": ("anomaly", "notify_admin"),
}
LEVELS = ("soft", "hard", "critical")
JOBS = ("ingest_hour", "hourly_rollups_job", "live_forecasts_job", "cost_report_job")


def healing_log(sim: Simulation, heal_rate: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """A healing log with one handled event per labelled incident (see the module docstring)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, inc in enumerate(sim.incidents.sort_values("start", kind="stable").itertuples(index=False)):
        kind, action = HEALTH_KIND.get(inc.kind, ("anomaly", "notify_admin"))
        detected = inc.start + pd.Timedelta(seconds=float(rng.uniform(20, 90)))
        event_id = f"{inc.source}|{kind}|{detected.isoformat()}"
        run_id = f"sim-heal-{seed}-{i:05d}"
        level = LEVELS[int(rng.choice(3, p=[0.5, 0.35, 0.15]))]
        healed = rng.random() < heal_rate
        t = detected
        steps = [("detect", "", "detected"), ("assess", "", level), ("act", action, "ok")]
        ok = [("verify", "", "ok"), ("resolve", "", "resolved")]
        steps += ok if healed else [("verify", "", "failed"), ("alert", "notify_admin", "sent")]
        for k, (step, act, outcome) in enumerate(steps):
            t = t + pd.Timedelta(seconds=float(rng.uniform(1, 10) if k else 0))
            rows.append(
                {
                    "ts": t,
                    "entry_id": f"{run_id}:{k}",
                    "event_id": event_id,
                    "run_id": run_id,
                    "kind": kind,
                    "source": inc.source,
                    "level": level,
                    "step": step,
                    "action": act,
                    "target": inc.source,
                    "params": "{}",
                    "outcome": outcome,
                    "detail": f"simulated {inc.kind} on {inc.metric}",
                    "duration_ms": float(rng.uniform(5, 500)),
                }
            )
    return pd.DataFrame(rows)


def run_history(sim: Simulation, failure_rate: float = 0.015, seed: int = 0) -> pd.DataFrame:
    """Hourly runs of a few jobs over the simulation, ``failure_rate`` of them failed; plus the healing runs."""
    rng = np.random.default_rng(seed + 1)
    start, end = sim.metrics["ts"].min().ceil("h"), sim.metrics["ts"].max()
    hours = pd.date_range(start, end, freq="h")
    rows = []
    for h in hours:
        for job in JOBS:
            created = h + pd.Timedelta(seconds=float(rng.uniform(60, 180)))
            failed = rng.random() < failure_rate
            rows.append(
                {
                    "ts": created,
                    "run_id": f"sim-run-{seed}-{job}-{h:%Y%m%d%H}",
                    "job": job,
                    "status": "FAILURE" if failed else "SUCCESS",
                    "start": created + pd.Timedelta(seconds=2),
                    "end": created + pd.Timedelta(seconds=float(rng.uniform(5, 60))),
                    "failure": "simulated step failure" if failed else None,
                    "partition": f"{h:%Y-%m-%d-%H:%M}",
                }
            )
    return pd.DataFrame(rows)


def anomaly_events(sim: Simulation, recall: float = 0.95, false_alarms_per_day: float = 0.05, seed: int = 0):
    """Anomaly events (the ``events`` table's shape) for the labelled incidents, and a few false alarms."""
    rng = np.random.default_rng(seed + 2)
    rows = []

    def event(source: str, metric: str, start: pd.Timestamp, end: pd.Timestamp, score: float) -> None:
        rows.append(
            {
                "ts": start,
                "event_id": f"{source}|{metric}|anomaly|{start.isoformat()}",
                "kind": "anomaly",
                "source": source,
                "metric": metric,
                "end": end,
                "severity": "critical" if score >= 3 else "warning",
                "score": score,
                "payload": "{}",
            }
        )

    for inc in sim.incidents.itertuples(index=False):
        if rng.random() < recall:
            a = inc.start + (inc.end - inc.start) * float(rng.uniform(0.05, 0.4))
            event(inc.source, inc.metric, a.floor("min"), inc.end.floor("min"), float(rng.uniform(1.2, 4)))
    series = sim.incidents[["source", "metric"]].drop_duplicates()
    t0, t1 = sim.metrics["ts"].min(), sim.metrics["ts"].max()
    days = (t1 - t0) / pd.Timedelta(days=1)
    for s in series.itertuples(index=False):
        for _ in range(int(rng.poisson(false_alarms_per_day * days))):
            a = (t0 + (t1 - t0) * float(rng.uniform(0.2, 1))).floor("min")
            event(s.source, s.metric, a, a + pd.Timedelta(minutes=5), float(rng.uniform(1.0, 2.0)))
    return pd.DataFrame(rows)


def served_forecasts(sim: Simulation, metric: str = "cpu_percent", error: float = 0.08, seed: int = 0):
    """15-minute-ahead forecasts every 15 minutes for each host's ``metric``: the truth times (1 + noise)."""
    rng = np.random.default_rng(seed + 3)
    m = sim.metrics[sim.metrics["metric"] == metric]
    frames = []
    for source, g in m.groupby("source", sort=True):
        g = g.set_index("ts")["value"].resample("15min").mean().dropna()
        noise = 1 + rng.normal(0, error, len(g))
        mean = g.to_numpy() * noise
        spread = np.abs(g.to_numpy()) * error * 1.3 + 1e-6
        frames.append(
            pd.DataFrame(
                {
                    "ts": g.index,
                    "issued": g.index - pd.Timedelta(minutes=15),
                    "source": source,
                    "metric": metric,
                    "horizon": "15min",
                    "model": "ets",
                    "version": 1,
                    "mean": mean,
                    "lo_80": mean - spread,
                    "hi_80": mean + spread,
                    "lo_95": mean - 1.5 * spread,
                    "hi_95": mean + 1.5 * spread,
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def routing_plan(sim: Simulation, catalog=None) -> pd.DataFrame:
    """The routing plan the ``routing_plan`` asset would fit on the simulation's first whole day of calls
    (none when it has no whole day)."""
    from rhythm_pipelines.cost import catalog as catalogs
    from rhythm_pipelines.cost.evaluation import fit_plan, plan_document, plan_row
    from rhythm_pipelines.cost.optimizer import build_problem

    catalog = catalog or catalogs.load()
    day = sim.calls["ts"].min().ceil("D")
    calls = sim.calls[(sim.calls["ts"] >= day) & (sim.calls["ts"] < day + pd.Timedelta(days=1))]
    if calls.empty or sim.calls["ts"].max() < day + pd.Timedelta(days=1):
        return pd.DataFrame()
    calls = calls.rename(columns={"request_id": "call_id"})
    plan, mode = fit_plan(build_problem(calls, catalog), observed_mean_latency_ms=float(calls["latency_ms"].mean()))
    return plan_row(day, plan_document(day, plan, mode))


def fill(store: MetricsStore, sim: Simulation, seed: int = 0, heal_rate: float = 0.95) -> dict[str, int]:
    """Write the simulation and the product's history of it into ``store``; returns rows per table."""
    from rhythm_pipelines.metrics.calls import channel_minute_metrics

    calls = sim.calls.rename(columns={"request_id": "call_id"}).assign(origin=f"sim-{sim.config.seed}")
    tables = {
        "channel_calls": calls,
        "healing_log": healing_log(sim, heal_rate, seed),
        "runs": run_history(sim, seed=seed),
        "events": anomaly_events(sim, seed=seed),
        "forecasts": served_forecasts(sim, seed=seed),
        "routing_plans": routing_plan(sim),
    }
    out = {"metrics": 0}
    with store.batch():
        out["metrics"] += store.write_metrics(sim.metrics)
        out["metrics"] += store.write_metrics(channel_minute_metrics(sim.calls))
        for name, frame in tables.items():
            out[name] = store.write_table(name, frame) if len(frame) else 0
    return out
