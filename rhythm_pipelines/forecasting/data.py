"""Series for forecasting: store points (irregular, e.g. every ~10 s) on a regular grid of ``step``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.store import MetricsStore, utc

MAX_GAP_STEPS = 6  # interpolate over gaps up to this many steps; a longer gap ends the usable history


def regularize(
    ts: pd.Series | pd.DatetimeIndex, values: np.ndarray, step: pd.Timedelta | str, how: str = "mean"
) -> pd.Series:
    """Mean (or ``how``: median, max, ...) per ``step`` bucket (labelled by its start), short gaps
    interpolated; the series keeps only the part after the last gap longer than ``MAX_GAP_STEPS`` steps."""
    s = pd.Series(np.asarray(values, dtype="float64"), index=pd.DatetimeIndex(pd.to_datetime(ts, utc=True)))
    s = s[np.isfinite(s.to_numpy())]
    if s.empty:
        return s
    grid = s.resample(pd.Timedelta(step)).agg(how)
    missing = grid.isna().to_numpy()
    if missing.any():
        run_id = np.cumsum(~missing)
        runs = pd.Series(missing).groupby(run_id).transform("sum").to_numpy()
        long = np.flatnonzero(missing & (runs > MAX_GAP_STEPS))
        if len(long):
            grid = grid.iloc[long[-1] + 1 :]
        grid = grid.interpolate(limit_area="inside")
    return grid.dropna()


def stored_series(
    store: MetricsStore, source: str, metric: str, start, end, step: pd.Timedelta | str, how: str = "mean"
) -> pd.Series:
    """One stored series over ``[start, end)`` on the regular grid."""
    points = store.read_metrics(utc(start), utc(end), sources=[source], metrics=[metric])
    return regularize(points["ts"], points["value"].to_numpy(), step, how)
