"""First models: a target series with no served model gets one as soon as it has enough history, rather than at
the next nightly training (which then takes over: its models are trained on newer data)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from rhythm_pipelines.forecasting.registry import CURRENT, ModelRegistry
from rhythm_pipelines.forecasting.targets import TARGETS, target, target_sources
from rhythm_pipelines.forecasting.training import train_window
from rhythm_pipelines.metrics.store import MetricsStore

FIRST_MODEL_HISTORY = pd.Timedelta("3h")  # a series without a model gets one once it has this much history
WINDOW = pd.Timedelta(days=7)


def without_models(
    store: MetricsStore, registry: ModelRegistry, now: pd.Timestamp, history: pd.Timedelta = FIRST_MODEL_HISTORY
) -> tuple[list[str], list[str]]:
    """``target:source`` pairs with no served model: (those with ``history`` of points, those still gathering)."""
    ready, waiting = [], []
    listed = store.list_series()
    for t in TARGETS.values():
        for source in target_sources(listed, t):
            if registry.tagged(source, t.metric, CURRENT) is not None:
                continue
            pts = store.read_metrics(now - history - pd.Timedelta("15min"), now, [source], [t.metric])
            old_enough = not pts.empty and pts["ts"].min() <= now - history
            (ready if old_enough else waiting).append(f"{t.name}:{source}")
    return sorted(ready), waiting


def train_first(
    store: MetricsStore,
    registry: ModelRegistry,
    series: list[str],
    now: pd.Timestamp,
    progress: Callable[[str], None] | None = None,
    window: pd.Timedelta = WINDOW,
    tag: str = "first",
) -> pd.DataFrame:
    """Train each ``target:source`` on the history it has (up to ``window``, to now) and serve it; the report's
    rows."""
    end = now.floor("5min")
    by_target: dict[str, list[str]] = {}
    for pair in series:
        name, source = pair.split(":", 1)
        by_target.setdefault(name, []).append(source)
    rows = [
        train_window(
            store,
            registry,
            [target(name)],
            end - window,
            end,
            pd.Timedelta("1h"),
            f"{tag}-{end:%Y-%m-%dT%H%M}",
            min_history=FIRST_MODEL_HISTORY,
            sources=sources,
            progress=progress,
        ).rows  # fmt: skip
        for name, sources in by_target.items()
    ]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
