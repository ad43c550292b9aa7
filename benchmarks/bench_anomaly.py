"""Anomaly detection speed: batch scoring throughput per detector (channels + record threshold) over
1 million points, and the per-point latency of the streaming path (detector update + threshold update).

Usage: python benchmarks/bench_anomaly.py [--points 1000000] [--stream-points 20000] [--iforest-points 100000]
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

from rhythm_pipelines.anomaly.detectors import DETECTORS, make_detector  # noqa: E402
from rhythm_pipelines.anomaly.threshold import RecordThreshold  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--stream-points", type=int, default=20_000)
    parser.add_argument("--iforest-points", type=int, default=100_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = 50 + 10 * np.sin(np.arange(args.points) * 2 * np.pi / 288) + rng.normal(0, 2, args.points)
    stamps = pd.date_range("2026-01-01", periods=args.points, freq="5min", tz="UTC")
    print(f"{args.points:,} points of a daily sine + noise; streaming latency over {args.stream_points:,} points")
    for name in DETECTORS:
        n = args.iforest_points if name == "iforest" else args.points
        det, th = make_detector(name), RecordThreshold()
        t0 = time.perf_counter()
        dev, z = det.deviations(x[:n], stamps[:n])
        score_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        th.flags(th.scores(dev, z, det.spans))
        flag_s = time.perf_counter() - t0
        live, th = make_detector(name), RecordThreshold()
        spans, lat = live.spans, []
        for v, t in zip(x[: args.stream_points], stamps[: args.stream_points], strict=True):
            t0 = time.perf_counter()
            th.update(*live.update(float(v), t), spans)
            lat.append(time.perf_counter() - t0)
        lat_us = sorted(1e6 * v for v in lat)
        print(
            f"{name:12s} batch: {n / (score_s + flag_s):>10,.0f} points/s ({n / score_s:,.0f} scoring, "
            f"{n / flag_s:,.0f} thresholding, over {n:,}) | streaming: p50 {statistics.median(lat_us):.1f} us, "
            f"p99 {lat_us[int(0.99 * len(lat_us))]:.1f} us, max {lat_us[-1]:.0f} us per point"
        )


if __name__ == "__main__":
    main()
