"""`rhythm anomalies detect` and `evaluate`, run as real processes on files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd

RHYTHM = [sys.executable, "-m", "rhythm_pipelines.cli", "anomalies"]


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*RHYTHM, *map(str, args)], capture_output=True, text=True, timeout=120)


def series_csv(path, n=2000, spike=1500, **cols):
    rng = np.random.default_rng(1)
    values = rng.normal(10, 1, n)
    values[spike] += 20
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-03-02", periods=n, freq="5min").strftime("%Y-%m-%d %H:%M:%S"),
            "value": values,
        }
    )
    frame.rename(columns=cols).to_csv(path, index=False)
    return frame


def test_detect_writes_one_row_per_input_row_in_order(tmp_path):
    frame = series_csv(tmp_path / "in.csv")
    res = run("detect", tmp_path / "in.csv", "-o", tmp_path / "out.csv", "--method", "iqr")
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["timestamp", "value", "score", "is_anomaly"]
    assert out["timestamp"].tolist() == frame["timestamp"].tolist()
    assert set(out["is_anomaly"]) <= {0, 1} and out["is_anomaly"].iloc[1500] == 1
    assert out["is_anomaly"].sum() == 1


def test_detect_keeps_the_time_zone_marker_of_its_input(tmp_path):
    frame = series_csv(tmp_path / "in.csv")
    zoned = frame.assign(timestamp=pd.to_datetime(frame["timestamp"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    zoned.to_csv(tmp_path / "zoned.csv", index=False)
    res = run("detect", tmp_path / "zoned.csv", "-o", tmp_path / "out.csv", "--method", "iqr")
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["timestamp"].iloc[0] == frame["timestamp"].iloc[0].replace(" ", "T") + "+00:00"


def test_custom_columns_and_duplicates_keep_the_first(tmp_path):
    series_csv(tmp_path / "in.csv", timestamp="when", value="v")
    raw = pd.read_csv(tmp_path / "in.csv")
    dup = pd.concat([raw.iloc[:1500], raw.iloc[1500:1501], raw.iloc[1500:]], ignore_index=True)  # row 1501 repeats
    dup.to_csv(tmp_path / "dup.csv", index=False)
    res = run("detect", tmp_path / "dup.csv", "-o", tmp_path / "out.csv", "--timestamp-col", "when", "--value-col", "v")
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == len(dup) and out["timestamp"].iloc[1500] == out["timestamp"].iloc[1501]
    assert out["is_anomaly"].iloc[1500] == 1 and out["is_anomaly"].iloc[1501] == 0
    assert out["score"].iloc[1501] == out["score"].iloc[1500]


def test_bad_inputs_get_clear_errors(tmp_path):
    series_csv(tmp_path / "ok.csv")
    lines = (tmp_path / "ok.csv").read_text().splitlines()
    cases = {
        "nocol.csv": ("time,value\n2026-03-02,1\n", "nocol.csv, field 'timestamp': missing column"),
        "badts.csv": (
            "\n".join([lines[0], lines[1], "yesterday,3", *lines[3:10]]) + "\n",
            "badts.csv, row 2, field 'timestamp': not a parsable timestamp",
        ),
        "badval.csv": (
            "\n".join([lines[0], lines[1], lines[2].split(",")[0] + ",n/a"]) + "\n",
            "badval.csv, row 2, field 'value': not a finite number",
        ),
        "unsorted.csv": (
            "\n".join([lines[0], lines[2], lines[1], *lines[3:10]]) + "\n",
            "unsorted.csv, row 2, field 'timestamp': timestamps must not go back in time",
        ),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        res = run("detect", tmp_path / name, "-o", tmp_path / "out.csv")
        assert res.returncode == 2 and message in res.stderr, (name, res.stderr)
    res = run("detect", tmp_path / "ok.csv", "-o", tmp_path / "out.csv", "--method", "nope")
    assert res.returncode == 2 and "unknown method 'nope'" in res.stderr


def test_evaluate_on_a_labelled_directory(tmp_path):
    (tmp_path / "data" / "set").mkdir(parents=True)
    frame = series_csv(tmp_path / "data" / "set" / "a.csv")
    windows = {
        "set/a.csv": [[frame["timestamp"][1490], frame["timestamp"][1510]]],
        "set/missing.csv": [[frame["timestamp"][10], frame["timestamp"][20]]],
    }
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    res = run(
        "evaluate",
        "--data-dir",
        tmp_path / "data",
        "--windows",
        tmp_path / "windows.json",
        "--json",
        "--sim-days",
        "0.5",
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert list(report["files"]) == ["set/a.csv"]
    assert report["aggregate"] == {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert report["simulator"]["days"] == 0.5 and report["simulator"]["tp"] + report["simulator"]["fn"] >= 1
    table = run("evaluate", "--data-dir", tmp_path / "data", "--windows", tmp_path / "windows.json", "--sim-days", "0")
    assert "AGGREGATE" in table.stdout and "1.000" in table.stdout
