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
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        res = run("detect", tmp_path / name, "-o", tmp_path / "out.csv")
        assert res.returncode == 2 and message in res.stderr, (name, res.stderr)
    res = run("detect", tmp_path / "ok.csv", "-o", tmp_path / "out.csv", "--method", "nope")
    assert res.returncode == 2 and "unknown method 'nope'" in res.stderr


def test_rows_that_step_back_in_time_warn_drop_or_error(tmp_path):
    frame = series_csv(tmp_path / "ok.csv")
    # a replayed hour (12 rows repeat earlier timestamps, with other values) and one late row from before them
    glitch = pd.concat(
        [frame.iloc[:1200], frame.iloc[1188:1200].assign(value=99.0), frame.iloc[1300:1301], frame.iloc[1200:1300],
         frame.iloc[1301:]],
        ignore_index=True,
    )  # fmt: skip
    glitch.to_csv(tmp_path / "glitch.csv", index=False)
    res = run("detect", tmp_path / "glitch.csv", "-o", tmp_path / "warn.csv")
    assert res.returncode == 0, res.stderr
    # the fewest rows out of order: the replay (its last row repeats the hour's last: a repeat, in order) and the
    # one row that jumped ahead, not the 100 rows after it
    assert "12 row(s) out of time order (data rows 1201–1211, 1213; first: row 1201 at" in res.stderr
    assert "11 of them repeat the time of an in-order row, whose value is kept" in res.stderr
    out = pd.read_csv(tmp_path / "warn.csv")
    assert out["timestamp"].tolist() == glitch["timestamp"].tolist()  # every row, in the file's order
    assert (out["is_anomaly"].iloc[1200:1212] == 0).all()  # the repeats are not scored again...
    assert out["score"].iloc[1200:1212].tolist() == out["score"].iloc[1188:1200].tolist()  # ...they share a score
    assert out["is_anomaly"].iloc[1212 + 1 + 100 + 199] == 1  # the spike, at its time, still flagged
    sorted_run = run("detect", tmp_path / "ok.csv", "-o", tmp_path / "sorted.csv")
    assert sorted_run.returncode == 0
    expected = pd.read_csv(tmp_path / "sorted.csv").set_index("timestamp")["score"]
    late = out.iloc[1212]  # the row from 1300 scored in its place in time, as in the sorted file
    assert late["timestamp"] == frame["timestamp"].iloc[1300] and late["score"] == expected[late["timestamp"]]

    res = run("detect", tmp_path / "glitch.csv", "-o", tmp_path / "drop.csv", "--on-disorder", "drop")
    assert res.returncode == 0 and "dropped 12 row(s) out of time order (data rows 1201–1211, 1213)" in res.stderr
    dropped = pd.read_csv(tmp_path / "drop.csv")
    assert len(dropped) == len(glitch) - 12 and dropped["timestamp"].is_monotonic_increasing

    res = run("detect", tmp_path / "glitch.csv", "-o", tmp_path / "err.csv", "--on-disorder", "error")
    assert res.returncode == 2
    assert "glitch.csv, row 1201, field 'timestamp': timestamps must be in time order (row 1201 at" in res.stderr


def test_evaluate_holds_each_category_out(tmp_path):
    windows = {}
    for cat, spikes in (("setA", (1500,)), ("setB", (1600,)), ("setC", (1400,))):
        (tmp_path / "data" / cat).mkdir(parents=True)
        for i, spike in enumerate(spikes):
            frame = series_csv(tmp_path / "data" / cat / f"f{i}.csv", spike=spike)
            windows[f"{cat}/f{i}.csv"] = [[frame["timestamp"][spike - 10], frame["timestamp"][spike + 10]]]
    windows["setA/missing.csv"] = [[frame["timestamp"][10], frame["timestamp"][20]]]
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    args = ["evaluate", "--data-dir", tmp_path / "data", "--windows", tmp_path / "windows.json"]
    res = run(*args, "--json", "--sim-days", "0.5")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    one = {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert report["in_sample"] == {"tp": 3, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert report["held_out"] == report["in_sample"]
    assert report["by_category"] == {c: {"files": 1, **one} for c in ("setA", "setB", "setC")}
    assert list(report["files"]) == ["setA/f0.csv", "setB/f0.csv", "setC/f0.csv"]
    assert report["simulator"]["days"] == 0.5 and report["simulator"]["tp"] + report["simulator"]["fn"] >= 1
    table = run(*args, "--sim-days", "0")
    assert "HELD-OUT (pooled)" in table.stdout and "IN-SAMPLE (chosen on all)" in table.stdout
    assert "setB (1 files)" in table.stdout and "scored 3/3 files" in table.stderr


def test_evaluate_with_one_category_says_nothing_was_held_out(tmp_path):
    (tmp_path / "data" / "only").mkdir(parents=True)
    frame = series_csv(tmp_path / "data" / "only" / "f0.csv", spike=1500)
    windows = {"only/f0.csv": [[frame["timestamp"][1490], frame["timestamp"][1510]]]}
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    args = ["evaluate", "--data-dir", tmp_path / "data", "--windows", tmp_path / "windows.json", "--sim-days", "0"]
    report = json.loads(run(*args, "--json").stdout)
    assert report["held_out"] is None and report["by_category"] == {}
    assert report["in_sample"]["tp"] == 1 and report["in_sample"]["fn"] == 0
    assert "one category (only)" in report["note"]
    assert report["files"] == {"only/f0.csv": {"tp": 1, "fp": report["in_sample"]["fp"], "fn": 0}}
    table = run(*args)
    assert table.returncode == 0, table.stderr
    assert "IN-SAMPLE (chosen on all)" in table.stdout and "HELD-OUT" not in table.stdout
