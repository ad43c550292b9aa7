"""Walk-forward backtest of one series: select and fit on the training part, then forecast from every origin
of the test part using only the data up to that origin (state updates, no refits).

Reported over all origins and steps: MAE, MAPE and MASE of the selected model, of Naive (the last value)
and of SeasonalNaive (the value a day before; Naive without a daily season), plus the selection's fit time
and the per-forecast latency (a state update with the new point, then the forecast) at p50 and p99.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhythm_pipelines.forecasting.accuracy import baselines, metrics, walk_forward
from rhythm_pipelines.forecasting.grid import regularise
from rhythm_pipelines.forecasting.models import DEFAULT_MODELS, GuardedModel, infer_step, season_lengths, step_name
from rhythm_pipelines.forecasting.selection import Selection, actuals, mase_scale, select_model

MIN_TRAIN = 50


@dataclass
class Backtest:
    model: str
    members: list[str]
    metrics: dict[str, dict[str, float]]  # model / naive / seasonal_naive -> mae, mape, mase
    fit_s: float
    predict_ms: dict[str, float]  # p50, p99
    train_points: int
    origins: int
    horizon: int
    step: pd.Timedelta
    selection: Selection
    fallback_share: float = 0.0  # share of origins where the guard served Naive
    predictions: np.ndarray | None = None  # (origins, horizon): the model's forecast at each origin
    grid: dict | None = None  # how the input was put on a regular grid (forecasting/grid.py)
    coverage: dict[str, float] | None = None  # interval level ("80", "95") -> share of actuals inside

    def as_dict(self) -> dict:
        """The CLI's JSON contract, plus context (members, points, origins, horizon, step, CV scores)."""
        cv = self.selection.scores.replace({np.nan: None}).to_dict("records")
        return {
            "model": self.model,
            "metrics": self.metrics,
            "fit_s": round(self.fit_s, 4),
            "predict_ms": {k: round(v, 4) for k, v in self.predict_ms.items()},
            "members": self.members,
            "train_points": self.train_points,
            "origins": self.origins,
            "horizon": self.horizon,
            "step": step_name(self.step),
            "seasons": self.selection.seasons,
            "fallback_share": round(self.fallback_share, 4),
            "coverage": self.coverage,
            "grid": self.grid,
            "cv": cv,
        }

    def skill(self, baseline: str = "naive") -> float:
        """1 − MAE(model) / MAE(baseline): the share of the baseline's error removed."""
        base = self.metrics[baseline]["mae"]
        return 1.0 - self.metrics["model"]["mae"] / base if base > 0 else 0.0


def backtest(
    ts: pd.Series | pd.DatetimeIndex,
    y: np.ndarray,
    horizon: int = 12,
    test_fraction: float = 0.2,
    models: Sequence[str] = DEFAULT_MODELS,
) -> Backtest:
    """Walk-forward backtest of ``y`` (timestamps ``ts``) over its last ``test_fraction`` (see module doc).
    An irregular series is put on a regular grid first, or refused with its gap named (``forecasting/grid.py``)."""
    regular = regularise(ts, y)
    ts, y = regular.ts, regular.y
    n = len(y)
    if not 0 < test_fraction < 1:
        raise ValueError(f"the test fraction must be between 0 and 1, got {test_fraction}")
    if horizon < 1:
        raise ValueError(f"the horizon must be at least 1, got {horizon}")
    n_train = n - int(np.floor(n * test_fraction))
    if n_train < max(MIN_TRAIN, 2 * horizon + 2) or n - n_train < horizon:
        raise ValueError(
            f"{n} points are too few for a horizon of {horizon} with a test fraction of {test_fraction}: "
            f"need at least {max(MIN_TRAIN, 2 * horizon + 2)} training points and {horizon} test points"
        )
    step = infer_step(ts)
    seasons = season_lengths(step, n_train)
    t0 = time.perf_counter()
    sel = select_model(y[:n_train], seasons, horizon, models)
    fit_s = time.perf_counter() - t0

    model = GuardedModel(sel.model, horizon, widths=sel.widths).start(y[:n_train])
    wf = walk_forward(model, y, n_train, horizon)
    truth = actuals(y, wf.origins, horizon)
    naive, snaive = baselines(y, wf.origins, horizon, seasons[0] if seasons else 1)
    scale = mase_scale(y[:n_train])
    lat = wf.latency_s
    return Backtest(
        model=sel.name,
        members=sel.members,
        metrics={
            "model": metrics(truth, wf.predictions, scale),
            "naive": metrics(truth, naive, scale),
            "seasonal_naive": metrics(truth, snaive, scale),
        },
        fit_s=fit_s,
        predict_ms={"p50": float(np.percentile(lat, 50) * 1e3), "p99": float(np.percentile(lat, 99) * 1e3)},
        train_points=n_train,
        origins=len(wf.origins),
        horizon=horizon,
        step=step,
        selection=sel,
        fallback_share=wf.fallbacks / len(wf.origins),
        predictions=wf.predictions,
        grid=regular.describe(),
        coverage=wf.coverage(truth),
    )
