"""Per-series model selection by rolling-origin cross-validation, and the error metrics.

For one series: every zoo model is fitted on the history before the CV span, then follows the span point
by point (state updates, no refit) and forecasts ``h`` steps at origins spread over it. The model with the
lowest MAE over all origins and steps wins (ties: MASE, then the simpler model, in zoo order); the
"ensemble" candidate is the mean of the best ``ensemble_size`` models' CV forecasts. The winner (every
member, for the ensemble) is the CV model itself, followed to the end of the history: its CV score is the
score of the model served, and no second fit is paid (``refit=True`` re-estimates on the whole history).

The chosen model's intervals are calibrated on its held-out errors over the CV span (``conformal.py``).

MASE divides by the in-sample MAE of the one-step naive forecast on the training data, so a MASE of 1 is
as wrong, per step, as yesterday's-value forecasting one step ahead.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.forecasting.conformal import ConformalWidths, calibrate
from rhythm_pipelines.forecasting.models import (
    DEFAULT_MODELS,
    LEVELS,
    EnsembleModel,
    SeriesModel,
    available,
)

ENSEMBLE = "ensemble"
MAPE_FLOOR = 1e-9  # MAPE skips actual values this close to zero


def mae(actual: np.ndarray, pred: np.ndarray) -> float:
    return float(np.nanmean(np.abs(np.asarray(actual) - np.asarray(pred))))


def mape(actual: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute percentage error (as a fraction), over actual values that are not ~0."""
    a, p = np.asarray(actual, dtype="float64"), np.asarray(pred, dtype="float64")
    ok = np.abs(a) > MAPE_FLOOR
    return float(np.nanmean(np.abs(a[ok] - p[ok]) / np.abs(a[ok]))) if ok.any() else float("nan")


def mase_scale(y: np.ndarray) -> float:
    """In-sample MAE of the one-step naive forecast (the MASE denominator); 1 for a constant series."""
    d = np.abs(np.diff(np.asarray(y, dtype="float64")))
    s = float(np.nanmean(d)) if len(d) else 0.0
    return s if s > 0 else 1.0


def origins(start: int, end: int, h: int, count: int) -> list[int]:
    """``count`` forecast origins (numbers of points known) spread evenly from ``start`` to ``end - h``."""
    last = end - h
    return sorted({int(round(o)) for o in np.linspace(start, last, num=max(1, min(count, last - start + 1)))})


def rolling_forecasts(model, y: np.ndarray, known: int, at: Sequence[int], h: int) -> np.ndarray:
    """Forecasts (len(at), h) of a model fitted on ``y[:known]``, brought forward to each origin in ``at``."""
    out = np.empty((len(at), h))
    for i, o in enumerate(at):
        model.update(y[known:o])
        known = o
        out[i] = model.forecast(h, levels=()).mean
    return out


def actuals(y: np.ndarray, at: Sequence[int], h: int) -> np.ndarray:
    return np.vstack([y[o : o + h] for o in at]) if len(at) else np.empty((0, h))


@dataclass
class Selection:
    """The chosen model of one series, fitted on its whole history, and how every candidate scored."""

    model: SeriesModel | EnsembleModel
    name: str
    scores: pd.DataFrame  # model, mae, mase, fit_s (CV)
    train_points: int
    seasons: list[int]
    cv_origins: int
    members: list[str] = field(default_factory=list)
    fit_points: int = 0  # the history the parameters were estimated on (before the CV span; all of it on refit)
    widths: ConformalWidths | None = None  # intervals calibrated on the chosen model's held-out CV errors


def select_model(
    y: np.ndarray,
    seasons: Sequence[int],
    h: int,
    models: Sequence[str] = DEFAULT_MODELS,
    cv_windows: int = 12,
    cv_span: int | None = None,
    ensemble_size: int = 3,
    refit: bool = False,
    calib_origins: int = 36,
) -> Selection:
    """Choose and fit the best model of ``models`` (plus their ensemble) for series ``y`` (see module doc).

    The CV span is the last ``cv_span`` points (default: the daily season, or 24 horizons without one; at
    most a quarter of the series, at least ``h``) with ``cv_windows`` origins spread evenly over it.
    """
    y = np.asarray(y, dtype="float64")
    n = len(y)
    if n < 2 * h + 2:
        raise ValueError(f"a series of {n} points is too short to select a model for a horizon of {h}")
    seasons = list(seasons)
    names = available(models, seasons)
    day = seasons[0] if seasons else 24 * h
    span = cv_span if cv_span is not None else min(day, n // 4)
    span = max(span, h)
    known = n - span
    at = origins(known, n, h, cv_windows)
    truth = actuals(y, at, h)
    scale = mase_scale(y[:known])
    rows, preds, fitted, at_known = [], {}, {}, {}
    for name in names:
        t0 = time.perf_counter()
        try:
            model = SeriesModel(name, seasons).fit(y[:known])
            at_known[name] = copy.deepcopy(model)  # its state before the CV span: for calibrating intervals
            preds[name] = rolling_forecasts(model, y, known, at, h)
            fitted[name] = model
        except Exception as exc:  # a model that cannot fit this series is left out, with the reason
            rows.append({"model": name, "mae": np.nan, "mase": np.nan, "fit_s": np.nan, "error": repr(exc)[:200]})
            continue
        err = mae(truth, preds[name])
        rows.append({"model": name, "mae": err, "mase": err / scale, "fit_s": time.perf_counter() - t0, "error": ""})
    scored = [r for r in rows if np.isfinite(r["mae"])]
    if not scored:
        raise ValueError(f"no model could be fitted: {'; '.join(r['error'] for r in rows)}")
    order = {name: i for i, name in enumerate(names)}
    ranked = sorted(scored, key=lambda r: (r["mae"], r["mase"], order[r["model"]]))
    members = [r["model"] for r in ranked[:ensemble_size]]
    if len(members) > 1:
        err = mae(truth, np.mean([preds[m] for m in members], axis=0))
        rows.append({"model": ENSEMBLE, "mae": err, "mase": err / scale, "fit_s": 0.0, "error": ""})
        if err < ranked[0]["mae"]:
            ranked.insert(0, rows[-1])
    best = ranked[0]["model"]
    chosen = members if best == ENSEMBLE else [best]
    widths = _calibrate([at_known[m] for m in chosen], y, known, h, calib_origins, at)
    if refit:
        parts = [SeriesModel(m, seasons).fit(y) for m in chosen]
    else:
        parts = [fitted[m].update(y[at[-1] :]) for m in chosen]  # the CV models stopped at the last origin
    if best == ENSEMBLE:
        model = EnsembleModel(parts)
    else:
        model, members = parts[0], []
    scores = pd.DataFrame(rows, columns=["model", "mae", "mase", "fit_s", "error"])
    return Selection(model, best, scores, n, seasons, len(at), members, n if refit else known, widths)


def _calibrate(parts, y, known: int, h: int, count: int, at) -> ConformalWidths | None:
    """Errors of the chosen model at ``count`` origins of the CV span that did not choose it (out of sample
    for its fit, and not the origins whose errors made it the winner)."""
    chosen_on = set(at)
    extra = [o for o in origins(known, len(y), h, count + len(at)) if o not in chosen_on][:count]
    if not extra:
        return None
    model = parts[0] if len(parts) == 1 else EnsembleModel(parts)
    return calibrate(actuals(y, extra, h) - rolling_forecasts(model, y, known, extra, h), LEVELS)
