"""Leave-one-category-out: a category's own labels never reach the constants it is scored with."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.anomaly.evaluate import Score, evaluate_nab, grid_counts, nab_loco
from rhythm_pipelines.anomaly.loco import choose, f1, leave_one_category_out
from rhythm_pipelines.anomaly.tuning import DEFAULT, GRID, Tuning

CATEGORIES = ["a", "b", "c", "d"]


def random_counts(seed: int, settings: int = 30) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tp = rng.integers(0, 10, (settings, len(CATEGORIES)))
    return np.stack([tp, rng.integers(0, 10, tp.shape), 10 - tp], axis=-1)


@pytest.mark.parametrize("seed", range(5))
def test_a_held_out_category_s_counts_never_change_its_choice(seed):
    counts = random_counts(seed)
    result = leave_one_category_out(counts, CATEGORIES)
    rng = np.random.default_rng(100 + seed)
    for j, cat in enumerate(CATEGORIES):
        for _ in range(5):  # rewrite the held-out category's labels in any way: its choice stays
            other = counts.copy()
            other[:, j] = rng.integers(0, 50, (len(counts), 3))
            assert leave_one_category_out(other, CATEGORIES).chosen[cat] == result.chosen[cat]
        assert result.by_category[cat] == Score(*map(int, counts[result.chosen[cat], j]))
    pooled = sum((result.by_category[c] for c in CATEGORIES), Score())
    assert result.held_out == pooled


def test_the_choice_on_the_others_can_differ_from_the_in_sample_one():
    # setting 0 is best on a, b, c; setting 1 only on d, and by so much that it wins in-sample
    counts = np.array(
        [
            [[9, 1, 1], [9, 1, 1], [9, 1, 1], [0, 0, 10]],
            [[8, 2, 2], [8, 2, 2], [8, 2, 2], [10, 0, 0]],
        ]
    )
    result = leave_one_category_out(counts, CATEGORIES)
    assert result.in_sample_choice == 1 and result.in_sample == Score(34, 6, 6)
    assert result.chosen == {"a": 1, "b": 1, "c": 1, "d": 0}
    assert result.by_category["d"] == Score(0, 0, 10)  # held out, d gets the others' choice, and pays for it
    assert result.held_out == Score(24, 6, 16)


def test_choose_takes_the_mean_category_f1_then_the_pooled_then_the_earlier_setting():
    big_and_small = np.array([[[90, 10, 10], [0, 5, 5]], [[50, 50, 50], [5, 0, 0]]])
    assert choose(big_and_small) == 1  # each kind of series counts once: mean F1 0.75 beats 0.45
    tie = np.array([[[5, 5, 5], [5, 5, 5]], [[5, 5, 5], [5, 5, 5]]])
    assert choose(tie) == 0
    assert f1(np.array([0, 3, 3])) == 0.0 and f1(np.array([2, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least two categories"):
        leave_one_category_out(big_and_small[:, :1], ["a"])


def _labelled_dir(tmp_path):
    """Two categories of noisy series with a spike in a window; one file replays an hour (stepping back)."""
    rng = np.random.default_rng(5)
    windows = {}
    for cat, names in (("catA", ("f1", "f2")), ("catB", ("g1",))):
        (tmp_path / cat).mkdir()
        for k, name in enumerate(names):
            n, spike = 1500, 1100 + 50 * k
            ts = pd.date_range("2026-03-02", periods=n, freq="5min")
            values = rng.normal(10, 1, n)
            values[spike] += 15
            values[700] += 6  # a smaller bump outside any window: some settings flag it
            frame = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": values})
            if name == "f2":  # a replayed hour
                frame = pd.concat([frame.iloc[:900], frame.iloc[888:900], frame.iloc[900:]], ignore_index=True)
            frame.to_csv(tmp_path / cat / f"{name}.csv", index=False)
            windows[f"{cat}/{name}.csv"] = [[str(ts[spike - 20]), str(ts[spike + 20])]]
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    return tmp_path, tmp_path / "windows.json"


def test_the_fast_grid_scores_each_setting_as_detect_does(tmp_path):
    data, windows = _labelled_dir(tmp_path)
    grid = (DEFAULT, Tuning(math.inf, 1.0, 4.0, None, 50), Tuning(7.0, 1.25, 7.0, 0.5, 100))
    keys, counts = grid_counts(data, windows, "ensemble", grid)
    assert keys == ["catA/f1.csv", "catA/f2.csv", "catB/g1.csv"]
    for g, tuning in enumerate(grid):
        files, total = evaluate_nab(data, windows, "ensemble", tuning)
        assert files[["tp", "fp", "fn"]].to_numpy().tolist() == counts[g].tolist()
        assert total == Score(*map(int, counts[g].sum(axis=0)))
    result = nab_loco(data, windows, "ensemble", grid)
    assert result.result.categories == ("catA", "catB")
    assert result.files["file"].tolist() == keys
    assert set(result.report()) >= {"in_sample", "held_out", "by_category", "chosen", "in_sample_choice"}


def test_the_grid_is_fixed_and_holds_the_shipped_default():
    assert DEFAULT in GRID and len(set(GRID)) == len(GRID)
