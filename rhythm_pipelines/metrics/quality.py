"""Data-quality rules for metrics: value ranges and gaps (used by asset checks)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# metric-name rules, first match wins: (substring of the name, low, high)
RANGES: list[tuple[str, float, float]] = [
    ("proc_cpu_percent", 0.0, np.inf),  # a process's CPU counts every core: 400 % on four busy cores
    ("percent", 0.0, 100.0),
    ("error_rate", 0.0, 1.0),
    ("", 0.0, np.inf),  # everything else we collect is a count, size, rate, duration or latency
]


def expected_range(metric: str) -> tuple[float, float]:
    for needle, lo, hi in RANGES:
        if needle in metric:
            return lo, hi
    raise AssertionError("the last rule matches every name")


def range_violations(points: pd.DataFrame) -> pd.DataFrame:
    """Points outside their metric's expected range."""
    if points.empty:
        return points
    bounds = {m: expected_range(m) for m in points["metric"].unique()}
    lo = points["metric"].map(lambda m: bounds[m][0])
    hi = points["metric"].map(lambda m: bounds[m][1])
    return points[(points["value"] < lo) | (points["value"] > hi)]


def series_gaps(points: pd.DataFrame, factor: float = 3.0, min_points: int = 5) -> pd.DataFrame:
    """Series whose largest gap between consecutive points exceeds ``factor`` × their median step.

    Per-process series (``host/proc/PID``) are left out: processes enter and leave the top-N as they
    should. A series with no point at all in the window is not a gap here (freshness checks cover it).
    """
    rows = []
    sampled = points[~points["source"].str.contains("/proc/", regex=False)]
    for (source, metric), g in sampled.groupby(["source", "metric"], sort=True):
        if len(g) < min_points:
            continue
        g = g.sort_values("ts")
        steps = np.diff(g["ts"].to_numpy(dtype="datetime64[ns]").astype("int64")) / 1e9
        median, largest = float(np.median(steps)), float(steps.max())
        if median > 0 and largest > factor * median:
            at = g["ts"].iloc[int(steps.argmax())]
            rows.append((source, metric, median, largest, at))
    return pd.DataFrame(rows, columns=["source", "metric", "median_step_s", "largest_gap_s", "gap_after"])
