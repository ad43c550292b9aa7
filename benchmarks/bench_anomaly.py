"""Anomaly detection speed: batch scoring throughput per detector (channels + record threshold) over
1 million points, and the per-point latency of the streaming path (detector update + threshold update).

Then the parts only method ``auto`` adds: the host-gauge profile (the ensemble rise-only on the MAD spread
under the fixed bar), the memory leak test (Mann–Kendall over a thinned 2-hour window at every point, timed
over ``--leak-points``) and the channels' count-aware tests over ``--calls`` raw calls.

Usage: python benchmarks/bench_anomaly.py [--points 1000000] [--stream-points 20000] [--iforest-points 100000]
       [--leak-points 20000] [--calls 1000000]
The IsolationForest refits every 500 points, so it is timed over fewer points (``--iforest-points``).
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

from rhythm_pipelines.anomaly.channels import CHANNEL_TESTS, ChannelTests  # noqa: E402
from rhythm_pipelines.anomaly.detectors import DETECTORS, Ensemble, make_detector  # noqa: E402
from rhythm_pipelines.anomaly.profiles import GAUGE_MEMBERS  # noqa: E402
from rhythm_pipelines.anomaly.threshold import FixedBar  # noqa: E402
from rhythm_pipelines.anomaly.trend import LeakTest  # noqa: E402
from rhythm_pipelines.anomaly.tuning import DEFAULT  # noqa: E402


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def bench_auto(x: np.ndarray, stamps: pd.DatetimeIndex, leak_points: int, n_calls: int) -> None:
    n = len(x)
    det, bar = Ensemble(direction="up", spread="mad", members=GAUGE_MEMBERS), FixedBar()
    (dev, z), score_s = timed(det.deviations, x, stamps)
    _, flag_s = timed(lambda: bar.flags(bar.scores(dev, z, det.spans)))
    print(f"{'gauge':12s} batch: {n / (score_s + flag_s):>10,.0f} points/s (ensemble up, MAD spread, fixed bar)")
    minutes = pd.date_range("2026-01-01", periods=leak_points, freq="min", tz="UTC")
    _, leak_s = timed(LeakTest().scores, x[:leak_points], minutes)
    test, lat = LeakTest(), []
    for v, t in zip(x[:2000], minutes[:2000], strict=True):
        t0 = time.perf_counter()
        test.update(float(v), t)
        lat.append(1e6 * (time.perf_counter() - t0))
    print(
        f"{'leak':12s} batch: {leak_points / leak_s:>10,.0f} points/s (over {leak_points:,} minute points) | "
        f"streaming: p50 {statistics.median(lat):.0f} us per point"
    )
    rng = np.random.default_rng(1)
    span_s = n_calls / 3 * 60  # 3 calls a minute
    ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, span_s, n_calls)), unit="s")
    calls = pd.DataFrame(
        {
            "ts": ts,
            "status": np.where(rng.random(n_calls) < 0.01, "error", "ok"),
            "latency_ms": 500 * np.exp(rng.normal(0, 0.35, n_calls)),
            "cost_usd": 0.002 * np.exp(rng.normal(0, 0.6, n_calls)),
        }
    )
    grid = pd.date_range(ts[0].floor("min"), ts[-1], freq="min")
    for metric in CHANNEL_TESTS:
        _, s = timed(ChannelTests().scores, calls, grid, metric)
        print(f"{'channel':12s} {metric:15s}: {n_calls / s:>10,.0f} calls/s ({len(grid):,} minutes scored)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--stream-points", type=int, default=20_000)
    parser.add_argument("--iforest-points", type=int, default=100_000)
    parser.add_argument("--leak-points", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--only", default="", help="comma-separated detectors (default: all, then auto's parts)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = 50 + 10 * np.sin(np.arange(args.points) * 2 * np.pi / 288) + rng.normal(0, 2, args.points)
    stamps = pd.date_range("2026-01-01", periods=args.points, freq="5min", tz="UTC")
    print(f"{args.points:,} points of a daily sine + noise; streaming latency over {args.stream_points:,} points")
    for name in args.only.split(",") if args.only else DETECTORS:
        n = args.iforest_points if name == "iforest" else args.points
        det, th = make_detector(name), DEFAULT.threshold()
        t0 = time.perf_counter()
        dev, z = det.deviations(x[:n], stamps[:n])
        score_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        th.flags(th.scores(dev, z, det.spans, stamps[:n]))
        flag_s = time.perf_counter() - t0
        live, th = make_detector(name), DEFAULT.threshold()
        spans, lat = live.spans, []
        for v, t in zip(x[: args.stream_points], stamps[: args.stream_points], strict=True):
            t0 = time.perf_counter()
            th.update(*live.update(float(v), t), spans, t)
            lat.append(time.perf_counter() - t0)
        lat_us = sorted(1e6 * v for v in lat)
        print(
            f"{name:12s} batch: {n / (score_s + flag_s):>10,.0f} points/s ({n / score_s:,.0f} scoring, "
            f"{n / flag_s:,.0f} thresholding, over {n:,}) | streaming: p50 {statistics.median(lat_us):.1f} us, "
            f"p99 {lat_us[int(0.99 * len(lat_us))]:.1f} us, max {lat_us[-1]:.0f} us per point"
        )
    if not args.only:
        bench_auto(x, stamps, args.leak_points, args.calls)


if __name__ == "__main__":
    main()
