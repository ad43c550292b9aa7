"""Cost optimiser speed and the simulator's savings.

1. HiGHS solve time for a routing problem of 200 channels x 20 request classes, with one mix per day
   (4,000 variables) and with hourly mixes (96,000 variables): rate limits, error ceiling, budget and a p95 SLO.
2. The budget sweep of 50 points (the cost_pareto_frontier asset's trade-off curve) on the same problem.
3. ``rhythm cost optimize`` figures on the simulator's channel workload (fit on 2 days, replay the 3rd), at
   the default 3 calls/min per channel and region and at 30 (where the catalog's rate limits bind).

Usage: python benchmarks/bench_cost.py [--channels 200] [--classes 20] [--repeat 5] [--skip-sim]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rhythm_pipelines.cost import catalog as catalogs  # noqa: E402
from rhythm_pipelines.cost.evaluation import evaluate  # noqa: E402
from rhythm_pipelines.cost.frontier import budget_curve  # noqa: E402
from rhythm_pipelines.cost.optimizer import GRID_MS, RoutingProblem, solve  # noqa: E402
from rhythm_pipelines.simulate import SimConfig, simulate  # noqa: E402


def synthetic(channels: int, classes: int, slots: int, seed: int = 0) -> RoutingProblem:
    """A random but feasible problem: quality tiers, log-normal latencies, limits that bind."""
    rng = np.random.default_rng(seed)
    quality = rng.integers(1, 4, channels)
    need = rng.integers(1, 4, classes)
    allowed = quality[None, :] >= need[:, None]
    allowed[:, np.argmax(quality)] = True  # at least one channel serves every class
    medians = rng.uniform(80, 2500, channels)
    samples = [np.sort(rng.lognormal(np.log(m), 0.35, 300)) for m in medians]
    hours = np.arange(slots) * 24 // slots
    rhythm = 0.3 + 0.7 * (0.5 - 0.5 * np.cos(2 * np.pi * (hours - 2) / 24))
    per_day = rng.uniform(2_000, 20_000, classes)[None, :] * rhythm[:, None] / rhythm.sum()
    peak = per_day / (1440 / slots) * 1.3
    total_peak = peak.sum(axis=1).max()
    return RoutingProblem(
        classes=[f"class{k}" for k in range(classes)],
        routes=[f"ch{j}@r" for j in range(channels)],
        slots=list(hours),
        calls_per_day=per_day,
        peak_per_min=peak,
        tokens_per_call=rng.uniform(300, 3000, classes),
        cost=rng.uniform(0.0001, 0.02, (classes, channels)) * quality[None, :],
        allowed=allowed,
        mean_latency=np.tile([s.mean() for s in samples], (slots, 1)),
        error_rate=rng.uniform(0, 0.05, channels),
        rpm=rng.uniform(0.02, 0.1, channels) * total_peak,  # each route carries at most a tenth of the peak
        tpm=np.full(channels, np.inf),
        survival=np.array([1 - np.searchsorted(s, GRID_MS, side="right") / len(s) for s in samples]),
        samples=samples,
        utilisation=0.9,
    )


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-sim", action="store_true")
    args = parser.parse_args()
    solve(synthetic(60, 2, 1), objective="cost")  # import scipy and warm up HiGHS outside the timings

    print(f"== optimiser: {args.channels} channels x {args.classes} classes (median of {args.repeat})")
    for slots in (1, 24):
        p = synthetic(args.channels, args.classes, slots)
        n = int(p.allowed.sum()) * slots
        cheapest = solve(p, objective="cost", max_error_rate=0.05, p95_slo_ms=3000).expected["cost_usd"]
        t_cost, _ = timed(lambda p=p: solve(p, objective="cost", max_error_rate=0.05), args.repeat)
        t_lat, plan = timed(
            lambda p=p, c=cheapest: solve(p, budget=c * 1.2, max_error_rate=0.05, p95_slo_ms=3000), args.repeat
        )
        print(
            f"slots {slots:2d} ({n:,} variables): min cost {t_cost * 1000:7.1f} ms; "
            f"min latency within budget + p95 SLO {t_lat * 1000:7.1f} ms "
            f"(mean latency {plan.expected['mean_latency_ms']:.0f} ms)"
        )
    p = synthetic(args.channels, args.classes, 1)
    t_sweep, curve = timed(lambda: budget_curve(p, points=50, max_error_rate=0.05), 1)
    print(f"budget sweep, 50 points, one mix per day: {t_sweep:.2f} s ({len(curve)} feasible points)")
    p24 = synthetic(args.channels, args.classes, 24)
    t_sweep24, curve24 = timed(lambda: budget_curve(p24, points=50, max_error_rate=0.05), 1)
    print(f"budget sweep, 50 points, hourly mixes:        {t_sweep24:.2f} s ({len(curve24)} feasible points)")

    if args.skip_sim:
        return
    catalog = catalogs.load()
    for cpm in (3.0, 30.0):
        sim = simulate(
            SimConfig(hosts=1, days=3, seed=0, calls_per_minute=cpm, start=pd.Timestamp("2026-03-02", tz="UTC"))
        )
        t = time.perf_counter()
        ev = evaluate(sim.calls, catalog)
        elapsed = time.perf_counter() - t
        r = ev.as_dict()
        print(f"\n== simulator, {cpm:g} calls/min per channel and region: {len(sim.calls):,} calls, "
              f"fit + replay {elapsed:.1f} s; plan: {r['mode']}")  # fmt: skip
        print(
            f"{'policy':12s} {'cost $':>9s} {'vs obs':>7s} {'mean ms':>8s} {'vs obs':>7s} {'p95 ms':>7s} {'errors':>7s}"
        )
        base = r["baseline"]
        for name, o in {"observed": base, "plan": r["plan"], **r["policies"]}.items():
            print(
                f"{name:12s} {o['cost_usd']:9.2f} {o['cost_usd'] / base['cost_usd'] - 1:+7.1%} "
                f"{o['mean_latency_ms']:8.1f} {o['mean_latency_ms'] / base['mean_latency_ms'] - 1:+7.1%} "
                f"{o['p95_latency_ms']:7.1f} {o['error_rate']:7.2%}"
            )
        print(f"dominated by (beyond 0.5% on both cost and latency): {r['dominated_by'] or 'none'}")


if __name__ == "__main__":
    main()
