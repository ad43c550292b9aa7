"""Forecasts from now: each target series' served model, brought up to date with the points stored since its
training, forecasts the next horizons (15 min and 1 h by default) with intervals.

Only whole steps are used (the step in progress is left out), so a forecast never rests on half a bucket.
Every forecast says its origin (the newest point it rests on) and how far behind ``now`` that is; a source whose
newest point is older than the longest horizon is refused (its "next hour" would be over already), not served
as live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from rhythm_pipelines.forecasting.data import stored_series
from rhythm_pipelines.forecasting.models import parse_step
from rhythm_pipelines.forecasting.registry import ModelRegistry
from rhythm_pipelines.forecasting.serving import DEFAULT_HORIZONS, Forecaster, horizon_steps
from rhythm_pipelines.forecasting.targets import ForecastTarget, target_sources
from rhythm_pipelines.metrics.store import MetricsStore

MAX_CATCH_UP = pd.Timedelta("2D")  # a served model further behind than this is stale: retrain it
NO_MODEL, STALE, FAILED = "no_model", "stale", "failed"  # why a source was skipped (only no_model is expected)


@dataclass
class LiveForecasts:
    summary: pd.DataFrame  # one row per source: model, version, last point, and mean [lo-80, hi-80] per horizon
    points: pd.DataFrame  # the forecasts table's rows: every step up to the longest horizon
    skipped: pd.DataFrame  # source, reason
    recent: dict[str, pd.Series] = field(default_factory=dict)  # source -> the points the model caught up on


def forecast_now(
    store: MetricsStore,
    registry: ModelRegistry,
    target: ForecastTarget,
    now: pd.Timestamp,
    horizons: Sequence[pd.Timedelta] = DEFAULT_HORIZONS,
    sources: list[str] | None = None,
) -> LiveForecasts:
    """Forecast every source of ``target`` (or those of ``sources``) from its served model (see module doc)."""
    forecaster = Forecaster(registry)
    summary, points, skipped, recent = [], [], [], {}
    longest = max(horizons)
    for source in target_sources(store.list_series(), target, sources):
        try:
            mv = forecaster.load(source, target.metric)
        except LookupError:
            skipped.append(
                {"source": source, "kind": NO_MODEL, "reason": "no trained model yet (materialize forecaster_models)"}
            )
            continue
        step = parse_step(mv.meta["step"])
        last = pd.Timestamp(mv.meta["last_ts"])
        end = now.floor(step)  # the step in progress is not whole yet
        if end - last > MAX_CATCH_UP:
            reason = f"the served model ends at {last}: stale, retrain"
            skipped.append({"source": source, "kind": STALE, "reason": reason})
            continue
        s = stored_series(store, source, target.metric, last - 12 * step, end, step, target.how)
        try:
            forecaster.update(source, target.metric, s.index, s.to_numpy())
        except ValueError as exc:
            skipped.append({"source": source, "kind": FAILED, "reason": str(exc)})
            continue
        info = forecaster.info(source, target.metric)
        origin = pd.Timestamp(info["last_seen"])
        behind = now - (origin + step)  # the origin's bucket closes one step after it starts
        if behind > longest:
            skipped.append(
                {
                    "source": source,
                    "kind": STALE,
                    "reason": f"stale: its newest point is {origin:%Y-%m-%d %H:%M} UTC, {_age(behind)} before now, "
                    f"more than the {horizon_label(longest)} horizon: no live forecast",
                }
            )
            continue
        steps = max(horizon_steps(h, step) for h in horizons)
        fc = forecaster.predict(source, target.metric, steps)
        issued = origin + step  # the first step forecast
        recent[source] = s[s.index > last - 36 * step]
        row = {
            "source": source,
            "model": mv.meta["model"],
            "version": mv.version,
            "origin": origin,
            "behind": _age(max(behind, pd.Timedelta(0))),
            "stale": behind > step,  # more than a step behind now: the short horizons are partly past
            "naive_guard": info["fallback_to_naive"],
        }
        for h in horizons:
            k = horizon_steps(h, step) - 1
            label = horizon_label(h)
            row[f"{label}"] = fc["mean"].iloc[k]
            row[f"{label} lo-80"], row[f"{label} hi-80"] = fc["lo-80"].iloc[k], fc["hi-80"].iloc[k]
        summary.append(row)
        labels = pd.Series([horizon_label(step * (i + 1)) for i in range(steps)])
        points.append(
            pd.DataFrame(
                {
                    "ts": fc["ds"],
                    "issued": issued,
                    "source": source,
                    "metric": target.metric,
                    "horizon": labels.to_numpy(),
                    "model": mv.meta["model"],
                    "version": mv.version,
                    "mean": fc["mean"],
                    "lo_80": fc["lo-80"],
                    "hi_80": fc["hi-80"],
                    "lo_95": fc["lo-95"],
                    "hi_95": fc["hi-95"],
                }
            )
        )
    return LiveForecasts(
        pd.DataFrame(summary),
        pd.concat(points, ignore_index=True) if points else pd.DataFrame(),
        pd.DataFrame(skipped, columns=["source", "kind", "reason"]),
        recent,
    )


def _age(d: pd.Timedelta) -> str:
    minutes = d / pd.Timedelta("1min")
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def horizon_label(h: pd.Timedelta) -> str:
    """A horizon as text: 15min, 1h, 90min."""
    minutes = pd.Timedelta(h) / pd.Timedelta("1min")
    if minutes >= 60 and minutes % 60 == 0:
        return f"{int(minutes // 60)}h"
    return f"{minutes:g}min"
