"""Recurring causes for the simulator: the same root causes coming back with jitter, each with a precursor.

What a learner of failure patterns should find (``SimConfig(recurring=True)``), beside the one-off incidents:

- ``leak_oom``: a worker host's process leaks memory every ~10 h (± 1.5 h): memory climbs 30–42 points over
  3–4.5 h until the process is killed (OOM) and restarts. Precursor: memory rising for an hour or more.
- ``batch_cascade``: on weekdays at 09:00 (± 8 min) a batch on a db host first stages (its CPU rises 12–18
  points over 20 min), then saturates it (92–98 %) for 20–35 min; its dependents' CPU follows 2–6 min later.
  Labelled ``cascade`` on the db host and on each dependent, all with the db host as ``root``.
- ``rate_limit``: a channel@region's hourly quota: on weekdays from 12:00 to 15:00 its traffic triples after
  each reset, the quota runs out at about :40 (± 6 min) and its calls fail (rate limited) until the next
  reset. Labelled ``error_burst``. Precursor: the traffic level after the reset.

Each incident is labelled like the one-off ones, plus ``cause`` (``leak_oom`` …; empty for one-off incidents),
which only the evaluation's breakdown reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

Label = Callable[..., None]  # label(a, b, source, metric, kind, magnitude, root, cause=)


@dataclass(frozen=True)
class Placement:
    """Where the recurring causes strike: chosen from the fleet, deterministic by seed."""

    leak_host: str
    batch_host: str
    channel: str  # channel@region

    @classmethod
    def choose(cls, hosts: list[str], dependents: dict[str, list[str]], pairs: list[str], rng) -> Placement:
        roots = [h for h in hosts if dependents.get(h)] or hosts
        workers = [h for h in hosts if h.startswith("worker")] or hosts
        batch = roots[int(rng.integers(0, len(roots)))]
        leak = [h for h in workers if h != batch] or workers
        return cls(leak[int(rng.integers(0, len(leak)))], batch, pairs[int(rng.integers(0, len(pairs)))])


def ramp(n: int, a: int, onset: int, b: int) -> np.ndarray:
    """0 before a, rising linearly to 1 over `onset` steps, 1 until b, 0 after."""
    x = np.zeros(n)
    idx = np.arange(n)
    on = (idx >= a) & (idx < b)
    x[on] = np.minimum(1.0, (idx[on] - a + 1) / max(onset, 1))
    return x


def plan(
    grid: pd.DatetimeIndex,
    first: int,
    place: Placement,
    dependents: dict[str, list[str]],
    host_fx: dict[str, dict[str, np.ndarray]],
    chan_fx: dict[str, dict[str, np.ndarray]],
    busy: dict[str, list[tuple[int, int]]],
    label: Label,
    rng: np.random.Generator,
) -> None:
    """Add the recurring causes' effects to the fleet's effect arrays, mark their spans busy (so one-off
    incidents keep clear of them) and label each occurrence. Steps before ``first`` are warm-up."""
    n = len(grid)
    step_min = (grid[1] - grid[0]) / pd.Timedelta(minutes=1) if n > 1 else 1.0
    m = lambda minutes: max(1, int(round(minutes / step_min)))  # noqa: E731

    # leak_oom: every ~10 h on one worker host
    t = first + m(rng.uniform(0, 240))
    while True:
        length = m(rng.uniform(180, 270))
        if t + length >= n - 1:
            break
        rise = rng.uniform(30, 42)
        host_fx[place.leak_host]["mem"] += rise * ramp(n, t, length, t + length)
        busy.setdefault(place.leak_host, []).append((t, t + length))
        label(t, t + length, place.leak_host, "mem_percent", "memory_leak", round(float(rise), 1), place.leak_host,
              cause="leak_oom")  # fmt: skip
        t += m(rng.normal(600, 90))

    # batch_cascade: weekdays 09:00 on the db host, its dependents after a lag
    days = pd.date_range(grid[0].normalize(), grid[-1].normalize(), freq="D")
    for day in days:
        if day.dayofweek >= 5:
            continue
        at = grid.searchsorted(day + pd.Timedelta(hours=9) + pd.Timedelta(minutes=float(rng.uniform(-8, 8))))
        stage, length = m(20), m(rng.uniform(20, 35))
        if at - stage < first or at + length + m(10) >= n:
            continue
        fx = host_fx[place.batch_host]
        fx["cpu_dep"] += rng.uniform(12, 18) * ramp(n, at - stage, stage, at)
        level = rng.uniform(92, 98)
        fx["cpu"] = np.maximum(fx["cpu"], level * ramp(n, at, m(2), at + length))
        busy.setdefault(place.batch_host, []).append((at - stage, at + length))
        label(at, at + length, place.batch_host, "cpu_percent", "cascade", round(float(level), 1), place.batch_host,
              cause="batch_cascade")  # fmt: skip
        for d in dependents.get(place.batch_host, []):
            lag = m(rng.uniform(2, 6))
            bump = rng.uniform(25, 40)
            host_fx[d]["cpu_dep"] += bump * ramp(n, at + lag, m(2), at + length + lag)
            busy.setdefault(d, []).append((at + lag, at + length + lag))
            label(at + lag, at + length + lag, d, "cpu_percent", "cascade", round(float(bump), 1), place.batch_host,
                  cause="batch_cascade")  # fmt: skip

    # rate_limit: weekdays 12:00-15:00, the hourly quota runs out at about :40
    fx = chan_fx[place.channel]
    for day in days:
        if day.dayofweek >= 5:
            continue
        for hour in (12, 13, 14):
            reset = grid.searchsorted(day + pd.Timedelta(hours=hour))
            out = reset + m(rng.uniform(34, 46))
            end = reset + m(60)
            if reset < first or end >= n:
                continue
            fx["rate"][reset:end] += 2.0
            p = rng.uniform(0.5, 0.8)
            fx["err"] += p * ramp(n, out, m(2), end)
            busy.setdefault(place.channel, []).append((reset, end))
            label(out, end, place.channel, "error_rate", "error_burst", round(float(p), 3), place.channel,
                  cause="rate_limit")  # fmt: skip
