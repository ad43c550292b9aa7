"""The fleet's weekly rhythm: per host (or channel) and hour of the week, what a metric usually is.

``load_profile`` summarises long-format points into one row per (source, metric, hour of week): mean, p95,
standard deviation and count (how sure we are). ``expected_load`` turns a profile into the next hours of
predicted CPU and memory per host, the planner's input: the profile's mean, or an upper level (mean + z
spreads, at most its p95 when ``upper``), for hours the profile has seen at least ``min_count`` times; an
hour of the week it has not seen falls back to the same hour of the days it has seen (a profile younger
than a week), then to the host's overall figure for that metric.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.scheduling.planner import SLOT

HOURS_OF_WEEK = 168
ANCHOR = pd.Timedelta(minutes=15)  # how much recent measurement moves a forecast (``anchored``)
TAU = pd.Timedelta(hours=1)  # how fast that correction fades
PROFILE_COLUMNS = ["source", "metric", "how", "mean", "p95", "std", "count"]


def hour_of_week(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """0 = Monday 00:00-01:00 UTC ... 167 = Sunday 23:00-24:00."""
    t = pd.DatetimeIndex(ts).tz_convert("UTC")
    return (t.dayofweek * 24 + t.hour).to_numpy()


def load_profile(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, metric, hour of week) of long-format ``points`` (ts, source, metric, value)."""
    if points.empty:
        return pd.DataFrame(columns=PROFILE_COLUMNS)
    frame = points.assign(how=hour_of_week(points["ts"]))
    g = frame.groupby(["source", "metric", "how"], sort=True)["value"]
    out = g.agg(mean="mean", std="std", count="size").reset_index()
    out["p95"] = g.quantile(0.95).to_numpy()
    out["std"] = out["std"].fillna(0.0)
    return out[PROFILE_COLUMNS]


def merge_profiles(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Two profiles as one (e.g. yesterday's added to the week's): counts add, means and sample spreads pool
    exactly; p95 takes the larger (an upper bound, not the pooled quantile)."""
    if a.empty:
        return b.copy()
    if b.empty:
        return a.copy()
    return pooled(pd.concat([a[PROFILE_COLUMNS], b[PROFILE_COLUMNS]], ignore_index=True), ["source", "metric", "how"])


def _level(p: pd.DataFrame, upper: bool, z: float) -> np.ndarray:
    return (np.minimum(p["mean"] + z * p["std"], p["p95"]) if upper and z > 0 else p["mean"]).to_numpy(dtype="float64")


def pooled(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Profile rows with the same ``keys`` as one, exactly as ``merge_profiles`` pools two (counts add, means
    and sample spreads pool, p95 takes the largest)."""
    if rows.empty:
        return pd.DataFrame(columns=PROFILE_COLUMNS)
    c = rows["count"].astype("float64")
    f = rows.assign(_c=c, _cm=c * rows["mean"], _ss=(c - 1).clip(lower=0) * rows["std"] ** 2 + c * rows["mean"] ** 2)
    g = f.groupby(keys, sort=True)
    n = g["_c"].sum()
    mean = g["_cm"].sum() / n
    ss = g["_ss"].sum() - n * mean**2  # within-group plus between-group sums of squares about the pooled mean
    std = np.sqrt((ss / (n - 1)).where(n > 1, 0.0).clip(lower=0))
    out = pd.DataFrame({"mean": mean, "p95": g["p95"].max(), "std": std, "count": n.astype("int64")}).reset_index()
    for k in ("source", "metric", "how"):
        if k not in out:
            out[k] = rows[k].iloc[0]
    return out[PROFILE_COLUMNS]


def _hour_of_day(p: pd.DataFrame) -> pd.DataFrame:
    """A week profile's rows pooled by hour of the day (``how`` 0-23)."""
    return pooled(p.assign(how=p["how"] % 24), ["source", "metric", "how"])


def expected_load(
    profile: pd.DataFrame,
    hosts: list[str],
    start: pd.Timestamp,
    horizon: pd.Timedelta,
    step: pd.Timedelta = SLOT,
    upper: bool = True,
    z: float = 1.0,
    min_count: int = 3,
    metrics: tuple[str, str] = ("cpu_percent", "mem_percent"),
) -> dict[str, pd.DataFrame]:
    """Per host, ``cpu`` and ``mem`` per ``step`` over ``[start, start + horizon)`` from the profile (see the
    module docstring); hosts the profile does not know are idle (0)."""
    index = pd.date_range(start, start + horizon, freq=step, inclusive="left")
    how = hour_of_week(index)
    out = {}
    for host in hosts:
        cols = {}
        for metric, name in zip(metrics, ("cpu", "mem"), strict=True):
            p = profile[(profile["source"] == host) & (profile["metric"] == metric)]
            if p.empty:
                cols[name] = np.zeros(len(index))
                continue
            seen = p[p["count"].to_numpy() >= min_count]
            by_week = pd.Series(_level(seen, upper, z), index=seen["how"].to_numpy())
            day = _hour_of_day(seen)  # an hour of the week not seen yet: the same hour of the other days
            by_day = pd.Series(_level(day, upper, z), index=day["how"].to_numpy())
            fallback = float(np.average(p["mean"], weights=p["count"])) if p["count"].sum() else 0.0
            out_col = by_week.reindex(how).to_numpy()
            missing = np.isnan(out_col)
            out_col[missing] = by_day.reindex(how[missing] % 24).fillna(fallback).to_numpy()
            cols[name] = out_col
        out[host] = pd.DataFrame(cols, index=index)
    return out


def anchored(expected: pd.Series, residual: float, now: pd.Timestamp, tau: pd.Timedelta = TAU) -> pd.Series:
    """The profile's forecast moved by how far the last minutes were from it, the gap fading with ``tau``
    (today may run hotter or quieter than the usual week; an incident in progress lasts a while)."""
    fade = np.exp(-((expected.index - now) / tau).to_numpy(dtype="float64"))
    return (expected + residual * fade).clip(lower=0.0)


def pool(days: pd.DataFrame) -> pd.DataFrame:
    """Many days' profile rows (a ``ts`` column per day, as the ``load_profiles`` table keeps them) as one."""
    return pooled(days, ["source", "metric", "how"])
