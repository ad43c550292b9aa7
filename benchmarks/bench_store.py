"""Store benchmark: write throughput and a 1-day, 100-series range query, per store.

Usage: python benchmarks/bench_store.py [--points 1000000] [--influx-url http://127.0.0.1:8086]
Without --influx-url, InfluxDB is measured on a throw-away local ``influxd`` when one is installed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rhythm_pipelines.metrics.schema import validate_metrics  # noqa: E402
from rhythm_pipelines.metrics.store import MetricsStore  # noqa: E402

SERIES = 100
DAY_POINTS = 1440  # 1-minute step


def make_frame(n_series: int, points_per_series: int, start: pd.Timestamp) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ts = pd.date_range(start, periods=points_per_series, freq="1min", tz="UTC")
    return validate_metrics(
        pd.DataFrame(
            {
                "ts": np.tile(ts, n_series),
                "source": np.repeat([f"host-{i // 10:02d}" for i in range(n_series)], points_per_series),
                "metric": np.repeat([f"metric_{i % 10}" for i in range(n_series)], points_per_series),
                "value": rng.normal(50, 10, n_series * points_per_series),
            }
        ),
        origin="<bench>",
    )


def bench(name: str, store: MetricsStore, total_points: int, chunk: int) -> None:
    start = pd.Timestamp("2026-01-01", tz="UTC")
    per_series = max(total_points // SERIES, 2 * DAY_POINTS)  # the query reads day 2
    frame = make_frame(SERIES, per_series, start)
    t0 = time.perf_counter()
    for i in range(0, len(frame), chunk):
        store.write_metrics(frame.iloc[i : i + chunk])
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.write_metrics(frame.iloc[:chunk])  # re-write: replaces, never duplicates
    rewrite_s = time.perf_counter() - t0
    # the live path: one sampler tick (~40 points of one host) per write, appended at "now"
    tick_times, one_per_series = [], frame.groupby(["source", "metric"]).head(1).iloc[:40]
    for k in range(100):
        tick = one_per_series.assign(ts=start + pd.Timedelta(days=30, seconds=10 * k))
        t0 = time.perf_counter()
        store.write_metrics(tick)
        tick_times.append(time.perf_counter() - t0)
    q_start = start + pd.Timedelta(days=1)
    times, n = [], 0
    for _ in range(7):
        t0 = time.perf_counter()
        got = store.read_metrics(q_start, q_start + pd.Timedelta(days=1))
        times.append(time.perf_counter() - t0)
        n = len(got)
    if n != SERIES * DAY_POINTS:
        raise SystemExit(f"expected {SERIES * DAY_POINTS} points, got {n}")
    print(
        f"{name:8s} write: {len(frame):,} points in {write_s:.2f} s = {len(frame) / write_s:,.0f} points/s "
        f"(chunks of {chunk:,}; re-write of {chunk:,}: {chunk / rewrite_s:,.0f} points/s)"
    )
    print(
        f"{name:8s} small writes (40 points, one sampler tick): median {statistics.median(tick_times) * 1000:.2f} ms, "
        f"worst {max(tick_times) * 1000:.2f} ms"
    )
    print(
        f"{name:8s} query: 1 day x {SERIES} series = {n:,} points: median {statistics.median(times) * 1000:.1f} ms, "
        f"best {min(times) * 1000:.1f} ms, worst {max(times) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--influx-url", default=None)
    parser.add_argument("--no-influx", action="store_true")
    args = parser.parse_args()

    from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore

    with tempfile.TemporaryDirectory() as tmp, SQLiteMetricsStore(Path(tmp) / "bench.db") as store:
        bench("sqlite", store, args.points, args.chunk)

    if args.no_influx:
        return
    from rhythm_pipelines.metrics.influx import InfluxMetricsStore
    from rhythm_pipelines.metrics.influx_local import LocalInflux

    points = min(args.points, 300_000)
    if args.influx_url:
        with InfluxMetricsStore(args.influx_url, token="", bucket="bench") as store:
            bench("influxdb", store, points, 50_000)
        return
    with LocalInflux() as server:
        server.create_database("bench")
        with InfluxMetricsStore(server.url, token="", bucket="bench") as store:
            bench("influxdb", store, points, 50_000)


if __name__ == "__main__":
    main()
