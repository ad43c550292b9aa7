"""Validation at the boundary: clear errors naming origin, row and field."""

from __future__ import annotations

import pandas as pd
import pytest

from rhythm_pipelines.metrics.schema import ValidationError, split_metrics, tags_to_json, validate_metrics


def raw(**over):
    base = {
        "ts": ["2026-01-01T00:00:00Z", "2026-01-01 00:01:00"],
        "source": ["a", "a"],
        "metric": ["cpu_percent", "cpu_percent"],
        "value": ["1.5", 2],
    }
    base.update(over)
    return pd.DataFrame(base)


def test_good_rows_normalised_to_utc_float_and_json_tags():
    df = validate_metrics(raw(tags=[{"b": 1, "a": "x"}, None]), "f.csv")
    assert str(df["ts"].dt.tz) == "UTC" and df["value"].tolist() == [1.5, 2.0]
    assert df["tags"].tolist() == ['{"a":"x","b":1}', None]


def test_naive_timestamps_are_utc_and_offsets_converted():
    df = validate_metrics(raw(ts=["2026-01-01 02:00:00+02:00", "2026-01-01 00:01:00"]), "f.csv")
    assert df["ts"].tolist() == [pd.Timestamp("2026-01-01 00:00", tz="UTC"), pd.Timestamp("2026-01-01 00:01", tz="UTC")]


@pytest.mark.parametrize(
    ("over", "row", "field", "reason"),
    [
        ({"ts": ["2026-01-01", "yesterday-ish"]}, 2, "ts", "not a parsable timestamp"),
        ({"value": ["1", "abc"]}, 2, "value", "not a number"),
        ({"value": [None, "1"]}, 1, "value", "empty"),
        ({"value": ["inf", "1"]}, 1, "value", "not finite"),
        ({"source": ["a", " "]}, 2, "source", "empty"),
        ({"tags": ["[1,2]", None]}, 1, "tags", "invalid tags"),
    ],
)
def test_bad_rows_name_file_row_and_field(over, row, field, reason):
    with pytest.raises(ValidationError) as exc:
        validate_metrics(raw(**over), "landing/metrics/x.csv")
    err = exc.value
    assert (err.origin, err.row, err.field) == ("landing/metrics/x.csv", row, field)
    assert reason in str(err) and f"row {row}" in str(err) and f"'{field}'" in str(err)


def test_missing_column_names_it():
    with pytest.raises(ValidationError, match=r"x.csv, field 'value': missing required column"):
        validate_metrics(raw().drop(columns="value"), "x.csv")


def test_split_keeps_good_rows_and_reports_each_bad_one():
    good, bad = split_metrics(raw(value=["1", "x"], ts=["2026-01-01", "2026-01-01 00:02"]), "x.csv")
    assert len(good) == 1 and [(e.row, e.field) for e in bad] == [(2, "value")]
    assert bad[0].ts == pd.Timestamp("2026-01-01 00:02", tz="UTC")


def test_tags_json_is_canonical():
    assert tags_to_json('{"z": 1, "a": 2}') == '{"a":2,"z":1}'
    assert tags_to_json({}) is None and tags_to_json(float("nan")) is None
