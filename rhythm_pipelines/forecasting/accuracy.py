"""How well a fitted model forecasts data it has not seen: the walk-forward loop and its scores.

``walk_forward`` brings a guarded model forward one point at a time and forecasts ``horizon`` steps from
every origin (the backtest and the daily accuracy report share it). ``score_next`` scores a trained model on
the points after its training window (e.g. the day after a training partition) against Naive and
SeasonalNaive, and keeps what a forecast-vs-actual plot needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.forecasting.conformal import coverage
from rhythm_pipelines.forecasting.models import LEVELS, GuardedModel, naive_forecast, seasonal_naive_forecast
from rhythm_pipelines.forecasting.selection import actuals, mae, mape, mase_scale

PLOT_LEVEL = 80


@dataclass
class WalkForward:
    origins: range
    predictions: np.ndarray  # (origins, horizon)
    lo: np.ndarray  # (origins, horizon) at PLOT_LEVEL
    hi: np.ndarray
    latency_s: np.ndarray  # per origin: update with the new point + forecast
    fallbacks: int  # origins where the guard served Naive
    bounds: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # level -> (lo, hi)

    def coverage(self, truth: np.ndarray) -> dict[str, float]:
        """Empirical coverage of each interval level over every origin and step: {"80": x, "95": y}."""
        return {str(lv): round(coverage(truth, lo, hi), 4) for lv, (lo, hi) in sorted(self.bounds.items())}


def walk_forward(model: GuardedModel, y: np.ndarray, start: int, horizon: int) -> WalkForward:
    """Forecasts from every origin ``start .. len(y) - horizon`` of a model that has seen ``y[:start]``."""
    at = range(start, len(y) - horizon + 1)
    pred = np.empty((len(at), horizon))
    bounds = {lv: (np.empty((len(at), horizon)), np.empty((len(at), horizon))) for lv in LEVELS}
    lat = np.empty(len(at))
    fallbacks = 0
    for i, o in enumerate(at):
        t = time.perf_counter()
        if o > start:
            model.update(y[o - 1 : o])
        fc = model.forecast(horizon, LEVELS)
        lat[i] = time.perf_counter() - t
        pred[i] = fc.mean
        for lv in LEVELS:
            bounds[lv][0][i], bounds[lv][1][i] = fc.lo[lv], fc.hi[lv]
        fallbacks += model.fallback
    lo, hi = bounds[PLOT_LEVEL]
    return WalkForward(at, pred, lo, hi, lat, fallbacks, bounds)


def metrics(truth: np.ndarray, pred: np.ndarray, scale: float) -> dict[str, float]:
    err = mae(truth, pred)
    return {"mae": err, "mape": mape(truth, pred), "mase": err / scale}


def baselines(y: np.ndarray, at: range, horizon: int, season: int) -> tuple[np.ndarray, np.ndarray]:
    """Naive and SeasonalNaive forecasts from each origin."""
    naive = np.vstack([naive_forecast(y[:o], horizon) for o in at])
    snaive = np.vstack([seasonal_naive_forecast(y[:o], horizon, season) for o in at])
    return naive, snaive


@dataclass
class NextScore:
    """A model's forecasts over the points after its training window, scored."""

    metrics: dict[str, dict[str, float]]  # model / naive / seasonal_naive -> mae, mape, mase
    origins: int
    fallback_share: float
    plot: pd.DataFrame  # ts, actual, ahead_1 (one step ahead), ahead_h (horizon ahead), lo, hi (horizon ahead)
    coverage: dict[str, float] = field(default_factory=dict)  # interval level -> share of actuals inside

    def skill(self, baseline: str = "naive") -> float:
        """1 − MAE(model) / MAE(baseline)."""
        base = self.metrics[baseline]["mae"]
        return 1.0 - self.metrics["model"]["mae"] / base if base > 0 else 0.0


def score_next(model: GuardedModel, history: pd.Series, after: pd.Series, horizon: int, season: int) -> NextScore:
    """Score ``model`` (its state at the end of ``history``) on ``after``, the points that follow.

    ``history`` (at least a season when there is one) gives Naive its last value, SeasonalNaive its season
    and MASE its scale. ``after`` must continue ``history`` on the same grid.
    """
    if len(after) < horizon:
        raise ValueError(f"{len(after)} points after the training window: fewer than the horizon ({horizon})")
    step = history.index[-1] - history.index[-2] if len(history) > 1 else None
    if step is not None and after.index[0] - history.index[-1] != step:
        raise ValueError(
            f"the points after the training window start at {after.index[0]}, not one step ({step}) after its "
            f"last point {history.index[-1]}"
        )
    y = np.concatenate([history.to_numpy(dtype="float64"), after.to_numpy(dtype="float64")])
    start = len(history)
    wf = walk_forward(model, y, start, horizon)
    truth = actuals(y, wf.origins, horizon)
    naive, snaive = baselines(y, wf.origins, horizon, season)
    scale = mase_scale(history.to_numpy(dtype="float64"))
    ts = pd.DatetimeIndex(list(history.index) + list(after.index))
    last = np.array([o + horizon - 1 for o in wf.origins])
    plot = pd.DataFrame(
        {
            "ts": ts[last],
            "actual": y[last],
            "ahead_1": pd.Series(wf.predictions[:, 0], index=ts[list(wf.origins)]).reindex(ts[last]).to_numpy(),
            "ahead_h": wf.predictions[:, -1],
            "lo": wf.lo[:, -1],
            "hi": wf.hi[:, -1],
        }
    )
    return NextScore(
        metrics={
            "model": metrics(truth, wf.predictions, scale),
            "naive": metrics(truth, naive, scale),
            "seasonal_naive": metrics(truth, snaive, scale),
        },
        origins=len(wf.origins),
        fallback_share=wf.fallbacks / max(1, len(wf.origins)),
        plot=plot,
        coverage=wf.coverage(truth),
    )
