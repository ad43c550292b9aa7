"""Anomaly detection speed: batch scoring throughput per detector over 1 million points, and the
per-point latency of the streaming path (detector update + threshold update).

Usage: python benchmarks/bench_anomaly.py [--points 1000000] [--stream-points 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rhythm_pipelines.anomaly.detectors import DETECTORS  # noqa: E402
from rhythm_pipelines.anomaly.threshold import TrailingMaxThreshold  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--stream-points", type=int, default=100_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = 50 + 10 * np.sin(np.arange(args.points) * 2 * np.pi / 288) + rng.normal(0, 2, args.points)
    for name, cls in DETECTORS.items():
        det = cls()
        t0 = time.perf_counter()
        scores = det.score_samples(x)
        score_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        TrailingMaxThreshold().flags(scores)
        flag_s = time.perf_counter() - t0
        det.reset()
        th = TrailingMaxThreshold()
        lat = []
        for v in x[: args.stream_points]:
            t0 = time.perf_counter()
            th.update(det.update(v))
            lat.append(time.perf_counter() - t0)
        lat_us = sorted(1e6 * v for v in lat)
        print(
            f"{name:7s} batch: {args.points / score_s:,.0f} points/s scoring, {args.points / flag_s:,.0f} points/s "
            f"thresholding | streaming: p50 {statistics.median(lat_us):.1f} us, "
            f"p99 {lat_us[int(0.99 * len(lat_us))]:.1f} us, max {lat_us[-1]:.0f} us per point (window {det.window})"
        )


if __name__ == "__main__":
    main()
