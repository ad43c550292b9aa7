"""Bad input found by probing: one bad row never fails a window, a window lands whole or not at all, a repeated
request_id never overwrites a stored call, numbers are real and in range, far-future rows are filed once."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from rhythm_pipelines.metrics.ingest import ingest_call_logs
from rhythm_pipelines_tests.conftest import T0

H1, H2 = T0 + pd.Timedelta("1h"), T0 + pd.Timedelta("2h")


def call(minute: int, latency=100.0, request_id: str | None = None, hour: int = 0, **extra) -> str:
    row = {
        "timestamp": (T0 + pd.Timedelta(hours=hour, minutes=minute)).isoformat(),
        "channel": "gpt",
        "region": "eu",
        "latency_ms": latency,
        "status": "ok",
        "tokens_in": 10,
        "tokens_out": 20,
        **({"request_id": request_id} if request_id else {}),
        **extra,
    }
    return json.dumps(row) + "\n"


HALF_PAST = T0 + pd.Timedelta("30min")


def write(tmp_path, name: str, lines: list[str], mtime: pd.Timestamp = HALF_PAST):
    path = tmp_path / "calls" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(lines))
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def test_one_huge_number_does_not_block_the_windows_of_its_file(store, tmp_path):
    write(tmp_path, "gw.jsonl", [
        call(1), call(2).replace('"tokens_in": 10', '"tokens_in": "inf"'),
        call(3).replace('"tokens_in": 10', '"tokens_in": 1e20'), call(4, hour=1),
    ])  # fmt: skip
    first = ingest_call_logs(store, tmp_path / "calls", T0, H1)
    assert first.rows == 1
    assert [(e.row, e.field, e.reason) for e in first.quarantined] == [
        (2, "tokens_in", "not finite"),
        (3, "tokens_in", "out of range (above 1e+09)"),
    ]
    assert ingest_call_logs(store, tmp_path / "calls", H1, H2).rows == 1  # the next hour of the same file


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("cost_usd", "inf", "not finite"),
        ("cost_usd", "NaN", "not a number"),
        ("latency_ms", True, "not a number (true/false)"),
        ("latency_ms", 1e308, "out of range (above 8.64e+07)"),
        ("latency_ms", -1.0, "negative"),
    ],
)
def test_numbers_must_be_real_finite_and_in_range(store, tmp_path, field, value, reason):
    bad = json.dumps({"timestamp": T0.isoformat(), "channel": "gpt", "region": "eu", "latency_ms": 5.0,
                      "status": "ok", field: value})  # fmt: skip
    bad = bad.replace('"NaN"', "NaN")  # a bare NaN, as json.dumps(float("nan")) writes it
    write(tmp_path, "gw.jsonl", [call(1, cost_usd=0.01), bad + "\n"])
    report = ingest_call_logs(store, tmp_path / "calls", T0, H1)
    assert report.rows == 1 and [(e.row, e.field, e.reason) for e in report.quarantined] == [(2, field, reason)]
    assert store.read_metrics(T0, H1, metrics=["cost_usd"])["value"].tolist() == [0.01]


def test_a_window_is_written_whole_or_not_at_all(sqlite_store, tmp_path, monkeypatch):
    write(tmp_path, "gw.jsonl", [call(m) for m in range(5)] + ["{not json\n"])

    def broken(frame):
        raise OSError("disk full")

    monkeypatch.setattr(sqlite_store, "write_metrics", broken)
    with pytest.raises(OSError, match="disk full"):
        ingest_call_logs(sqlite_store, tmp_path / "calls", T0, H1)
    monkeypatch.undo()
    assert sqlite_store.read_table("channel_calls").empty and sqlite_store.read_table("quarantine").empty
    report = ingest_call_logs(sqlite_store, tmp_path / "calls", T0, H1)  # the re-run lands all of it
    assert report.rows == 5 and len(sqlite_store.read_table("channel_calls")) == 5
    assert len(sqlite_store.read_table("quarantine")) == 1


def test_a_repeated_request_id_never_overwrites_a_stored_call(store, tmp_path):
    write(tmp_path, "a.jsonl", [call(1, 1657.0, "req-1"), call(2, 50.0, "req-2")])
    ingest_call_logs(store, tmp_path / "calls", T0, H1)
    write(tmp_path, "b.jsonl", [call(7, 7777.0, "req-1", status="timeout"), call(2, 50.0, "req-2")])
    again = ingest_call_logs(store, tmp_path / "calls", T0, H1)
    assert again.extra["conflicting_calls"] == 1
    (q,) = again.quarantined
    assert q.origin.endswith("b.jsonl") and q.row == 1 and "a.jsonl row 1" in q.reason
    stored = store.read_table("channel_calls").set_index("call_id")
    assert stored.loc["req-1", "latency_ms"] == 1657.0 and stored.loc["req-1", "status"] == "ok"
    minute = store.read_metrics(T0, H1, sources=["gpt@eu"], metrics=["latency_ms_max"])
    assert minute["value"].max() == 1657.0  # calls and minute metrics agree


def test_far_future_rows_are_quarantined_once(store, tmp_path):
    far = call(0).replace(T0.isoformat(), "2099-01-01T00:00:00+00:00")
    write(tmp_path, "gw.jsonl", [call(1), far], mtime=T0 + pd.Timedelta("30min"))
    first = ingest_call_logs(store, tmp_path / "calls", T0, H1)  # the hour its file was written
    assert [(e.row, e.field) for e in first.quarantined] == [(2, "timestamp")]
    assert "in the future" in first.quarantined[0].reason
    assert ingest_call_logs(store, tmp_path / "calls", H1, H2).quarantined == []  # no other window reports it
    assert len(store.read_table("quarantine")) == 1
