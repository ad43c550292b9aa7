"""A deterministic discrete-event replay of a fleet's jobs under three scheduling policies.

The world: each host has its own background CPU (the simulator's rhythm and incidents) and ``slots`` worker
slots; a run holds a slot and adds its CPU to its host while it lasts. The work, the same for every policy:

- scheduled runs (``workload``): hourly light checks and ad-hoc runs (high priority), and heavy batch jobs
  three times a day with deadlines, one of them at the fleet's daily peak;
- a ``Backlog`` of deadline-free low-priority chunks, more than the fleet can run (a reprocessing queue):
  how much of it runs is what utilisation measures.

The policies, at one step of ``STEP``:

- ``static`` (cron): scheduled runs start at their nominal time when a slot is free (high priority first);
  the backlog job keeps ``cron_concurrency`` chunks running around the clock, the most the busiest hour of
  the history leaves room for (the rule a user writing a cron entry would follow);
- ``reactive`` (today's healing): scheduled runs as static, the backlog takes every free slot, and a host
  whose CPU was over the target at the last step starts no deferrable work until it is back under;
- ``predictive`` (this product): every ``REPLAN`` the planner places the next day's deferrable runs and the
  backlog's chunks against the load expected from the weekly profile of the data *before* that moment, with
  the runs in progress counted and one slot kept free for unplanned high-priority runs; runs start at their
  planned time (high priority always at once).

Measured (``score``): utilisation (busy slot-time over slot-time), the share of host-hours whose mean CPU
was over the target, the high-priority p95 wait, deadline misses, and the share of forecast peaks pre-empted:
a forecast peak is a host-hour where the load expected before it (the profile's upper level plus the work
static cron would run in it) is over the target; it is pre-empted when the hour's measured mean stayed under.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.scheduling.planner import ADVANCE, Run, Targets, plan
from rhythm_pipelines.scheduling.profiles import ANCHOR, anchored, expected_load, load_profile, merge_profiles

STEP = pd.Timedelta(minutes=5)
PRIORITY_ORDER = {"high": 0, "normal": 1, "low": 2}
REPLAN = pd.Timedelta(minutes=15)  # the sensor re-plans every few minutes; the replay every quarter hour
LOOKAHEAD = pd.Timedelta(hours=2)  # how much backlog each plan is offered: enough to fill this long
NEVER = pd.Timestamp.max.tz_localize("UTC")


@dataclass(frozen=True)
class Backlog:
    """Deadline-free low-priority chunks, always more waiting than the fleet can run."""

    duration: pd.Timedelta = pd.Timedelta(minutes=30)
    cpu: float = 5.0
    mem: float = 0.0

    def chunk(self, host: str, at: pd.Timestamp, n: int) -> Run:
        return Run(f"backlog@{host}#{n}", host, at, self.duration, self.cpu, self.mem, priority="low")


@dataclass
class World:
    background: pd.DataFrame  # index: steps; columns: hosts; CPU percent without any run
    runs: list[Run]  # the scheduled runs
    slots: int = 8
    targets: Targets = field(default_factory=Targets)
    backlog: Backlog = field(default_factory=Backlog)
    reserve: int = 1  # slots the predictive plan keeps free for unplanned high-priority runs
    unannounced: tuple[str, ...] = ("adhoc@",)  # jobs whose runs nobody knows of before they are due


def workload(hosts: list[str], start: pd.Timestamp, days: int, seed: int = 0) -> list[Run]:
    """The scheduled runs of the module docstring, deterministic by ``seed``."""
    rng = np.random.default_rng(seed)
    runs: list[Run] = []
    for h, host in enumerate(hosts):
        for day in range(days):
            d0 = start + pd.Timedelta(days=day)
            for hour in range(24):
                t = d0 + pd.Timedelta(hours=hour)
                runs.append(Run(f"health_check@{host}", host, t, pd.Timedelta(minutes=5), cpu=2.0, priority="high"))
            for hour in (9, 14, 20):
                t = d0 + pd.Timedelta(hours=hour, minutes=10 * h)
                runs.append(Run(f"batch_{hour:02d}@{host}", host, t, pd.Timedelta(minutes=60), cpu=30.0,
                                priority="normal", deadline=t + pd.Timedelta(hours=6)))  # fmt: skip
            for _ in range(rng.poisson(24 * 0.25)):
                t = d0 + pd.Timedelta(minutes=int(rng.integers(0, 24 * 60)))
                runs.append(Run(f"adhoc@{host}", host, t.floor(STEP), pd.Timedelta(minutes=15), cpu=10.0,
                                priority="high"))  # fmt: skip
    return runs


def cron_concurrency(world: World, history: pd.DataFrame) -> dict[str, int]:
    """Per host, the backlog chunks a static cron keeps running: the most the busiest hour of the week in the
    history (its mean CPU) leaves room for under the target, one slot left for everything else."""
    profile = load_profile(history[history["metric"] == "cpu_percent"])
    out = {}
    for host in world.background.columns:
        busiest = profile.loc[profile["source"] == host, "mean"].max()
        room = world.targets.cpu - (busiest if pd.notna(busiest) else 0.0)
        out[host] = int(np.clip(np.floor(room / world.backlog.cpu), 0, world.slots - 1))
    return out


def forecasts(
    world: World,
    history: pd.DataFrame,
    every: pd.Timedelta = REPLAN,
    anchor: pd.Timedelta | None = ANCHOR,
    z: float = 1.0,
) -> dict[pd.Timestamp, dict]:
    """At each ``every`` of the replay, the next 24 h of load expected per host from the weekly profile of
    ``history`` plus the replay's background seen so far (never later), anchored to the last ``anchor`` of
    measurements when given; ``z``: spreads above the mean (``profiles.expected_load``)."""
    bg = world.background
    hosts = list(bg.columns)
    profile = load_profile(history[history["metric"] == "cpu_percent"])
    out: dict[pd.Timestamp, dict] = {}
    t, last = bg.index[0], bg.index[0]
    while t <= bg.index[-1]:
        seen = bg.loc[(bg.index >= last) & (bg.index < t)]
        if len(seen):
            long = seen.reset_index(names="ts").melt(id_vars="ts", var_name="source", value_name="value")
            profile = merge_profiles(profile, load_profile(long.assign(metric="cpu_percent")))
        expected = expected_load(profile, hosts, t, pd.Timedelta(hours=24), step=STEP, z=z)
        if anchor is not None and t > bg.index[0]:
            recent = bg.loc[(bg.index >= t - anchor) & (bg.index < t)]
            then = expected_load(profile, hosts, t - anchor, anchor, step=STEP, upper=False)
            for host, frame in expected.items():
                frame["cpu"] = anchored(frame["cpu"], float(recent[host].mean() - then[host]["cpu"].mean()), t)
        for frame in expected.values():
            frame["mem"] = 0.0
        out[t] = expected
        last, t = t, t + every
    return out


@dataclass
class Outcome:
    policy: str
    started: dict[str, pd.Timestamp]  # run key -> start
    busy_slot_steps: int
    cpu: pd.DataFrame  # per step and host, background + runs
    plan_seconds: list[float] = field(default_factory=list)
    backlog_runs: int = 0


def replay(
    world: World,
    policy: str,
    history: pd.DataFrame,
    expected: dict[pd.Timestamp, dict] | None = None,
) -> Outcome:
    """Run ``world`` under ``policy`` (see the module docstring). ``history``: long-format points before the
    replay (the cron rule's busiest hour); ``expected``: ``forecasts(world, history)`` (the predictive
    policy's input, computed once for a comparison)."""
    if policy not in ("static", "reactive", "predictive"):
        raise ValueError(f"unknown policy {policy!r}: static, reactive or predictive")
    steps = world.background.index
    hosts = list(world.background.columns)
    col = {h: i for i, h in enumerate(hosts)}
    bg = world.background.to_numpy(dtype="float64")
    cpu = bg.copy()
    target = world.targets.cpu
    backlog = world.backlog
    cron = cron_concurrency(world, history)
    if policy == "predictive" and expected is None:
        expected = forecasts(world, history)
    scheduled = sorted(world.runs, key=lambda r: (r.nominal, PRIORITY_ORDER[r.priority], r.job))
    ptr = 0
    queue: list[Run] = []  # due (or planned) and not started
    running: list[tuple[pd.Timestamp, Run, pd.Timestamp]] = []  # (end, run, start)
    started: dict[str, pd.Timestamp] = {}
    chunks = dict.fromkeys(hosts, 0)
    out = Outcome(policy, started, 0, pd.DataFrame())
    planned: dict[str, pd.Timestamp] = {}
    fill_starts: dict[str, list[pd.Timestamp]] = {h: [] for h in hosts}

    def start(r: Run, now: pd.Timestamp) -> None:
        started[r.key] = now
        running.append((now + r.duration, r, now))

    for j, now in enumerate(steps):
        running = [x for x in running if x[0] > now]
        while ptr < len(scheduled) and scheduled[ptr].nominal <= now:
            if scheduled[ptr].key not in started:  # a plan may have pulled it earlier
                queue.append(scheduled[ptr])
            ptr += 1
        if policy == "predictive" and expected is not None and now in expected:
            horizon_end = now + pd.Timedelta(hours=24)
            ahead = [
                r for r in scheduled[ptr:]
                if r.nominal < horizon_end and r.key not in started and not r.job.startswith(world.unannounced)
            ]  # fmt: skip
            pending = queue + ahead  # high-priority ones are fixed load at their time (the due ones start now)
            offer = int(np.ceil(world.slots * LOOKAHEAD / backlog.duration))
            fill = [backlog.chunk(h, now, i) for h in hosts for i in range(offer)]
            t0 = time.perf_counter()
            p = plan(expected[now], pending, now, targets=world.targets, running=[(r, s) for _, r, s in running],
                     fill=fill, workers=world.slots, reserve=world.reserve)  # fmt: skip
            out.plan_seconds.append(time.perf_counter() - t0)
            planned = {pl.run.key: pl.start for pl in p.placements if not pl.run.job.startswith("backlog@")}
            fill_starts = {h: sorted(pl.start for pl in p.placements if pl.run.job.startswith(f"backlog@{h}#"))
                           for h in hosts}  # fmt: skip
        count = dict.fromkeys(hosts, 0)
        mine = dict.fromkeys(hosts, 0)  # backlog chunks running
        load = bg[j].copy()
        for _, r, _ in running:
            count[r.host] += 1
            load[col[r.host]] += r.cpu
            mine[r.host] += r.job.startswith("backlog@")
        over_before = cpu[j - 1] > target if j else np.zeros(len(hosts), dtype=bool)

        early = []
        if policy == "predictive":  # runs the plan pulled before their nominal time
            for r in scheduled[ptr:]:
                if r.nominal >= now + ADVANCE:
                    break
                if r.priority != "high" and planned.get(r.key, NEVER) <= now and r.key not in started:
                    early.append(r)
        queue.sort(key=lambda r: (PRIORITY_ORDER[r.priority], r.nominal, r.job))
        left = []
        for r in queue + early:
            if count[r.host] >= world.slots:
                go = False
            elif r.priority == "high":
                go = True
            elif policy == "reactive":
                go = not over_before[col[r.host]]
            else:
                go = policy == "static" or planned.get(r.key, NEVER) <= now
            if go:
                start(r, now)
                count[r.host] += 1
                load[col[r.host]] += r.cpu
            elif r.nominal <= now:
                left.append(r)
        queue = left
        for h in hosts:
            want = {
                "static": cron[h] - mine[h],
                "reactive": world.slots if not over_before[col[h]] else 0,
                "predictive": sum(1 for s in fill_starts[h] if s <= now),
            }[policy]
            while want > 0 and count[h] < world.slots:
                start(backlog.chunk(h, now, chunks[h]), now)
                chunks[h] += 1
                count[h] += 1
                load[col[h]] += backlog.cpu
                want -= 1
                if policy == "predictive":
                    fill_starts[h].pop(0)
        cpu[j] = load
        out.busy_slot_steps += sum(count.values())
    out.cpu = pd.DataFrame(cpu, index=steps, columns=hosts)
    out.backlog_runs = sum(chunks.values())
    return out


def forecast_peaks(
    world: World, history: pd.DataFrame, expected: dict[pd.Timestamp, dict]
) -> list[tuple[str, pd.Timestamp]]:
    """Host-hours the forecast made at the hour's start put over the CPU target with static cron's work in
    them (its scheduled runs at their nominal times and its backlog concurrency): the peaks to pre-empt."""
    steps = world.background.index
    cron = cron_concurrency(world, history)
    nominal = pd.DataFrame(0.0, index=steps, columns=world.background.columns)
    for r in world.runs:
        nominal.loc[(steps >= r.nominal) & (steps < r.nominal + r.duration), r.host] += r.cpu
    nominal += pd.Series({h: k * world.backlog.cpu for h, k in cron.items()})
    hourly_nominal = nominal.resample("h").mean()
    out = []
    for t, frames in expected.items():
        if t.floor("h") != t or t not in hourly_nominal.index:
            continue
        for host, frame in frames.items():
            first_hour = frame.loc[frame.index < t + pd.Timedelta(hours=1), "cpu"].mean()
            if first_hour + hourly_nominal.at[t, host] > world.targets.cpu:
                out.append((host, t))
    return out


def score(world: World, out: Outcome, peaks: list[tuple[str, pd.Timestamp]] | None = None) -> dict[str, float | None]:
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
    preempted = [hourly.at[t, h] <= world.targets.cpu for h, t in peaks or []]
    return {
        "utilisation": out.busy_slot_steps / (world.slots * len(world.background.columns) * len(steps)),
        "hours_above_target": float((hourly.to_numpy() > world.targets.cpu).mean()),
        "hp_p95_wait_s": float(np.percentile(waits, 95)) if waits else 0.0,
        "deadline_misses": misses,
        "peaks_preempted": float(np.mean(preempted)) if preempted else None,
        "runs_started": len(out.started),
        "backlog_runs": out.backlog_runs,
    }
