"""The plan in force, from a store: what the next 24 h look like and what to do about it now.

``plan_now`` pools the last ``PROFILE_DAYS`` of ``load_profiles`` rows into the weekly rhythm, forecasts each
planned host's CPU and memory from it (its upper level, moved by the last ``ANCHOR`` of measurements), places
the opted-in jobs' runs (``jobs.runs_to_place``) around the runs in progress, and finds the breaches to act on
before they happen: a host (one the jobs run on, or this machine) whose planned load still crosses its target
within ``PREEMPT`` (the pause-before-peak), and a channel whose usual p95 latency at the coming hour is over
its SLO.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.store import MetricsStore
from rhythm_pipelines.scheduling.jobs import Costed, cost_of, runs_to_place
from rhythm_pipelines.scheduling.learn import learned_cost, pooled_jobs
from rhythm_pipelines.scheduling.planner import HORIZON, SLOT, Plan, Run, Targets, plan
from rhythm_pipelines.scheduling.profiles import ANCHOR, anchored, expected_load, hour_of_week, pool
from rhythm_pipelines.scheduling.tags import JobTags

PROFILE_DAYS = 28
PREEMPT = pd.Timedelta(minutes=15)  # act this long before a forecast breach
MIN_COUNT = 3  # a profile hour seen fewer times than this does not raise an SLO breach


@dataclass(frozen=True)
class Breach:
    """A forecast crossing of a bar, soon: the event healing acts on before it happens."""

    kind: str  # forecast_peak (a host) or forecast_slo (a channel@region)
    source: str
    start: pd.Timestamp
    until: pd.Timestamp
    metric: str
    value: float  # the forecast at its worst
    bar: float


@dataclass
class PlanNow:
    now: pd.Timestamp
    plan: Plan
    costs: dict[str, Costed]
    breaches: list[Breach] = field(default_factory=list)
    profile_days: int = 0

    def due(self) -> list:
        return self.plan.due(self.now)

    def fingerprint(self) -> str:
        """Changes when a placement moves (a re-plan that changed nothing keeps it)."""
        text = "|".join(f"{p.run.key}>{p.start.isoformat()}" for p in self.plan.placements)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def profile_of(store: MetricsStore, now: pd.Timestamp, days: int = PROFILE_DAYS) -> tuple[pd.DataFrame, int]:
    rows = store.read_table("load_profiles", now.floor("D") - pd.Timedelta(days=days), now)
    return pool(rows), int(rows["ts"].nunique()) if len(rows) else 0


def expected_hosts(
    store: MetricsStore,
    profile: pd.DataFrame,
    hosts: Sequence[str],
    now: pd.Timestamp,
    horizon: pd.Timedelta,
    running: dict[str, dict[str, float]] | None = None,
) -> dict[str, pd.DataFrame]:
    """Per host, CPU and memory per slot over the horizon: the profile's upper level, anchored to the last
    ``ANCHOR`` of measurements when there are some, less what the runs in progress measurably add (``running``:
    host -> {"cpu", "mem"} over the anchor window; the planner counts those runs itself)."""
    expected = expected_load(profile, list(hosts), now.floor(SLOT), horizon)
    recent = store.read_metrics(now - ANCHOR, now, sources=list(hosts), metrics=["cpu_percent", "mem_percent"])
    if recent.empty:
        return expected
    usual = expected_load(profile, list(hosts), (now - ANCHOR).floor(SLOT), ANCHOR, upper=False)
    for host, frame in expected.items():
        for metric, col in (("cpu_percent", "cpu"), ("mem_percent", "mem")):
            seen = recent.loc[(recent["source"] == host) & (recent["metric"] == metric), "value"]
            if seen.empty:
                continue
            level = max(float(seen.mean()) - (running or {}).get(host, {}).get(col, 0.0), 0.0)
            if (profile["source"] == host).any():
                frame[col] = anchored(frame[col], level - float(usual[host][col].mean()), now)
            else:  # no rhythm learned yet: the level it is at now, fading (beyond the next hours, unknown)
                frame[col] = anchored(frame[col] * 0.0, level, now)
    return expected


def host_breaches(
    p: Plan, targets: Targets, now: pd.Timestamp, preempt: pd.Timedelta = PREEMPT, hosts: set[str] | None = None
) -> list[Breach]:
    """Hosts (of ``hosts``: those with a learned rhythm) whose planned load (the forecast plus the placed runs)
    crosses a target within ``preempt``; the breach lasts while the load stays over. A host with no rhythm
    learned has no forecast peak to act on (an overload now is healing's cpu_spike)."""
    out = []
    for host, load in p.load.items():
        if hosts is not None and host not in hosts:
            continue
        over = (load["cpu"] > targets.cpu) | (load["mem"] > targets.mem)
        soon = over[(over.index >= now.floor(SLOT)) & (over.index <= now + preempt)]
        if not soon.any():
            continue
        first = soon.idxmax()
        after = over[over.index >= first]
        end = after.index[after.to_numpy().argmin()] if not after.all() else after.index[-1] + SLOT
        span = load[(load.index >= first) & (load.index < end)]
        cpu_side = bool((span["cpu"] > targets.cpu).any())
        metric, bar = ("cpu_percent", targets.cpu) if cpu_side else ("mem_percent", targets.mem)
        value = float(span["cpu" if cpu_side else "mem"].max())
        out.append(Breach("forecast_peak", host, first, end, metric, round(value, 1), bar))
    return out


def slo_breaches(
    profile: pd.DataFrame, now: pd.Timestamp, slo_ms: float, preempt: pd.Timedelta = PREEMPT
) -> list[Breach]:
    """Channels (``channel@region``) whose usual p95 latency in the hour starting within ``preempt`` is over
    the SLO, seen at least ``MIN_COUNT`` times there; the breach lasts while the following hours stay over."""
    lat = profile[(profile["metric"] == "latency_ms") & (profile["count"] >= MIN_COUNT)]
    out = []
    for source, g in lat.groupby("source"):
        # the usual p95 of that hour: mean + 1.645 spreads, at most the worst day's p95 (one bad afternoon in
        # four weeks does not make an hour slow)
        usual = np.minimum(g["mean"] + 1.645 * g["std"], g["p95"])
        p95 = pd.Series(usual.to_numpy(), index=g["how"].to_numpy())
        hours = pd.date_range(now.floor("h"), now.floor("h") + pd.Timedelta(hours=24), freq="h")
        ahead = p95.reindex(hour_of_week(hours)).to_numpy()
        over = np.nan_to_num(ahead, nan=0.0) > slo_ms
        first = next(
            (i for i, h in enumerate(hours) if over[i] and h <= now + preempt and h + pd.Timedelta(hours=1) > now), None
        )
        if first is None:
            continue
        last = first
        while last + 1 < len(hours) and over[last + 1]:
            last += 1
        start = max(hours[first], now)
        out.append(Breach("forecast_slo", str(source), start, hours[last] + pd.Timedelta(hours=1), "latency_p95_ms",
                          round(float(np.nanmax(ahead[first:last + 1])), 1), slo_ms))  # fmt: skip
    return out


def plan_now(
    store: MetricsStore,
    jobs: Sequence[JobTags],
    launched: set[str],
    running: Sequence[tuple[Run, pd.Timestamp]],
    now: pd.Timestamp,
    default_host: str,
    targets: Targets | None = None,
    slo_ms: float | None = None,
    horizon: pd.Timedelta = HORIZON,
    since: dict[str, pd.Timestamp] | None = None,
) -> PlanNow:
    """The plan of the next ``horizon`` and the breaches to pre-empt (see the module docstring)."""
    targets = targets or Targets()
    profile, days = profile_of(store, now)
    history = store.read_table("job_profiles", now.floor("D") - pd.Timedelta(days=PROFILE_DAYS), now)
    learned = {(r.job, r.host): learned_cost(r) for _, r in pooled_jobs(history).iterrows()}
    costs = {t.job: cost_of(t, learned.get((t.job, t.host or default_host))) for t in jobs}
    runs = runs_to_place(jobs, learned, now, default_host, launched, horizon, since)
    hosts = sorted({t.host or default_host for t in jobs} | {r.host for r, _ in running} | {default_host})
    in_progress: dict[str, dict[str, float]] = {}
    for r, began in running:  # what they measurably add (their profile), for the part of the anchor they ran
        measured = learned.get((r.job, r.host))
        share = min(max((now - max(began, now - ANCHOR)) / ANCHOR, 0.0), 1.0)
        for col in ("cpu", "mem"):
            v = getattr(measured, col, None) if measured is not None else None
            if v:
                in_progress.setdefault(r.host, {}).setdefault(col, 0.0)
                in_progress[r.host][col] += v * share
    expected = expected_hosts(store, profile, hosts, now, horizon, in_progress)
    p = plan(expected, runs, now, horizon, targets, running=list(running))
    breaches = host_breaches(p, targets, now, hosts=set(profile["source"]) if len(profile) else set())
    if slo_ms is not None:
        breaches += slo_breaches(profile, now, slo_ms)
    return PlanNow(now, p, costs, breaches, days)
