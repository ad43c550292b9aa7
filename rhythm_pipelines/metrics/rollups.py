"""Hourly rollups: mean, p50, p95, max and count per source, metric and hour."""

from __future__ import annotations

import pandas as pd

ROLLUP_COLUMNS = ["ts", "source", "metric", "mean", "p50", "p95", "max", "count"]


def hourly_rollups(points: pd.DataFrame) -> pd.DataFrame:
    """Roll long-format points up to one row per (source, metric, hour); ``ts`` is the hour start."""
    if points.empty:
        return pd.DataFrame(columns=ROLLUP_COLUMNS)
    g = points.assign(hour=points["ts"].dt.floor("h")).groupby(["source", "metric", "hour"], sort=True)["value"]
    out = pd.DataFrame(
        {
            "mean": g.mean(),
            "p50": g.quantile(0.5),
            "p95": g.quantile(0.95),
            "max": g.max(),
            "count": g.size(),
        }
    ).reset_index()
    return out.rename(columns={"hour": "ts"})[ROLLUP_COLUMNS]


def highest_per_metric(rollups: pd.DataFrame) -> pd.DataFrame:
    """Per metric, the source and hour with the highest p95 (what an operator looks for first), by metric."""
    if rollups.empty:
        return rollups
    best = rollups.loc[rollups.groupby("metric")["p95"].idxmax()]
    return best.rename(columns={"ts": "hour"}).sort_values("metric")[
        ["metric", "source", "hour", "mean", "p95", "max", "count"]
    ]
