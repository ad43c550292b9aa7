"""Training one series into the registry, and the ``Forecaster`` that serves forecasts from it.

``train_series`` selects and fits a model on a series (``selection.select_model``), wraps it in the
Naive guard and returns it with its metadata (series, model, members, train window, step, seasons, CV
scores). ``Forecaster`` loads the latest version of a series once, follows new observations without a
refit (``update``) and answers ``predict`` from the state it holds: a slice of a cached forecast, well
under a millisecond, or one filter pass when the horizon is longer than the cached one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhythm_pipelines.forecasting.models import (
    DEFAULT_MODELS,
    LEVELS,
    GuardedModel,
    infer_step,
    parse_step,
    season_lengths,
    step_name,
)
from rhythm_pipelines.forecasting.registry import ModelRegistry, ModelVersion
from rhythm_pipelines.forecasting.selection import select_model

DEFAULT_HORIZONS = (pd.Timedelta("15min"), pd.Timedelta("1h"))


def horizon_steps(horizon: str | pd.Timedelta | int, step: pd.Timedelta) -> int:
    """A horizon as a number of steps: an int is steps already; a duration ("1h", "15min") is rounded up."""
    if isinstance(horizon, int) or (isinstance(horizon, str) and horizon.isdigit()):
        steps = int(horizon)
    else:
        steps = int(np.ceil(pd.Timedelta(horizon) / step))
    if steps < 1:
        raise ValueError(f"horizon {horizon!r} is shorter than one step ({step})")
    return steps


@dataclass
class Trained:
    model: GuardedModel
    meta: dict


def train_series(
    ts: pd.Series | pd.DatetimeIndex,
    y: np.ndarray,
    horizon: int,
    models: Sequence[str] = DEFAULT_MODELS,
    source: str = "",
    metric: str = "",
) -> Trained:
    """Select and fit a model on one regular series (timestamps ``ts``) for ``horizon`` steps."""
    ts = pd.DatetimeIndex(pd.to_datetime(ts, utc=True))
    y = np.asarray(y, dtype="float64")
    if len(ts) != len(y):
        raise ValueError(f"{len(ts)} timestamps for {len(y)} values")
    if not np.isfinite(y).all():
        raise ValueError(f"{source} {metric}: the series has missing or non-finite values; fill them first")
    step = infer_step(ts)
    seasons = season_lengths(step, len(y))
    t0 = time.perf_counter()
    sel = select_model(y, seasons, horizon, models)
    fit_s = time.perf_counter() - t0
    model = GuardedModel(sel.model, horizon, widths=sel.widths).start(y)
    meta = {
        "model": sel.name,
        "members": sel.members,
        "horizon_steps": horizon,
        "step": step_name(step),
        "seasons": seasons,
        "train_start": ts[0].isoformat(),
        "train_end": ts[-1].isoformat(),
        "train_points": len(y),
        "fit_points": sel.fit_points,
        "last_ts": ts[-1].isoformat(),
        "fit_s": round(fit_s, 4),
        "cv_origins": sel.cv_origins,
        "cv": sel.scores.replace({np.nan: None}).to_dict("records"),
        "intervals": "conformal (held-out CV errors)" if sel.widths is not None else "model (in-sample)",
    }
    return Trained(model, meta)


class Forecaster:
    """Serves forecasts of registered series: load once, follow new points, predict in milliseconds."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry
        self._loaded: dict[tuple[str, str], tuple[GuardedModel, ModelVersion, pd.Timestamp]] = {}

    def load(self, source: str, metric: str, version: int | None = None) -> ModelVersion:
        model, mv = self.registry.load(source, metric, version)
        self._loaded[(source, metric)] = (model, mv, pd.Timestamp(mv.meta["last_ts"]))
        return mv

    def _get(self, source: str, metric: str) -> tuple[GuardedModel, ModelVersion, pd.Timestamp]:
        if (source, metric) not in self._loaded:
            self.load(source, metric)
        return self._loaded[(source, metric)]

    def update(self, source: str, metric: str, ts: pd.Series | pd.DatetimeIndex, values: np.ndarray) -> int:
        """Follow the points after the model's last one (earlier ones are ignored); returns how many it took.

        The new points must continue the model's grid: the first one step after its last point."""
        model, mv, last = self._get(source, metric)
        ts = pd.DatetimeIndex(pd.to_datetime(ts, utc=True))
        new = np.asarray(ts > last)
        if new.any():
            step = parse_step(mv.meta["step"])
            if ts[new][0] != last + step:
                raise ValueError(
                    f"{source} {metric}: the points resume at {ts[new][0]}, not one step ({step}) after the "
                    f"model's last point {last}; retrain the model over the gap"
                )
            model.update(np.asarray(values, dtype="float64")[new])
            self._loaded[(source, metric)] = (model, mv, ts[new][-1])
        return int(new.sum())

    def predict(
        self, source: str, metric: str, horizon: str | pd.Timedelta | int = "1h", levels: Sequence[int] = LEVELS
    ) -> pd.DataFrame:
        """Forecasts after the last point seen: ``ds``, ``mean`` and ``lo-L``/``hi-L`` per level."""
        model, mv, last = self._get(source, metric)
        step = parse_step(mv.meta["step"])
        h = horizon_steps(horizon, step)
        fc = model.forecast(h, levels)
        out = {"ds": pd.date_range(last + step, periods=h, freq=step), "mean": fc.mean}
        for lv in levels:
            out[f"lo-{lv}"], out[f"hi-{lv}"] = fc.lo[lv], fc.hi[lv]
        return pd.DataFrame(out)

    def info(self, source: str, metric: str) -> dict:
        model, mv, last = self._get(source, metric)
        return {**mv.meta, "version": mv.version, "last_seen": last.isoformat(), "fallback_to_naive": model.fallback}
