"""Leave-one-category-out: choose constants on some kinds of series, report on a kind they never saw.

Input: the window counts (tp, fp, fn) of every candidate setting on every category, shape
(settings, categories, 3). For each category, a setting is chosen on the *other* categories only and
scored on it; the held-out figure pools those scores over all categories. The in-sample figure is the
setting chosen on all categories, scored on all of them (what a default chosen on everything claims).

How to choose is itself chosen from the training categories alone: three selection rules (the best mean of
the categories' F1, each kind of series counting once; the best pooled F1; the best worst category) are
compared by an inner leave-one-category-out over the training categories, and the rule that holds out best
there chooses the setting (ties: the rules in that order; within a rule, the earlier setting in the grid's
order of preference). :func:`choose` sees only the counts it is given: a held-out category's labels reach
neither its setting nor the rule that chose it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rhythm_pipelines.anomaly.evaluate import Score


def f1(counts: np.ndarray) -> np.ndarray:
    """Window F1 from (..., 3) arrays of (tp, fp, fn); 0 where nothing was caught."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)


def _first_best(values: np.ndarray, then: np.ndarray) -> int:
    """The index of the best value, ties to the best ``then``, then to the earliest."""
    return int(np.lexsort((np.arange(len(values)), -then, -values))[0])  # the last key sorts first


def by_mean(counts: np.ndarray) -> int:
    """The best mean per-category F1 (each kind of series counts once), ties to the pooled F1."""
    return _first_best(f1(counts).mean(axis=1), f1(counts.sum(axis=1)))


def by_pooled(counts: np.ndarray) -> int:
    """The best F1 of the pooled counts (the biggest categories weigh most)."""
    return _first_best(f1(counts.sum(axis=1)), f1(counts).mean(axis=1))


def by_worst(counts: np.ndarray) -> int:
    """The best worst-category F1, ties to the mean."""
    return _first_best(f1(counts).min(axis=1), f1(counts).mean(axis=1))


RULES: dict[str, Callable[[np.ndarray], int]] = {"mean": by_mean, "pooled": by_pooled, "worst": by_worst}


def held_out_counts(counts: np.ndarray, rule: Callable[[np.ndarray], int]) -> np.ndarray:
    """Pooled counts of leaving each category of ``counts`` out in turn under one rule."""
    k = counts.shape[1]
    return sum(counts[rule(counts[:, [i for i in range(k) if i != j]]), j] for j in range(k))


def choose_rule(counts: np.ndarray) -> str:
    """The selection rule that holds out best over these categories (one category: the first rule)."""
    if counts.shape[1] < 2:
        return next(iter(RULES))
    scores = {name: float(f1(held_out_counts(counts, rule))) for name, rule in RULES.items()}
    return max(RULES, key=lambda name: (scores[name], -list(RULES).index(name)))


def choose(counts: np.ndarray) -> int:
    """The setting chosen on ``counts`` (settings, categories, 3): by the rule that holds out best among
    these categories (see the module docstring)."""
    counts = np.asarray(counts)
    return RULES[choose_rule(counts)](counts)


def _score(c: np.ndarray) -> Score:
    return Score(int(c[0]), int(c[1]), int(c[2]))


@dataclass(frozen=True)
class LocoResult:
    """The protocol's outcome: held out per category and pooled, beside the choice made on all categories."""

    categories: tuple[str, ...]
    held_out: Score  # pooled over the categories, each scored with the setting chosen without it
    by_category: dict[str, Score]  # held out
    chosen: dict[str, int]  # per held-out category: the setting chosen on the others
    rules: dict[str, str]  # per held-out category: the selection rule the others chose
    in_sample: Score  # the setting chosen on all categories, scored on all
    in_sample_choice: int
    in_sample_rule: str
    in_sample_by_category: dict[str, Score]


def leave_one_category_out(counts: np.ndarray, categories: Sequence[str]) -> LocoResult:
    """Run the protocol on (settings, categories, 3) counts; needs at least two categories."""
    counts = np.asarray(counts)
    k = len(categories)
    if counts.ndim != 3 or counts.shape[1] != k or counts.shape[2] != 3:
        raise ValueError(f"counts must have shape (settings, {k}, 3), got {counts.shape}")
    if k < 2:
        raise ValueError("leave-one-category-out needs at least two categories")
    chosen, rules, by, held = {}, {}, {}, np.zeros(3, dtype="int64")
    for j, cat in enumerate(categories):
        others = counts[:, [i for i in range(k) if i != j]]
        rules[cat] = choose_rule(others)
        best = RULES[rules[cat]](others)
        chosen[cat], by[cat] = best, _score(counts[best, j])
        held += counts[best, j]
    rule_all = choose_rule(counts)
    best_all = RULES[rule_all](counts)
    return LocoResult(
        tuple(categories),
        _score(held),
        by,
        chosen,
        rules,
        _score(counts[best_all].sum(axis=0)),
        best_all,
        rule_all,
        {cat: _score(counts[best_all, j]) for j, cat in enumerate(categories)},
    )
