"""Training a fleet: many series in statsforecast's long shape (``unique_id``, ``ds``, ``y``), one selection
per series, spread over processes.

``train_fleet`` runs ``serving.train_series`` for every ``unique_id`` on ``n_jobs`` local processes, or on any
``concurrent.futures.Executor`` it is given. That is also the path to a cluster: dask.distributed's
``Client.get_executor()`` is such an executor, and on Spark or Ray the per-group function ``train_one`` can be
mapped over the frame partitioned by ``unique_id`` (``fugue.transform(..., partition={"by": "unique_id"},
engine=spark|ray)``), the way statsforecast distributes its own models. A series that cannot be trained is
reported with its reason; the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field

import pandas as pd

from rhythm_pipelines.forecasting.models import DEFAULT_MODELS
from rhythm_pipelines.forecasting.serving import Trained, train_series

LONG_COLUMNS = ("unique_id", "ds", "y")


@dataclass
class FleetResult:
    trained: dict[str, Trained] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # unique_id -> why it could not be trained
    wall_s: float = 0.0


def check_long(frame: pd.DataFrame) -> None:
    missing = [c for c in LONG_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"a fleet frame needs the columns {', '.join(LONG_COLUMNS)}; missing {', '.join(missing)}")


def train_one(args: tuple[str, pd.Series, pd.Series, int, Sequence[str]]) -> tuple[str, Trained | str]:
    """Train one series (a picklable task): the Trained result, or the error as text."""
    uid, ds, y, horizon, models = args
    try:
        return uid, train_series(ds, y.to_numpy(dtype="float64"), horizon, models, metric=uid)
    except Exception as exc:  # one bad series must not stop the fleet
        return uid, f"{type(exc).__name__}: {exc}"


def _tasks(frame: pd.DataFrame, horizon: int, models: Sequence[str]) -> Iterable[tuple]:
    for uid, g in frame.sort_values(["unique_id", "ds"]).groupby("unique_id", sort=True):
        yield str(uid), g["ds"].reset_index(drop=True), g["y"].reset_index(drop=True), horizon, tuple(models)


def train_fleet(
    frame: pd.DataFrame,
    horizon: int,
    models: Sequence[str] = DEFAULT_MODELS,
    n_jobs: int = 1,
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FleetResult:
    """Select and fit a model for every series of a long frame (see module doc)."""
    check_long(frame)
    t0 = time.perf_counter()
    tasks = list(_tasks(frame, horizon, models))
    out = FleetResult()
    own = executor is None and n_jobs > 1
    pool = ProcessPoolExecutor(n_jobs) if own else executor
    try:
        if pool is None:
            results: Iterable = map(train_one, tasks)
        else:
            results = pool.map(train_one, tasks, chunksize=max(1, len(tasks) // (8 * max(n_jobs, 1))))
        for i, (uid, res) in enumerate(results, 1):
            if isinstance(res, str):
                out.errors[uid] = res
            else:
                out.trained[uid] = res
            if progress:
                progress(i, len(tasks))
    finally:
        if own:
            pool.shutdown()
    out.wall_s = time.perf_counter() - t0
    return out
