"""Training every target series of a window into the registry (the daily, walk-forward training step).

``train_window`` reads each target's series over ``[start, end)`` from the store on the target's grid,
selects and fits a model
per series (``fleet.train_fleet``), saves it as a new registry version tagged with ``tag`` (e.g. the
partition), and makes it the served version unless the served one was trained on newer data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhythm_pipelines.forecasting.data import stored_series
from rhythm_pipelines.forecasting.fleet import train_fleet
from rhythm_pipelines.forecasting.models import DEFAULT_MODELS, step_name
from rhythm_pipelines.forecasting.registry import ModelRegistry
from rhythm_pipelines.forecasting.serving import horizon_steps
from rhythm_pipelines.forecasting.targets import ForecastTarget, target_sources
from rhythm_pipelines.metrics.store import MetricsStore

MIN_HISTORY = pd.Timedelta("12h")  # series with less history in the window are skipped
TRAIN_COLUMNS = [
    "target",
    "source",
    "metric",
    "status",
    "model",
    "points",
    "cv_mae",
    "cv_naive_mae",
    "cv_skill",
    "cv_mase",
    "fit_s",
    "version",
    "served",
    "reason",
]


@dataclass
class TrainReport:
    rows: pd.DataFrame  # TRAIN_COLUMNS, one row per target series
    wall_s: float

    @property
    def trained(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "trained"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "failed"]

    @property
    def skipped(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "skipped"]

    def model_counts(self) -> pd.DataFrame:
        return self.trained["model"].value_counts().rename_axis("model").reset_index(name="series")


def _cv_row(meta: dict) -> dict:
    cv = {r["model"]: r for r in meta["cv"]}
    chosen, naive = cv.get(meta["model"], {}), cv.get("naive", {})
    err, base = chosen.get("mae"), naive.get("mae")
    skill = 1 - err / base if err is not None and base else np.nan
    return {"cv_mae": err, "cv_naive_mae": base, "cv_skill": skill, "cv_mase": chosen.get("mase")}


def train_window(
    store: MetricsStore,
    registry: ModelRegistry,
    targets: Sequence[ForecastTarget],
    start: pd.Timestamp,
    end: pd.Timestamp,
    horizon: pd.Timedelta,
    tag: str,
    models: Sequence[str] = DEFAULT_MODELS,
    min_history: pd.Timedelta = MIN_HISTORY,
    n_jobs: int = 1,
    step: pd.Timedelta | None = None,
    progress: Callable[[str], None] | None = None,
    sources: list[str] | None = None,
) -> TrainReport:
    """Train every target series of ``[start, end)`` (or only those of ``sources``) on its target's grid (or
    ``step``) for ``horizon``."""
    listed = store.list_series()
    rows, wall = [], 0.0
    for t in targets:
        grid = pd.Timedelta(step or t.step)
        h = horizon_steps(horizon, grid)
        need = max(int(np.ceil(min_history / grid)), 2 * h + 2)
        frames, keys = [], {}
        for source in target_sources(listed, t, sources):
            s = stored_series(store, source, t.metric, start, end, grid, t.how)
            base = {"target": t.name, "source": source, "metric": t.metric, "points": len(s)}
            if len(s) < need:
                rows.append(
                    {
                        **base,
                        "status": "skipped",
                        "reason": f"{len(s)} points on the {step_name(grid)} grid (need {need})",
                    }
                )
                continue
            uid = f"{source}/{t.metric}"
            keys[uid] = (source, base)
            frames.append(pd.DataFrame({"unique_id": uid, "ds": s.index, "y": s.to_numpy()}))
        if not frames:
            continue

        def tick(done: int, total: int, name: str = t.name) -> None:
            if progress and (done == total or done % 10 == 0):
                progress(f"{name}: trained {done}/{total} series")

        res = train_fleet(pd.concat(frames, ignore_index=True), h, models, n_jobs=n_jobs, progress=tick)
        wall += res.wall_s
        for uid, err in res.errors.items():
            rows.append({**keys[uid][1], "status": "failed", "reason": err[:300]})
        for uid, trained in res.trained.items():
            source, base = keys[uid]
            meta = {**trained.meta, "target": t.name, "aggregate": t.how, "tag": tag}
            mv = registry.save(source, t.metric, trained.model, meta, tags=[tag])
            served = registry.promote(source, t.metric, mv.version)
            rows.append(
                {
                    **base,
                    "status": "trained",
                    "model": trained.meta["model"],
                    **_cv_row(trained.meta),
                    "fit_s": trained.meta["fit_s"],
                    "version": mv.version,
                    "served": served,
                    "reason": "",
                }
            )
    out = pd.DataFrame(rows, columns=TRAIN_COLUMNS).sort_values(["target", "source"], ignore_index=True)
    return TrainReport(out, wall)
