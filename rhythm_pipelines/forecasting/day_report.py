"""How the models of one training day forecast the following day: per series MAE, MAPE, MASE and skill.

For every target series with a model tagged ``model_tag``, the model is loaded with its state at the end
of its training window, brought forward point by point through the day and scored at every origin whose
horizon ends inside the day (``accuracy.score_next``), against Naive and SeasonalNaive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from rhythm_pipelines.forecasting.accuracy import NextScore, score_next
from rhythm_pipelines.forecasting.data import stored_series
from rhythm_pipelines.forecasting.models import parse_step
from rhythm_pipelines.forecasting.registry import ModelRegistry
from rhythm_pipelines.forecasting.targets import ForecastTarget, target_sources
from rhythm_pipelines.metrics.store import MetricsStore

DAY_COLUMNS = [
    "target",
    "source",
    "model",
    "version",
    "origins",
    "mae",
    "mape",
    "mase",
    "naive_mae",
    "seasonal_naive_mae",
    "skill",
    "fallback_share",
    "coverage_80",  # share of the day's actuals inside the 80 % interval (conformal: held-out calibration)
    "coverage_95",
]


@dataclass
class DayReport:
    rows: pd.DataFrame  # DAY_COLUMNS
    skipped: pd.DataFrame  # target, source, reason
    scores: dict[tuple, NextScore] = field(default_factory=dict)  # (target, source), with the day first over days

    def worse_than_naive(self, tolerance: float = 0.0) -> pd.DataFrame:
        return self.rows[self.rows["skill"] < -tolerance]

    def by_target(self) -> pd.DataFrame:
        """Per target: series scored, mean and worst skill, mean MAPE."""
        return (
            self.rows.groupby("target")
            .agg(
                series=("source", "size"),
                mean_skill=("skill", "mean"),
                worst_skill=("skill", "min"),
                mape=("mape", "mean"),
                coverage_80=("coverage_80", "mean"),
                coverage_95=("coverage_95", "mean"),
            )
            .reset_index()
        )


def score_day(
    store: MetricsStore,
    registry: ModelRegistry,
    targets: Sequence[ForecastTarget],
    day_start: pd.Timestamp,
    day_end: pd.Timestamp,
    model_tag: str,
) -> DayReport:
    """Score the models tagged ``model_tag`` on ``[day_start, day_end)`` (see module doc)."""
    rows, skipped, scores = [], [], {}
    listed = store.list_series()
    for t in targets:
        for source in target_sources(listed, t):
            version = registry.tagged(source, t.metric, model_tag)
            if version is None:
                skipped.append({"target": t.name, "source": source, "reason": f"no model tagged {model_tag}"})
                continue
            model, mv = registry.load(source, t.metric, version)
            meta = mv.meta
            step, horizon = parse_step(meta["step"]), int(meta["horizon_steps"])
            last = pd.Timestamp(meta["last_ts"])
            season = meta["seasons"][0] if meta["seasons"] else 1
            history_len = max(season, horizon) + 2
            s = stored_series(store, source, t.metric, last - history_len * step, day_end, step, t.how)
            history, after = s[s.index <= last], s[(s.index > last)]
            try:
                if history.empty or history.index[-1] != last:
                    raise ValueError(f"the stored series no longer reaches the model's last point {last}")
                if after.empty or after.index[0] > day_start:
                    first = after.index[0] if len(after) else "none"
                    raise ValueError(f"the day's points start at {first}, after a gap from {last}")
                score = score_next(model, history, after, horizon, season)
            except ValueError as exc:
                skipped.append({"target": t.name, "source": source, "reason": str(exc)})
                continue
            scores[(t.name, source)] = score
            m = score.metrics
            rows.append(
                {
                    "target": t.name,
                    "source": source,
                    "model": meta["model"],
                    "version": mv.version,
                    "origins": score.origins,
                    "mae": m["model"]["mae"],
                    "mape": m["model"]["mape"],
                    "mase": m["model"]["mase"],
                    "naive_mae": m["naive"]["mae"],
                    "seasonal_naive_mae": m["seasonal_naive"]["mae"],
                    "skill": score.skill(),
                    "fallback_share": score.fallback_share,
                    "coverage_80": score.coverage.get("80", float("nan")),
                    "coverage_95": score.coverage.get("95", float("nan")),
                }
            )
    return DayReport(
        pd.DataFrame(rows, columns=DAY_COLUMNS),
        pd.DataFrame(skipped, columns=["target", "source", "reason"]),
        scores,
    )
