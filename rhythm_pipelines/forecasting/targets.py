"""What gets forecast: channel latency and host CPU and memory load, one series per source.

A target names the stored metric and how its points are put on the forecasting grid. Latency uses the
median of the per-minute p50s in each 15-minute step: with a few calls a minute, a 5-minute bucket holds a
handful of calls (its noise alone is ~17% MAPE on the simulator) and the mean is dragged by every timeout;
the typical latency over a quarter hour is what routing and capacity decisions want. Host load is on a
5-minute grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class ForecastTarget:
    name: str
    metric: str
    how: str  # the bucket aggregate on the grid: mean or median
    step: str  # the grid
    description: str


TARGETS: dict[str, ForecastTarget] = {
    t.name: t
    for t in (
        ForecastTarget(
            "latency", "latency_ms_p50", "median", "15min", "channel latency (ms, median of per-minute p50s)"
        ),
        ForecastTarget("cpu", "cpu_percent", "mean", "5min", "host CPU load (%)"),
        ForecastTarget("memory", "mem_percent", "mean", "5min", "host memory load (%)"),
    )
}


def target(name: str) -> ForecastTarget:
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown forecast target {name!r}; choose from {', '.join(TARGETS)}") from None


def target_sources(series: pd.DataFrame, t: ForecastTarget, sources: list[str] | None = None) -> list[str]:
    """The sources that have the target's metric (``series``: the store's list_series), optionally filtered."""
    found = sorted(series.loc[series["metric"] == t.metric, "source"].unique())
    return [s for s in found if sources is None or s in sources]
