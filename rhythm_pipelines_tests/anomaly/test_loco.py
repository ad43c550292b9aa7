"""Leave-one-category-out: a category's own labels never reach the constants it is scored with."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.anomaly.evaluate import Score, evaluate_nab, grid_counts, nab_loco
from rhythm_pipelines.anomaly.loco import (
    by_mean,
    by_pooled,
    by_worst,
    choose,
    choose_rule,
    f1,
    held_out_counts,
    leave_one_category_out,
)
from rhythm_pipelines.anomaly.tuning import DEFAULT, GRID, Tuning

CATEGORIES = ["a", "b", "c", "d"]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


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


def test_each_rule_picks_as_it_says_and_ties_go_to_the_earlier_setting():
    big_and_small = np.array([[[90, 10, 10], [0, 5, 5]], [[50, 50, 50], [5, 0, 0]]])
    assert by_mean(big_and_small) == 1  # each kind of series counts once: mean F1 0.75 beats 0.45
    assert by_pooled(big_and_small) == 0  # the big category decides: 0.857 beats 0.52
    assert by_worst(big_and_small) == 1
    tie = np.array([[[5, 5, 5], [5, 5, 5]], [[5, 5, 5], [5, 5, 5]]])
    assert by_mean(tie) == by_pooled(tie) == by_worst(tie) == choose(tie) == 0
    assert f1(np.array([0, 3, 3])) == 0.0 and f1(np.array([2, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least two categories"):
        leave_one_category_out(big_and_small[:, :1], ["a"])


def test_the_rule_is_chosen_by_how_it_holds_out_on_the_training_categories():
    # two small categories suit setting 0, two big ones setting 1. Leaving a big one out, the mean rule
    # follows the small ones and fails it; the pooled rule follows the other big one: pooled holds out better.
    small = [[[3, 0, 0]], [[1, 2, 2]]]
    big = [[[10, 20, 20]], [[40, 2, 2]]]
    counts = np.concatenate([small, small, big, big], axis=1)
    assert held_out_counts(counts, by_mean).tolist() == [22, 44, 44]
    assert held_out_counts(counts, by_pooled).tolist() == [82, 8, 8]
    assert choose_rule(counts) == "pooled" and choose(counts) == 1
    result = leave_one_category_out(counts, ["a", "b", "c", "d"])
    assert result.in_sample_rule == "pooled" and result.in_sample_choice == 1
    assert choose_rule(counts[:, :2]) == "mean"  # all rules tie on the small ones: the first rule


def _labelled_dir(tmp_path):
    """Two categories of noisy series where the settings disagree: a bump only a low z bar catches, a second
    spike only a short refractory gap lets through, and a replayed hour inside a window."""
    rng = np.random.default_rng(5)
    ts = pd.date_range("2026-03-02", periods=1500, freq="5min")
    windows = {}

    def save(cat, name, values, labelled, replay=False):
        (tmp_path / cat).mkdir(exist_ok=True)
        frame = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": values})
        if replay:  # the hour before row 1112 again, inside the window
            frame = pd.concat([frame.iloc[:1112], frame.iloc[1100:1112], frame.iloc[1112:]], ignore_index=True)
        frame.to_csv(tmp_path / cat / f"{name}.csv", index=False)
        windows[f"{cat}/{name}.csv"] = [[str(ts[a]), str(ts[b])] for a, b in labelled]

    bump = rng.normal(10, 1, 1500)
    bump[900] += 5.5  # about 5.5 robust spreads: z bar 5 catches it, 6 does not
    bump[1100] += 15
    save("catA", "f1", bump, [(890, 910), (1080, 1120)])
    replayed = rng.normal(10, 1, 1500)
    replayed[1115] += 15
    save("catA", "f2", replayed, [(1095, 1130)], replay=True)
    twice = rng.normal(10, 1, 1500)
    twice[1200] += 15
    twice[1240] += 20  # 40 points later, outside the window: a refractory gap of 25 lets it through
    save("catB", "g1", twice, [(1190, 1210)])
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    return tmp_path, tmp_path / "windows.json"


def test_the_fast_grid_scores_each_setting_as_detect_does(tmp_path):
    data, windows = _labelled_dir(tmp_path)
    grid = (
        DEFAULT,  # half-life 90 d, factor 1.1, z 6, rhythm 0.5, refractory 25
        Tuning(90.0, 1.1, 5.0, 0.5, 25),
        Tuning(90.0, 1.1, 6.0, 0.5, 100),
        Tuning(math.inf, 1.0, 5.0, None, 50),
    )
    keys, counts = grid_counts(data, windows, "ensemble", grid)
    assert keys == ["catA/f1.csv", "catA/f2.csv", "catB/g1.csv"]
    for g, tuning in enumerate(grid):
        files, total = evaluate_nab(data, windows, "ensemble", tuning)
        assert files[["tp", "fp", "fn"]].to_numpy().tolist() == counts[g].tolist()
        assert total == Score(*map(int, counts[g].sum(axis=0)))
    # the settings disagree where the data says they should
    assert counts[0, 0].tolist() == [1, 0, 1] and counts[1, 0].tolist() == [2, 0, 0]  # z bar 6 vs 5 on the bump
    assert counts[0, 2, 1] == 1 and counts[2, 2, 1] == 0  # refractory 25 vs 100 on the second spike
    assert counts[:, 1].tolist() == [[1, 0, 0]] * 4  # the replayed hour inside the window: the spike still caught
    result = nab_loco(data, windows, "ensemble", grid)
    assert result.result.categories == ("catA", "catB")
    assert result.files["file"].tolist() == keys
    assert set(result.report()) >= {"in_sample", "held_out", "by_category", "chosen", "in_sample_choice"}


def test_the_grid_is_fixed_and_holds_the_shipped_default():
    assert DEFAULT in GRID and len(set(GRID)) == len(GRID)


def test_the_shipped_default_is_what_the_protocol_chooses_on_the_recorded_nab_counts():
    """The per-category counts of every setting on NAB's 46 files, recorded by
    ``benchmarks/bench_detection_heldout.py --save-counts`` (re-record them when the detector changes)."""
    recorded = json.loads((FIXTURES / "nab_grid_counts.json").read_text())
    assert recorded["grid"] == [g.label() for g in GRID]  # the grid the counts were recorded on
    result = leave_one_category_out(np.array(recorded["counts"]), recorded["categories"])
    assert GRID[result.in_sample_choice] == DEFAULT
    assert result.held_out == Score(75, 25, 22) and result.in_sample == Score(77, 25, 20)  # the README's figures
    assert min(s.f1 for s in result.by_category.values()) >= 0.5
