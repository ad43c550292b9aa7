"""Minute signals a precursor is read from: one series per (source, metric), on one minute grid.

Built from the long metrics format (``ts, source, metric, value``) plus the per-minute channel metrics of a call
log. Repeated timestamps are averaged within their minute; gaps of up to ``fill_limit`` minutes are carried
forward (a sampler that skipped a beat), longer ones stay missing, so a precursor never reads invented data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.calls import channel_minute_metrics

HOST_PRECURSORS = ("cpu_percent", "mem_percent")
CHANNEL_PRECURSORS = ("calls", "error_rate", "latency_ms_p95")
LEVEL_MIN = 5  # a level is the mean of the last 5 minutes
RISES_MIN = (15, 60, 180)  # a rise is the level now less the level this long ago
FEATURES = ("level", *(f"rise{w}" for w in RISES_MIN))


def host_of(source: str) -> str:
    """``web-01/proc/42`` and ``web-01:/tmp`` → ``web-01`` (a channel@region stays itself)."""
    return source.split("/proc/")[0].split(":")[0]


@dataclass
class Signals:
    wide: pd.DataFrame  # minute index (UTC), columns (source, metric)
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, metrics: pd.DataFrame, calls: pd.DataFrame | None = None, metric_names: Iterable[str] = (),
              fill_limit: int = 5) -> Signals:  # fmt: skip
        """From long metrics (and a call log), keeping the precursor metrics and ``metric_names``."""
        keep = set(HOST_PRECURSORS) | set(CHANNEL_PRECURSORS) | set(metric_names)
        frames = [metrics.loc[metrics["metric"].isin(keep), ["ts", "source", "metric", "value"]]]
        if calls is not None and len(calls):
            ch = channel_minute_metrics(calls)
            frames.append(ch.loc[ch["metric"].isin(keep), ["ts", "source", "metric", "value"]])
        long = pd.concat(frames, ignore_index=True)
        if long.empty:
            return cls(pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC")))
        long["ts"] = pd.to_datetime(long["ts"], utc=True).dt.floor("min")
        wide = long.pivot_table(index="ts", columns=["source", "metric"], values="value", aggfunc="mean")
        grid = pd.date_range(wide.index.min(), wide.index.max(), freq="min")
        wide = wide.reindex(grid).ffill(limit=fill_limit)
        if calls is not None and len(calls):  # a minute with no call had 0 calls, not a missing reading
            for col in [c for c in wide.columns if c[1] == "calls"]:
                wide[col] = wide[col].fillna(0.0)
        return cls(wide.sort_index(axis=1))

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.wide.index

    def has(self, source: str, metric: str) -> bool:
        return (source, metric) in self.wide.columns

    def series(self, source: str, metric: str) -> np.ndarray:
        return self.wide[(source, metric)].to_numpy(dtype="float64")

    def feature(self, source: str, metric: str, name: str) -> np.ndarray:
        """``level`` or ``riseW`` of one series, one value per minute (NaN where it cannot be read)."""
        key = (source, metric, name)
        if key not in self._cache:
            level = pd.Series(self.series(source, metric)).rolling(LEVEL_MIN, min_periods=3).mean().to_numpy()
            if name == "level":
                out = level
            else:
                w = int(name.removeprefix("rise"))
                out = np.full_like(level, np.nan)
                out[w:] = level[w:] - level[:-w]
            self._cache[key] = out
        return self._cache[key]

    def position(self, ts: pd.Timestamp) -> int:
        """The grid index of the minute holding ``ts`` (clipped to the grid)."""
        i = int(self.index.searchsorted(pd.Timestamp(ts).floor("min")))
        return min(max(i, 0), len(self.index) - 1)

    def candidates(self, source: str, metric: str) -> list[tuple[str, str]]:
        """The series a precursor of an incident on ``source``/``metric`` may show in: its own, its host's
        CPU and memory, a channel's traffic, errors and latency."""
        host = host_of(source)
        out = [(source, metric)]
        out += [(host, m) for m in HOST_PRECURSORS]
        out += [(source, m) for m in CHANNEL_PRECURSORS]
        seen: list[tuple[str, str]] = []
        for c in out:
            if self.has(*c) and c not in seen:
                seen.append(c)
        return seen
