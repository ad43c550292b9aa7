"""SQLite specifics: a real file, hour blocks, transactions."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.metrics.schema import validate_metrics
from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore
from rhythm_pipelines_tests.conftest import T0


def points(start, n, step="10s", value=0.0, source="h", metric="cpu_percent"):
    ts = pd.date_range(start, periods=n, freq=step)
    return validate_metrics(pd.DataFrame({"ts": ts, "source": source, "metric": metric, "value": value + np.arange(n)}))


def test_persists_in_wal_file_across_reopen(tmp_path):
    path = tmp_path / "m.db"
    with SQLiteMetricsStore(path) as s:
        s.write_metrics(points(T0, 1000))
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with SQLiteMetricsStore(path) as s:
        assert len(s.read_metrics(T0, T0 + pd.Timedelta(days=1))) == 1000


def test_overlapping_writes_merge_across_hour_blocks(sqlite_store):
    # 3 hours at 10 s, then an overlapping window shifted by 5 s and one rewriting exact timestamps
    sqlite_store.write_metrics(points(T0, 1080))
    sqlite_store.write_metrics(points(T0 + pd.Timedelta("5s"), 720, value=10_000))
    sqlite_store.write_metrics(points(T0 + pd.Timedelta("1h"), 10, value=-1))
    got = sqlite_store.read_metrics(T0, T0 + pd.Timedelta(hours=4))
    assert len(got) == 1080 + 720
    assert got["ts"].is_monotonic_increasing and not got["ts"].duplicated().any()
    at_1h = got.set_index("ts")["value"]
    assert at_1h[T0 + pd.Timedelta("1h")] == -1
    assert at_1h[T0 + pd.Timedelta("1h10s")] == 0
    assert at_1h[T0 + pd.Timedelta("5s")] == 10_000


def test_duplicates_within_one_write_keep_the_last(sqlite_store):
    df = pd.concat([points(T0, 3), points(T0, 3, value=7)], ignore_index=True)
    sqlite_store.write_metrics(df)  # frame not deduplicated by validation
    got = sqlite_store.read_metrics(T0, T0 + pd.Timedelta("1h"))
    assert got["value"].tolist() == [7.0, 8.0, 9.0]


def test_failed_write_loses_nothing_already_stored(sqlite_store):
    sqlite_store.write_metrics(points(T0, 100))
    bad = points(T0 + pd.Timedelta("1h"), 100)
    bad["ts"] = bad["ts"].astype(object)
    bad.loc[50, "ts"] = "garbage"
    with pytest.raises((ValueError, TypeError, AttributeError)):
        sqlite_store.write_metrics(bad)
    assert len(sqlite_store.read_metrics(T0, T0 + pd.Timedelta(days=1))) == 100
    sqlite_store.write_metrics(points(T0 + pd.Timedelta("1h"), 100))  # the store still works
    assert len(sqlite_store.read_metrics(T0, T0 + pd.Timedelta(days=1))) == 200


def test_two_connections_see_each_others_writes(tmp_path):
    with SQLiteMetricsStore(tmp_path / "m.db") as a, SQLiteMetricsStore(tmp_path / "m.db") as b:
        a.write_metrics(points(T0, 10, source="x"))
        b.write_metrics(points(T0, 10, source="y"))
        assert set(a.read_metrics(T0, T0 + pd.Timedelta("1h"))["source"]) == {"x", "y"}


def test_error_inside_the_transaction_rolls_back(sqlite_store, monkeypatch):
    sqlite_store.write_metrics(points(T0, 100))
    original = SQLiteMetricsStore._merge_blocks

    def merge_then_fail(self, *args):
        original(self, *args)  # blocks written inside the transaction ...
        raise RuntimeError("disk on fire")  # ... then the write fails

    monkeypatch.setattr(SQLiteMetricsStore, "_merge_blocks", merge_then_fail)
    with pytest.raises(RuntimeError):
        sqlite_store.write_metrics(points(T0 + pd.Timedelta("2h"), 50, source="new-host"))
    monkeypatch.undo()
    got = sqlite_store.read_metrics(T0, T0 + pd.Timedelta(days=1))
    assert len(got) == 100 and set(got["source"]) == {"h"}
    assert "new-host" not in set(sqlite_store.list_series()["source"])
    sqlite_store.write_metrics(points(T0 + pd.Timedelta("2h"), 50, source="new-host"))
    assert len(sqlite_store.read_metrics(T0, T0 + pd.Timedelta(days=1))) == 150


def test_a_file_made_before_a_column_existed_gains_it_and_keeps_its_rows(tmp_path):

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # channel_calls as it was before calls had a task
        conn.execute(
            'CREATE TABLE "channel_calls" ("ts" INTEGER, "call_id" TEXT, "channel" TEXT, "region" TEXT, '
            '"latency_ms" REAL, "status" TEXT, "tokens_in" INTEGER, "tokens_out" INTEGER, "cost_usd" REAL, '
            '"origin" TEXT, PRIMARY KEY ("call_id"))'
        )
        conn.execute(
            "INSERT INTO channel_calls VALUES (1772409600000000000, 'old', 'a', 'r', 1.0, 'ok', 1, 1, 0.1, 'x')"
        )
    new = pd.DataFrame(
        [{"ts": pd.Timestamp("2026-03-02 01:00", tz="UTC"), "call_id": "new", "channel": "a", "region": "r",
          "latency_ms": 2.0, "status": "ok", "task": "chat", "origin": "y"}]
    )  # fmt: skip
    with SQLiteMetricsStore(path) as s:
        s.write_table("channel_calls", new)
        rows = s.read_table("channel_calls")
    assert rows["call_id"].tolist() == ["old", "new"]
    assert rows["task"].tolist() == [None, "chat"]


def _open_at_once(path: str, barrier, out) -> None:
    from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore

    barrier.wait()
    try:
        with SQLiteMetricsStore(path) as store:
            point = {"ts": [T0], "source": "h", "metric": "m", "value": [1.0]}
            store.write_metrics(pd.DataFrame(point))
        out.put("ok")
    except Exception as exc:  # reported to the parent, which asserts on it
        out.put(repr(exc))


def test_processes_opening_a_new_store_file_at_once_all_get_it(tmp_path):
    """Two steps of one run open the same new SQLite file together (CI once saw "database is locked" there):
    every process gets the store. A stress check: the race is rare; the retry itself is tested below."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    for attempt in range(3):
        path = str(tmp_path / f"new-{attempt}.db")
        barrier, out = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open_at_once, args=(path, barrier, out)) for _ in range(6)]
        for p in procs:
            p.start()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert results == ["ok"] * 6


def test_a_locked_database_is_tried_again_until_the_timeout_and_other_errors_are_not():
    from rhythm_pipelines.metrics.sqlite import _while_locked

    calls = []

    def locked_twice():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")

    _while_locked(locked_twice, timeout_s=5)
    assert len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _while_locked(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("database is locked")), timeout_s=0.05)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        _while_locked(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table: x")), timeout_s=5)
