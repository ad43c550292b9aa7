"""The MetricsStore contract, run against both stores: SQLite and a real InfluxDB server."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.schema import validate_metrics
from rhythm_pipelines_tests.conftest import T0


def frame(n: int = 120, sources=("h1", "h2"), metrics=("cpu_percent", "mem_percent"), offset: float = 0.0):
    ts = pd.date_range(T0, periods=n, freq="1min")
    rows = [
        (t, s, m, float(i) + offset + 1000 * si + 100 * mi, None)
        for si, s in enumerate(sources)
        for mi, m in enumerate(metrics)
        for i, t in enumerate(ts)
    ]
    return validate_metrics(pd.DataFrame(rows, columns=["ts", "source", "metric", "value", "tags"]))


def test_round_trip_sorted_with_exact_values(store):
    data = frame()
    assert store.write_metrics(data.sample(frac=1, random_state=3)) == len(data)  # any order in
    got = store.read_metrics(T0, T0 + pd.Timedelta(hours=3))
    expected = data.sort_values(["source", "metric", "ts"], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert str(got["ts"].dt.tz) == "UTC"


def test_rewrite_replaces_and_never_duplicates(store):
    store.write_metrics(frame())
    store.write_metrics(frame(offset=0.5).iloc[:30])  # same keys, new values for 30 points
    got = store.read_metrics(T0, T0 + pd.Timedelta(hours=3))
    assert len(got) == len(frame())
    assert not got.duplicated(["source", "metric", "ts"]).any()
    h1cpu = got[(got.source == "h1") & (got.metric == "cpu_percent")].reset_index(drop=True)
    assert h1cpu["value"].iloc[0] == 0.5 and h1cpu["value"].iloc[29] == 29.5 and h1cpu["value"].iloc[30] == 30.0


def test_range_is_half_open_and_filters(store):
    store.write_metrics(frame())
    got = store.read_metrics(
        T0 + pd.Timedelta(minutes=10), T0 + pd.Timedelta(minutes=20), sources=["h2"], metrics=["mem_percent"]
    )
    assert len(got) == 10
    assert set(got["source"]) == {"h2"} and set(got["metric"]) == {"mem_percent"}
    assert got["ts"].min() == T0 + pd.Timedelta(minutes=10)
    assert got["ts"].max() == T0 + pd.Timedelta(minutes=19)
    assert store.read_metrics(T0, T0 + pd.Timedelta(hours=3), sources=["nope"]).empty


def test_tags_survive(store):
    data = validate_metrics(
        pd.DataFrame(
            {
                "ts": [T0, T0 + pd.Timedelta("10s")],
                "source": "h/proc/7",
                "metric": "proc_rss_bytes",
                "value": [1.0, 2.0],
                "tags": [{"name": "py thon,x=1", "pid": 7}, None],
            }
        )
    )
    store.write_metrics(data)
    got = store.read_metrics(T0, T0 + pd.Timedelta("1min"))
    assert got["tags"].tolist() == ['{"name":"py thon,x=1","pid":7}', None]


def test_list_series(store):
    store.write_metrics(frame())
    series = store.list_series()
    assert sorted(map(tuple, series[["source", "metric"]].to_numpy())) == [
        ("h1", "cpu_percent"),
        ("h1", "mem_percent"),
        ("h2", "cpu_percent"),
        ("h2", "mem_percent"),
    ]


def test_tables_upsert_by_key(store):
    calls = pd.DataFrame(
        {
            "ts": [T0, T0 + pd.Timedelta("1s")],
            "call_id": ["a", "b"],
            "channel": "gpt",
            "region": "eu",
            "latency_ms": [10.0, 20.0],
            "status": ["ok", "error"],
            "tokens_in": [1, 2],
            "tokens_out": [3, 4],
            "cost_usd": [0.1, np.nan],
            "origin": "f.jsonl",
        }
    )
    store.write_table("channel_calls", calls)
    store.write_table("channel_calls", calls.assign(latency_ms=[11.0, 21.0]))
    got = store.read_table("channel_calls", T0, T0 + pd.Timedelta("1min"))
    assert got["call_id"].tolist() == ["a", "b"]
    assert got["latency_ms"].tolist() == [11.0, 21.0]
    assert np.isnan(got["cost_usd"].iloc[1]) and got["tokens_out"].tolist() == [3, 4]
    only_b = store.read_table("channel_calls", status="error")
    assert only_b["call_id"].tolist() == ["b"]


def test_quarantine_rows_with_unknown_time(store):
    q = pd.DataFrame(
        {
            "ts": [pd.Timestamp(0, tz="UTC")],
            "kind": "calls",
            "origin": "x.csv",
            "row": [4],
            "field": "timestamp",
            "reason": "not a parsable timestamp",
            "raw": "{}",
        }
    )
    store.write_table("quarantine", q)
    store.write_table("quarantine", q)
    got = store.read_table("quarantine")
    assert len(got) == 1 and got["row"].iloc[0] == 4 and got["field"].iloc[0] == "timestamp"


def test_awkward_names_round_trip(store):
    names = ["web 01,eu=1", "C:\\\\host\\\\x", "ä-β@region"]
    data = validate_metrics(
        pd.DataFrame({"ts": T0, "source": names, "metric": ["lat ency,ms=1", "m", "m"], "value": [1.0, 2.0, 3.0]})
    )
    store.write_metrics(data)
    got = store.read_metrics(T0, T0 + pd.Timedelta("1min"), sources=names)
    assert sorted(got["source"]) == sorted(names)
    assert sorted(map(tuple, store.list_series()[["source", "metric"]].to_numpy())) == sorted(
        zip(names, ["lat ency,ms=1", "m", "m"], strict=True)
    )


def test_rewrite_without_tags_clears_them(store):
    tagged = validate_metrics(
        pd.DataFrame({"ts": [T0], "source": "h", "metric": "m", "value": [1.0], "tags": [{"a": 1}]})
    )
    store.write_metrics(tagged)
    store.write_metrics(tagged.assign(tags=[None], value=[2.0]))
    got = store.read_metrics(T0, T0 + pd.Timedelta("1min"))
    assert got[["value", "tags"]].values.tolist() == [[2.0, None]]


def test_control_characters_are_rejected_at_the_boundary():
    import pytest

    from rhythm_pipelines.metrics.schema import ValidationError

    with pytest.raises(ValidationError, match="row 1, field 'source': contains a control character"):
        validate_metrics(pd.DataFrame({"ts": [T0], "source": ["a\nb"], "metric": "m", "value": [1.0]}), "x.csv")
