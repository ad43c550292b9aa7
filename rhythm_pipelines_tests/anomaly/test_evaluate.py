"""The window metric on hand-computed cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.anomaly.evaluate import Score, labelled_files, load_windows, probation_rows, score_flags

TS = pd.date_range("2026-01-01", periods=100, freq="5min")


def flags_at(*idx: int) -> np.ndarray:
    f = np.zeros(100, dtype=bool)
    f[list(idx)] = True
    return f


def test_true_positive_false_negative_and_false_positive_runs():
    windows = [(TS[48], TS[52]), (TS[70], TS[75])]
    got = score_flags(TS, flags_at(20, 21, 22, 50, 60, 61, 90), windows, probation=10)
    # window 1 hit by 50; window 2 missed; runs outside: 20-22, 60-61, 90
    assert got == Score(tp=1, fp=3, fn=1)
    assert (got.precision, got.recall) == (0.25, 0.5) and got.f1 == pytest.approx(1 / 3)


def test_window_ends_are_inclusive_and_a_run_crossing_a_window_edge():
    windows = [(TS[40], TS[45])]
    assert score_flags(TS, flags_at(45), windows, probation=0) == Score(1, 0, 0)
    assert score_flags(TS, flags_at(40), windows, probation=0) == Score(1, 0, 0)
    # 38, 39 outside (one run), 40-41 inside, 46 outside (a second run)
    assert score_flags(TS, flags_at(38, 39, 40, 41, 46), windows, probation=0) == Score(1, 2, 0)


def test_probation_ignores_flags_and_windows_that_end_in_it():
    assert probation_rows(100) == 15 and probation_rows(10_000) == 750
    windows = [(TS[5], TS[10]), (TS[12], TS[30])]
    # default probation for 100 rows: the first 15; the first window is not scored at all,
    # the second is, but only by flags from row 15 on
    assert score_flags(TS, flags_at(3, 7, 13), windows) == Score(0, 0, 1)
    assert score_flags(TS, flags_at(3, 7, 16), windows) == Score(1, 0, 0)


def test_nothing_flagged_and_no_windows():
    assert score_flags(TS, np.zeros(100, bool), []) == Score(0, 0, 0)
    assert Score().f1 == 0.0
    assert (Score(1, 1, 0) + Score(2, 0, 3)) == Score(3, 1, 3)


def test_labelled_files_match_windows_keys(tmp_path):
    (tmp_path / "realX").mkdir()
    pd.DataFrame({"timestamp": TS, "value": np.arange(100)}).to_csv(tmp_path / "realX" / "a.csv", index=False)
    pd.DataFrame({"timestamp": TS, "value": np.arange(100)}).to_csv(tmp_path / "realX" / "b.csv", index=False)
    windows_file = tmp_path / "windows.json"
    windows_file.write_text(
        json.dumps({"realX/a.csv": [["2026-01-01 01:00:00", "2026-01-01 02:00:00"]], "realY/c.csv": []})
    )
    windows = load_windows(windows_file)
    assert [k for k, _ in labelled_files(tmp_path, windows)] == ["realX/a.csv"]
    assert windows["realX/a.csv"][0][0] == pd.Timestamp("2026-01-01 01:00")
