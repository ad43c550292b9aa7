"""Reading a series: rows out of time order, repeats, and what each --on-disorder choice keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.anomaly.series import detect_frame, disorder_note, out_of_order, read_series
from rhythm_pipelines.metrics.schema import ValidationError


def write(path, stamps, values):
    pd.DataFrame({"timestamp": stamps, "value": values}).to_csv(path, index=False)
    return path


def minutes(*m):
    return [f"2026-01-01 00:{v:02d}" for v in m]


def test_a_row_that_jumped_ahead_never_displaces_the_in_order_row_at_its_time(tmp_path):
    path = write(tmp_path / "a.csv", minutes(1, 4, 2, 3, 4), [1.0, 100.0, 2.0, 3.0, 4.0])
    warn = read_series(path)
    assert warn["out_of_order"].tolist() == [False, True, False, False, False]
    assert warn["duplicate"].tolist() == [False, True, False, False, False]  # the in-order 00:04 is scored
    out = detect_frame(warn)
    assert out["value"].tolist() == [1.0, 100.0, 2.0, 3.0, 4.0] and out["score"].iloc[1] == out["score"].iloc[4]
    drop = read_series(path, on_disorder="drop")
    assert drop["value"].tolist() == [1.0, 2.0, 3.0, 4.0]  # warn and drop score the same value at 00:04


def test_the_first_row_can_be_the_one_out_of_order_and_the_messages_say_so(tmp_path):
    path = write(tmp_path / "k.csv", minutes(5, 1, 2, 3), [1.0, 2.0, 3.0, 4.0])
    series = read_series(path)
    assert series["out_of_order"].tolist() == [True, False, False, False]
    note = disorder_note(series, "k.csv")
    assert "1 row(s) out of time order (data rows 1; first: row 1 at 2026-01-01 00:05:00+00:00, out of order " in note
    assert "between 2026-01-01 00:01:00+00:00 (row 2))" in note
    with pytest.raises(ValidationError, match=r"k.csv, row 1, field 'timestamp': timestamps must be in time order"):
        read_series(path, on_disorder="error")
    with pytest.raises(ValueError, match="on_disorder must be one of warn, drop, error"):
        read_series(path, on_disorder="sort")


def test_in_order_files_have_nothing_to_say_and_tiny_files_still_score(tmp_path):
    assert disorder_note(read_series(write(tmp_path / "ok.csv", minutes(1, 2, 3), [1.0, 2.0, 3.0])), "ok") is None
    one = detect_frame(read_series(write(tmp_path / "one.csv", minutes(1), [5.0])))
    assert one["is_anomaly"].tolist() == [0]
    (tmp_path / "empty.csv").write_text("timestamp,value\n")
    assert detect_frame(read_series(tmp_path / "empty.csv")).empty


@pytest.mark.parametrize(
    "times,expected",
    [
        ([1, 2, 3], []),
        ([1, 5, 2, 3, 4], [1]),  # one row jumped ahead: one row, not the three after it
        ([1, 2, 3, 2, 3, 4], [3]),  # a replay: the replay, not the originals (its 3 is in order: a repeat)
        ([5, 1, 2], [0]),
        ([3, 2, 1], [1, 2]),  # nothing in order but the first: the first stays
    ],
)
def test_out_of_order_is_the_fewest_rows_whose_removal_leaves_the_rest_in_order(times, expected):
    assert np.flatnonzero(out_of_order(np.array(times, dtype="int64"))).tolist() == expected
