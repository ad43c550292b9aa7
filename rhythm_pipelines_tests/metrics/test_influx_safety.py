"""InfluxDB writes through the client's serializer: no forged points, no series per row (a real influxd)."""

from __future__ import annotations

import pandas as pd
import pytest

from rhythm_pipelines.metrics.calls import parse_calls
from rhythm_pipelines.metrics.influx import SHARDS, InfluxMetricsStore
from rhythm_pipelines_tests.conftest import T0

FORGERY = 'x" 0\nmetrics,metric=cpu_percent,source=forged value=99 1\nchannel_calls,channel=evil ok=1 1\\'


_dbs = iter(range(10**6))


@pytest.fixture
def influx(influx_server):
    """A fresh database on the real influxd (the `store` fixture's influx variant, without its sqlite twin)."""
    db = f"safety{next(_dbs)}"
    influx_server.create_database(db)
    with InfluxMetricsStore(influx_server.url, token="test-token", bucket=db, batch_size=1000) as s:
        yield s


def test_a_crafted_id_cannot_forge_points(influx):
    calls = pd.DataFrame(
        {
            "ts": [T0, T0],
            "call_id": [FORGERY, "plain"],
            "channel": ["gpt, x=1", "gpt"],
            "region": ["eu west", "eu"],
            "latency_ms": [10.0, 20.0],
            "status": ["ok", "ok"],
            "task": ['chat"\\', None],
        }
    )
    influx.write_table("channel_calls", calls)
    influx.write_metrics(
        pd.DataFrame({"ts": [T0], "source": ["h"], "metric": ["m"], "value": [1.0], "tags": [FORGERY]})
    )
    got = influx.read_table("channel_calls").set_index("call_id")
    assert sorted(got.index) == sorted([FORGERY, "plain"])
    assert got.loc[FORGERY, "channel"] == "gpt, x=1" and got.loc[FORGERY, "task"] == 'chat"\\'
    assert got.loc[FORGERY, "ts"] == T0
    series = influx.list_series()
    assert series.values.tolist() == [["h", "m"]], "no forged metrics series"
    assert influx.read_metrics(T0, T0 + pd.Timedelta("1s"))["tags"].tolist() == [FORGERY]
    measurements = {row[0] for s in influx.query("SHOW MEASUREMENTS") for row in s.get("values", [])}
    assert measurements == {"channel_calls", "metrics"}


def test_per_row_ids_are_fields_and_same_instant_calls_are_kept(influx):
    n = 2000
    calls = pd.DataFrame(
        {
            "ts": [T0 + pd.Timedelta(seconds=i // 100) for i in range(n)],  # 100 calls share each instant
            "call_id": [f"req-{i}" for i in range(n)],
            "channel": "gpt",
            "region": ["eu", "us"] * (n // 2),
            "latency_ms": [float(i) for i in range(n)],
            "status": "ok",
        }
    )
    influx.write_table("channel_calls", calls)
    influx.write_table("channel_calls", calls.iloc[::3].assign(latency_ms=-1.0))  # a re-write replaces
    got = influx.read_table("channel_calls")
    assert len(got) == n and got["call_id"].is_unique
    assert (got.set_index("call_id").loc[calls["call_id"].iloc[::3], "latency_ms"] == -1.0).all()
    assert got["ts"].min() == T0 and got["ts"].max() == T0 + pd.Timedelta(seconds=19)
    keys = [row[0] for s in influx.query('SHOW SERIES FROM "channel_calls"') for row in s.get("values", [])]
    assert 2 <= len(keys) <= 2 * SHARDS, keys[:5]
    assert not any("call_id" in k for k in keys)
    tag_keys = {row[0] for s in influx.query('SHOW TAG KEYS FROM "channel_calls"') for row in s.get("values", [])}
    assert tag_keys == {"channel", "region", "shard"}
    # a window read returns exact times, the offset never moves a call across a boundary
    one = influx.read_table("channel_calls", T0 + pd.Timedelta(seconds=5), T0 + pd.Timedelta(seconds=6))
    assert len(one) == 100 and (one["ts"] == T0 + pd.Timedelta(seconds=5)).all()


def test_ids_with_control_characters_or_huge_are_rejected_at_validation():
    raw = pd.DataFrame(
        {
            "timestamp": [T0.isoformat()] * 6,
            "channel": ["gpt", "gpt", "g" * 1_000_000, "gpt", "gpt", "gpt"],
            "region": ["eu", "eu", "eu", "eu\\", "eu", "eu"],
            "latency_ms": [1.0] * 6,
            "status": ["ok"] * 6,
            "request_id": ["a\nb", "r" * 1_000_000, "ok-1", "ok-2", "x\x07", "y\x00"],
        }
    )
    calls, errors = parse_calls(raw, "gw.jsonl")
    assert calls.empty
    got = [(e.row, e.field, e.reason) for e in errors]
    assert got == [
        (1, "request_id", "contains a control character"),
        (2, "request_id", "longer than 256 characters"),
        (3, "channel", "longer than 256 characters"),
        (4, "region", "ends with a backslash"),
        (5, "request_id", "contains a control character"),
        (6, "request_id", "contains a control character"),
    ]
