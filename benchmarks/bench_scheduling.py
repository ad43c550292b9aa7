"""Scheduling benchmark: 14 days of a simulated fleet's runs replayed under static cron, reactive pausing and
the predictive planner (``scheduling/replay.py``), the same work for each, the plan made only from data before
each decision (a week of history before the replay seeds the profile; ad-hoc runs are unknown until due).

Usage: python benchmarks/bench_scheduling.py [--days 14] [--hosts 6] [--slots 8] [--chunk-cpu 5] [--reserve 1]
       [--seed 5] [--json]

The work: hourly health checks and ~6 ad-hoc runs a day per host (high priority), three 60-minute 30 % batch
jobs a day with 6 h deadlines (one at the daily peak), and a backlog of 30-minute 5 % chunks larger than the
fleet: utilisation (busy worker slots over slots) is how much of it a policy runs. Static cron keeps the
backlog at the concurrency the history's busiest hour allows (the rule a user writing a cron entry follows);
reactive fills every free slot and pauses while CPU is over 80 %; predictive fills the forecast valleys.

Figures (2026-11-30; the world's parameters, 8 slots, 5 % chunks, one slot reserved, re-planning every 15 min
anchored to the last 15 min, were chosen while looking at seed 5: in-sample; seeds 6 and 7 held out):

    seed 5 (in-sample)   utilisation  hours>80%  hp p95 wait  misses  peaks pre-empted
      static                 0.658      11.5 %       0 s         0        35 %
      reactive               0.956      20.1 %    1200 s         0        24 %
      predictive             0.746       1.2 %       0 s         0        97 %
    seed 6 (held out)  static 0.429 / 6.5 % / 0 s / 0 / 41 %;  reactive 0.954 / 22.0 % / 1200 s / 0 / 23 %;
                       predictive 0.741 / 1.2 % / 0 s / 0 / 99 %
    seed 7 (held out)  static 0.658 / 12.9 % / 0 s / 0 / 35 %;  reactive 0.950 / 24.1 % / 1200 s / 0 / 27 %;
                       predictive 0.734 / 0.9 % / 0 s / 0 / 97 %

Planning 24 h for 100 jobs x 6 hosts: p99 19-26 ms; the replay's re-plans (scheduled runs and ~190 backlog
chunks) p99 38-200 ms. Utilisation stays under the 85 % target: one slot in eight is kept for unplanned
high-priority runs (the ceiling is 87.5 % plus what those runs use), and the forecast's upper level leaves
room for an overrun; with no slot kept (``--reserve 0``) see the closing note of issue 18.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rhythm_pipelines.scheduling.planner import Run, plan  # noqa: E402
from rhythm_pipelines.scheduling.profiles import expected_load, load_profile  # noqa: E402
from rhythm_pipelines.scheduling.replay import STEP, Backlog, World, forecast_peaks, forecasts, replay, score, workload  # noqa: E402
from rhythm_pipelines.simulate import SimConfig, simulate  # noqa: E402

START = pd.Timestamp("2026-03-09", tz="UTC")  # a Monday
KEYS = ("utilisation", "hours_above_target", "hp_p95_wait_s", "deadline_misses", "peaks_preempted")


def fleet(days: int, hosts: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(background CPU per 5-minute step and host for the replay, a week of history before it)."""
    sim = simulate(SimConfig(hosts=hosts, days=days + 7, seed=seed, start=START - pd.Timedelta(days=7)))
    m = sim.metrics[(sim.metrics["metric"] == "cpu_percent") & ~sim.metrics["source"].str.contains("/")]
    bg = m.pivot_table(index="ts", columns="source", values="value").resample(STEP).mean().ffill()
    return bg[bg.index >= START], m[m["ts"] < START]


def plan_100_jobs(history: pd.DataFrame, hosts: list[str], repeats: int = 20) -> float:
    """p99 seconds to plan 24 h for 100 deferrable jobs over the hosts (the issue's planning-speed figure)."""
    profile = load_profile(history)
    expected = expected_load(profile, hosts, START, pd.Timedelta(hours=24), step=STEP)
    for frame in expected.values():
        frame["mem"] = 0.0
    runs = [
        Run(f"job{i}", hosts[i % len(hosts)], START + pd.Timedelta(minutes=13 * i), pd.Timedelta(minutes=30 + i % 60),
            cpu=5.0 + i % 25, priority=("normal", "low")[i % 2], deadline=START + pd.Timedelta(hours=6 + i % 18))
        for i in range(100)
    ]  # fmt: skip
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan(expected, runs, START)
        times.append(time.perf_counter() - t0)
    return float(pd.Series(times).quantile(0.99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--hosts", type=int, default=6)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--chunk-cpu", type=float, default=Backlog().cpu, help="CPU percent of a backlog chunk")
    ap.add_argument("--reserve", type=int, default=1, help="slots the planner keeps for unplanned high priority")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    bg, history = fleet(args.days, args.hosts, args.seed)
    hosts = list(bg.columns)
    runs = workload(hosts, START, args.days, args.seed)
    world = World(bg, runs, slots=args.slots, backlog=Backlog(cpu=args.chunk_cpu), reserve=args.reserve)
    t0 = time.perf_counter()
    expected = forecasts(world, history)
    forecast_s = round(time.perf_counter() - t0, 1)
    peaks = forecast_peaks(world, history, expected)
    policies, replay_s, plans, extra = {}, {}, [], {}
    for policy in ("static", "reactive", "predictive"):
        t0 = time.perf_counter()
        out = replay(world, policy, history, expected)
        replay_s[policy] = round(time.perf_counter() - t0, 1)
        figures = score(world, out, peaks)
        policies[policy] = {k: figures[k] for k in KEYS}
        extra[policy] = {k: figures[k] for k in figures if k not in KEYS}
        plans += out.plan_seconds
    report = {
        "policies": policies,
        "plan_s_p99": plan_100_jobs(history, hosts),
        "replan_s_p99": float(pd.Series(plans).quantile(0.99)) if plans else None,
        "runs": len(world.runs),
        "days": args.days,
        "hosts": len(hosts),
        "slots": args.slots,
        "replay_s": replay_s,
        "forecast_s": forecast_s,
        "forecast_peaks": len(peaks),
        "runs_by_policy": extra,
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(pd.DataFrame(policies).T.to_string())
    print(f"plan 24 h for 100 jobs: p99 {report['plan_s_p99'] * 1000:.0f} ms; hourly re-plans in the replay: p99 "
          f"{(report['replan_s_p99'] or 0) * 1000:.0f} ms; {len(world.runs)} runs over {args.days} days, {len(hosts)} "
          f"hosts x {args.slots} slots; replay seconds {replay_s}")  # fmt: skip


if __name__ == "__main__":
    main()
