"""Gateway logs and landing files: typed calls, quarantined rows with reasons, stable ids."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from rhythm_pipelines.metrics.calls import channel_minute_metrics, read_call_log
from rhythm_pipelines.metrics.landing import data_files, read_metric_file
from rhythm_pipelines.metrics.schema import ValidationError
from rhythm_pipelines_tests.conftest import FIXTURES, T0

H1 = T0 + pd.Timedelta("1h")


def test_jsonl_log_good_and_bad_rows():
    calls, bad = read_call_log(FIXTURES / "calls_mixed.jsonl")
    assert len(calls) == 4
    assert calls["status"].tolist() == ["ok", "timeout", "error", "ok"]
    assert calls["call_id"].iloc[-1] == "req-1"
    got = sorted((e.row, e.field, e.reason) for e in bad)
    assert got == [
        (3, "latency_ms", "not a number"),
        (4, "<line>", got[1][2]),
        (6, "channel", "empty"),
        (7, "status", "must be one of ok, error, timeout"),
        (8, "latency_ms", "negative"),
        (9, "timestamp", "not a parsable timestamp"),
    ]
    assert got[1][2].startswith("invalid JSON")
    assert all(e.origin.endswith("calls_mixed.jsonl") for e in bad)


def test_window_keeps_calls_and_rejects_of_that_window_only():
    calls, bad = read_call_log(FIXTURES / "calls_mixed.jsonl", T0, H1)
    assert len(calls) == 3
    # the unparsable JSON line and the unparsable timestamp belong to no hour: reported in every window
    assert sorted(e.row for e in bad) == [3, 4, 6, 7, 8, 9]
    later, bad_later = read_call_log(FIXTURES / "calls_mixed.jsonl", H1, H1 + pd.Timedelta("1h"))
    assert later["call_id"].tolist() == ["req-1"] and sorted(e.row for e in bad_later) == [4, 9]


def test_csv_log_status_case_and_whole_numbers():
    calls, bad = read_call_log(FIXTURES / "calls_mixed.csv")
    assert len(calls) == 2 and calls["cost_usd"].isna().tolist() == [False, True]
    assert sorted((e.row, e.field) for e in bad) == [(3, "tokens_out"), (4, "region")]


def test_call_ids_are_stable_and_distinguish_identical_calls(tmp_path):
    line = (FIXTURES / "calls_mixed.jsonl").read_text().splitlines()[0]
    log = tmp_path / "dup.jsonl"
    log.write_text(line + "\n" + line + "\n")
    first, _ = read_call_log(log)
    again, _ = read_call_log(log)
    assert first["call_id"].nunique() == 2 and first["call_id"].tolist() == again["call_id"].tolist()


def test_missing_required_column_fails_the_file(tmp_path):
    log = tmp_path / "x.csv"
    log.write_text("timestamp,channel,latency_ms,status\n2026-03-02,gpt,1,ok\n")
    with pytest.raises(ValidationError, match=r"x.csv, field 'region': missing required column"):
        read_call_log(log)


def test_channel_minute_metrics():
    calls, _ = read_call_log(FIXTURES / "calls_mixed.jsonl")
    m = channel_minute_metrics(calls).set_index(["source", "metric", "ts"])["value"]
    gpt = ("gpt-4o@us-east-1",)
    assert m[gpt + ("calls", T0)] == 2 and m[gpt + ("timeouts", T0)] == 1
    assert m[gpt + ("error_rate", T0)] == 0.5 and m[gpt + ("latency_ms_max", T0)] == 30000
    assert m[gpt + ("cost_usd", T0)] == pytest.approx(0.0037)


def test_metric_file_rows_in_window(tmp_path):
    good, bad = read_metric_file(FIXTURES / "metrics_mixed.csv", T0, H1)
    assert good["value"].tolist() == [12.5, 13.0, 14.5]
    assert good["tags"].tolist() == [None, '{"core":"all"}', None]
    assert sorted((e.row, e.field) for e in bad) == [(3, "value"), (4, "source")]


def test_hour_named_spool_files_are_read_only_for_their_hour(tmp_path):
    spool = tmp_path / "metrics" / "host" / "h" / "2026-03-02"
    spool.mkdir(parents=True)
    (spool / "00.jsonl").write_text("")
    (spool / "01.jsonl").write_text("")
    shutil.copy(FIXTURES / "metrics_mixed.csv", tmp_path / "metrics" / "other.csv")
    names = [p.name for p in data_files(tmp_path / "metrics", T0, H1)]
    assert names == ["00.jsonl", "other.csv"]


def test_closed_hours():
    from rhythm_pipelines.metrics.landing import closed_hours

    now = T0 + pd.Timedelta("3h5min")
    assert closed_hours(None, now) == []
    assert closed_hours((T0 + pd.Timedelta("3h1min")).timestamp(), now) == []
    assert closed_hours((T0 + pd.Timedelta("2h59min")).timestamp(), now) == [T0 + pd.Timedelta("2h")]
    assert closed_hours((T0 + pd.Timedelta("10min")).timestamp(), now) == [T0 + pd.Timedelta(hours=h) for h in range(3)]
    assert closed_hours((T0 - pd.Timedelta(days=5)).timestamp(), now, limit=2) == [H1, H1 + pd.Timedelta("1h")]


def test_csv_rows_with_the_wrong_number_of_fields_are_rejected_one_by_one(tmp_path):
    f = tmp_path / "odd.csv"
    f.write_text(
        "ts,source,metric,value\n"
        "2026-03-02T00:00:00Z,h,cpu_percent,1,EXTRA\n"  # row 1: one field too many
        "2026-03-02T00:01:00Z,h,cpu_percent,2\n"
        "\n"  # a blank line: skipped, but counted so row numbers match the file
        "2026-03-02T00:02:00Z,h,cpu_percent\n"  # row 4: one field short
        "2026-03-02T00:03:00Z,h,cpu_percent,n/a\n"  # row 5: bad value
    )
    good, bad = read_metric_file(f, T0, H1)
    assert good["value"].tolist() == [2.0]
    assert sorted((e.row, e.field) for e in bad) == [(1, "<row>"), (4, "<row>"), (5, "value")]
    assert "expected 4 fields (ts, source, metric, value), got 5" in next(e.reason for e in bad if e.row == 1)


def test_jsonl_timestamps_may_mix_epoch_seconds_and_strings(tmp_path):
    f = tmp_path / "mixed.jsonl"
    epoch = int((T0 + pd.Timedelta("5min")).timestamp())
    f.write_text(
        '{"ts": "2026-03-02T00:01:00Z", "source": "h", "metric": "m", "value": 1}\n'
        f'{{"ts": {epoch}, "source": "h", "metric": "m", "value": 2}}\n'
        f'{{"ts": {epoch + 0.5}, "source": "h", "metric": "m", "value": 3}}\n'
    )
    good, bad = read_metric_file(f, T0, H1)
    assert not bad
    assert good["ts"].tolist() == [T0 + pd.Timedelta("1min"), T0 + pd.Timedelta("5min"), T0 + pd.Timedelta("5min500ms")]


def test_rows_outside_the_hour_a_file_is_named_for_are_quarantined_not_lost(tmp_path):
    spool = tmp_path / "metrics" / "host" / "h" / "2026-03-02"
    spool.mkdir(parents=True)
    (spool / "00.jsonl").write_text(
        '{"ts": "2026-03-02T00:10:00Z", "source": "h", "metric": "m", "value": 1}\n'
        '{"ts": "2026-03-02T03:10:00Z", "source": "h", "metric": "m", "value": 2}\n'
    )
    good, bad = read_metric_file(spool / "00.jsonl", T0, H1)
    assert good["value"].tolist() == [1.0]
    assert [(e.row, e.field) for e in bad] == [(2, "ts")] and "outside the hour" in bad[0].reason
    assert bad[0].ts == T0  # counted in the file's own hour


def test_token_counts_not_logged_stay_unknown(tmp_path):
    log = tmp_path / "api.csv"
    log.write_text("timestamp,channel,region,latency_ms,status\n2026-03-02T00:00:01Z,search,eu,40,ok\n")
    calls, bad = read_call_log(log)
    assert not bad and calls["tokens_in"].isna().all() and calls["tokens_out"].isna().all()
    metrics = channel_minute_metrics(calls)
    assert "tokens_in" not in set(metrics["metric"]) and "calls" in set(metrics["metric"])


def test_a_line_still_being_appended_is_left_for_later_but_an_old_broken_one_is_quarantined(tmp_path):
    import os

    f = tmp_path / "live.jsonl"
    f.write_text('{"ts": "2026-03-02T00:01:00Z", "source": "h", "metric": "m", "value": 1}\n{"ts": "2026-03-02T0')
    good, bad = read_metric_file(f, T0, H1)
    assert good["value"].tolist() == [1.0] and bad == []
    old = f.stat().st_mtime - 3600
    os.utime(f, (old, old))  # an hour later nobody is writing it: the broken tail is a real bad row
    good, bad = read_metric_file(f, T0, H1)
    assert [(e.row, e.field) for e in bad] == [(2, "<line>")]
