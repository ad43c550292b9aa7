"""A deterministic discrete-event replay of a fleet's jobs under three scheduling policies.

The world: each host has its own background CPU (the simulator's rhythm) and ``slots`` worker slots; a run
holds a slot and adds its CPU to its host while it lasts. The job mix (``workload``): hourly light checks
(high priority), heavy batch jobs three times a day with deadlines, ad-hoc high-priority runs, and a
backlog of low-priority chunks (each due within a day) that fills whatever capacity is left.

The policies, on the same workload, at one step of ``STEP``:

- ``static``: every run starts at its nominal time when a slot is free (high priority first, then by
  nominal time);
- ``reactive``: as static, but a host whose CPU has been over the target for the last step starts no
  deferrable run until it is back under (today's healing: pause low-priority work while CPU is high);
- ``predictive``: every ``replan`` the planner places the next day's runs against the load expected from
  the weekly profile of the history *before* that moment (nothing later is seen), then runs start at their
  planned slot (high priority always at once).

Measured per policy: mean utilisation of the slots, the share of host-hours whose mean CPU was over the
target, the high-priority p95 wait, deadline misses, and the share of forecast peaks pre-empted (host-hours
the expected load put over the target in which no deferrable run was running).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.scheduling.planner import Run, Targets, plan
from rhythm_pipelines.scheduling.profiles import expected_load, load_profile

STEP = pd.Timedelta(minutes=5)
PRIORITY_ORDER = {"high": 0, "normal": 1, "low": 2}
REPLAN = pd.Timedelta(hours=1)
NEVER = pd.Timestamp.max.tz_localize("UTC")


@dataclass
class World:
    background: pd.DataFrame  # index: steps; columns: hosts; CPU percent without any run
    runs: list[Run]
    slots: int = 4
    targets: Targets = field(default_factory=Targets)


def workload(hosts: list[str], start: pd.Timestamp, days: int, seed: int = 0) -> list[Run]:
    """The job mix of the module docstring, deterministic by ``seed``."""
    rng = np.random.default_rng(seed)
    runs: list[Run] = []
    for h, host in enumerate(hosts):
        for day in range(days):
            d0 = start + pd.Timedelta(days=day)
            for hour in range(24):
                t = d0 + pd.Timedelta(hours=hour)
                runs.append(Run(f"health_check@{host}", host, t, pd.Timedelta(minutes=5), cpu=2.0, priority="high"))
                runs.append(Run(f"backlog@{host}", host, t + pd.Timedelta(minutes=20), pd.Timedelta(minutes=40),
                                cpu=12.0, priority="low", deadline=t + pd.Timedelta(hours=24)))  # fmt: skip
            for hour in (9, 14, 20):
                t = d0 + pd.Timedelta(hours=hour, minutes=10 * h)
                runs.append(Run(f"batch_{hour:02d}@{host}", host, t, pd.Timedelta(minutes=60), cpu=25.0,
                                priority="normal", deadline=t + pd.Timedelta(hours=6)))  # fmt: skip
            for _ in range(rng.poisson(24 * 0.25)):
                t = d0 + pd.Timedelta(minutes=int(rng.integers(0, 24 * 60)))
                runs.append(Run(f"adhoc@{host}", host, t.floor(STEP), pd.Timedelta(minutes=15), cpu=10.0,
                                priority="high"))  # fmt: skip
    return runs


@dataclass
class Outcome:
    policy: str
    started: dict[str, pd.Timestamp]  # run key -> start
    busy_slot_steps: int
    cpu: pd.DataFrame  # per step and host, background + runs
    plan_seconds: list[float] = field(default_factory=list)
    peaks: int = 0
    peaks_preempted: int = 0


def replay(world: World, policy: str, history: pd.DataFrame | None = None, replan: pd.Timedelta = REPLAN) -> Outcome:
    """Run ``world`` under ``policy`` (see the module docstring). ``history``: long-format points before the
    replay starts (the predictive policy's first profile); its later profiles add what the replay has seen."""
    steps = world.background.index
    hosts = list(world.background.columns)
    cpu = world.background.copy()
    keyed = {r.key: r for r in world.runs}
    waiting = sorted(world.runs, key=lambda r: (r.nominal, PRIORITY_ORDER[r.priority], r.job))
    running: list[tuple[pd.Timestamp, Run]] = []
    started: dict[str, pd.Timestamp] = {}
    busy = 0
    planned: dict[str, pd.Timestamp] = {}
    out = Outcome(policy, started, 0, cpu)
    next_plan = steps[0]
    seen = history if history is not None else pd.DataFrame(columns=["ts", "source", "metric", "value"])
    forecast_over: set[tuple[str, pd.Timestamp]] = set()
    for now in steps:
        running = [(end, r) for end, r in running if end > now]
        if policy == "predictive" and now >= next_plan:
            observed = world.background.loc[world.background.index < now]
            if len(observed):
                recent = observed.loc[observed.index >= (next_plan - replan)]
                long = recent.reset_index(names="ts").melt(id_vars="ts", var_name="source", value_name="value")
                seen = pd.concat([seen, long.assign(metric="cpu_percent")], ignore_index=True)
            profile = load_profile(seen)
            expected = expected_load(profile, hosts, now, pd.Timedelta(hours=24), step=STEP)
            for host, frame in expected.items():
                frame["mem"] = 0.0
                for t in frame.index[frame["cpu"].to_numpy() > world.targets.cpu]:
                    if t.floor("h") == t:
                        forecast_over.add((host, t))
            pending = [r for r in waiting if r.key not in started and r.nominal < now + pd.Timedelta(hours=24)]
            t0 = time.perf_counter()
            p = plan(expected, pending, now, targets=world.targets)
            out.plan_seconds.append(time.perf_counter() - t0)
            planned = {pl.run.key: pl.start for pl in p.placements}
            next_plan = now + replan
        load_now = {h: float(world.background.at[now, h]) for h in hosts}
        for _, r in running:
            load_now[r.host] += r.cpu
        slots_used = {h: sum(1 for _, r in running if r.host == h) for h in hosts}
        over_before = {h: now > steps[0] and float(cpu.at[now - STEP, h]) > world.targets.cpu for h in hosts}
        candidates = [r for r in waiting if r.key not in started and r.nominal <= now]
        if policy == "predictive":
            candidates = [
                r
                for r in waiting
                if r.key not in started
                and ((r.priority == "high" and r.nominal <= now) or planned.get(r.key, NEVER) <= now)
            ]
        candidates.sort(key=lambda r: (PRIORITY_ORDER[r.priority], r.nominal, r.job))
        for r in candidates:
            if slots_used[r.host] >= world.slots:
                continue
            if policy == "reactive" and r.priority != "high" and over_before[r.host]:
                continue
            started[r.key] = now
            running.append((now + r.duration, r))
            slots_used[r.host] += 1
            load_now[r.host] += r.cpu
        for h in hosts:
            cpu.at[now, h] = load_now[h]
        busy += sum(slots_used.values())
    out.busy_slot_steps = busy
    if policy == "predictive":
        out.peaks = len(forecast_over)
        out.peaks_preempted = sum(
            1
            for host, hour in forecast_over
            if not any(
                r.host == host and r.priority != "high" and started.get(r.key) is not None
                and started[r.key] < hour + pd.Timedelta(hours=1) and started[r.key] + r.duration > hour
                for r in keyed.values()
            )
        )  # fmt: skip
    return out


def score(world: World, out: Outcome) -> dict[str, float]:
    """The policy's figures (see the module docstring); shares as 0-1 fractions."""
    steps = world.background.index
    end = steps[-1] + STEP
    hourly = out.cpu.resample("h").mean()
    waits = [
        (out.started[r.key] - r.nominal).total_seconds()
        for r in world.runs
        if r.priority == "high" and r.key in out.started
    ]
    misses = 0
    for r in world.runs:
        if r.deadline is None or r.deadline > end:
            continue
        s = out.started.get(r.key)
        if s is None or s + r.duration > r.deadline:
            misses += 1
    return {
        "utilisation": out.busy_slot_steps / (world.slots * len(world.background.columns) * len(steps)),
        "hours_above_target": float((hourly.to_numpy() > world.targets.cpu).mean()),
        "hp_p95_wait_s": float(np.percentile(waits, 95)) if waits else 0.0,
        "deadline_misses": misses,
        "peaks_preempted": out.peaks_preempted / out.peaks if out.peaks else None,
        "runs_started": len(out.started),
    }
