"""Leave-one-category-out: choose constants on some kinds of series, report on a kind they never saw.

Input: the window counts (tp, fp, fn) of every candidate setting on every category, shape
(settings, categories, 3). For each category, a setting is chosen on the *other* categories only and
scored on it; the held-out figure pools those scores over all categories. The in-sample figure is the
setting chosen on all categories, scored on all of them (what a default chosen on everything claims).

The choice maximises the mean of the training categories' F1 (each kind of series counts once, however
many files or windows it has), then their pooled F1, then the earlier setting in the grid's order of
preference. :func:`choose` sees only the counts it is given: a held-out category's labels cannot reach it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rhythm_pipelines.anomaly.evaluate import Score


def f1(counts: np.ndarray) -> np.ndarray:
    """Window F1 from (..., 3) arrays of (tp, fp, fn); 0 where nothing was caught."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)


def choose(counts: np.ndarray) -> int:
    """The index of the setting with the best mean per-category F1 on ``counts`` (settings, categories, 3),
    ties to the best pooled F1, then to the earliest setting."""
    counts = np.asarray(counts)
    mean = f1(counts).mean(axis=1)
    pooled = f1(counts.sum(axis=1))
    order = np.lexsort((np.arange(len(counts)), -pooled, -mean))  # last key sorts first
    return int(order[0])


def _score(c: np.ndarray) -> Score:
    return Score(int(c[0]), int(c[1]), int(c[2]))


@dataclass(frozen=True)
class LocoResult:
    categories: tuple[str, ...]
    held_out: Score  # pooled over the categories, each scored with the setting chosen without it
    by_category: dict[str, Score]  # held out
    chosen: dict[str, int]  # per held-out category: the setting chosen on the others
    in_sample: Score  # the setting chosen on all categories, scored on all
    in_sample_choice: int
    in_sample_by_category: dict[str, Score]


def leave_one_category_out(counts: np.ndarray, categories: Sequence[str]) -> LocoResult:
    """Run the protocol on (settings, categories, 3) counts; needs at least two categories."""
    counts = np.asarray(counts)
    k = len(categories)
    if counts.ndim != 3 or counts.shape[1] != k or counts.shape[2] != 3:
        raise ValueError(f"counts must have shape (settings, {k}, 3), got {counts.shape}")
    if k < 2:
        raise ValueError("leave-one-category-out needs at least two categories")
    chosen, by, held = {}, {}, np.zeros(3, dtype="int64")
    for j, cat in enumerate(categories):
        others = [i for i in range(k) if i != j]
        best = choose(counts[:, others])
        chosen[cat], by[cat] = best, _score(counts[best, j])
        held += counts[best, j]
    best_all = choose(counts)
    return LocoResult(
        tuple(categories),
        _score(held),
        by,
        chosen,
        _score(counts[best_all].sum(axis=0)),
        best_all,
        {cat: _score(counts[best_all, j]) for j, cat in enumerate(categories)},
    )
