"""Operator labels: bad files name the file, line and field; good ones are read. The split evaluation: the CLI
contract on a fresh simulation and on a directory written by another generator, and clear errors on bad data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.cli import main
from rhythm_pipelines.learning import labels
from rhythm_pipelines.learning.incidents import IncidentFileError


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("patterns:\n  nothex12:\n    label: x\n", 2, "not a pattern id"),
        ("patterns:\n  0a1b2c3d:\n    label: x\n    prevent: maybe\n", 4, "expected true or false"),
        ("patterns:\n  0a1b2c3d:\n    name: x\n", 3, "unknown key"),
        ("patterns:\n  0a1b2c3d:\n    label: [a, b]\n", 3, "expected text"),
        ("version: 2\n", 1, "unsupported version"),
        ("patterns:\n  0a1b2c3d: {label: x\n", 3, "not valid YAML"),
    ],
)
def test_a_bad_labels_file_names_its_file_line_and_field(tmp_path, text, line, says):
    f = tmp_path / "pattern_labels.yaml"
    f.write_text(text)
    with pytest.raises(labels.LabelError) as err:
        labels.load(f)
    assert str(err.value).startswith(f"{f}:{line}:") and says in str(err.value), str(err.value)


def test_labels_are_read_and_a_missing_file_means_none(tmp_path):
    f = tmp_path / "l.yaml"
    f.write_text("version: 1\npatterns:\n  0a1b2c3d:\n    label: nightly batch\n  0a1b2c3d#2:\n    prevent: false\n")
    got = labels.load(f)
    assert got["0a1b2c3d"] == labels.Label("nightly batch", True) and got["0a1b2c3d#2"].prevent is False
    assert labels.load(tmp_path / "absent.yaml") == {}


def test_evaluate_on_a_fresh_simulation_prints_the_contract(capsys):
    assert main(["learn", "evaluate", "--seed", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"recurrence_prevention", "unneeded_actions", "root_cause_top1", "patterns"} <= set(out)
    assert out["patterns"] >= 3 and out["recurrence_prevention"] >= 0.6 and out["unneeded_actions"] <= 0.2
    assert out["root_cause_top1"] >= out["detail"]["root_cause_top1_baseline"]
    assert out["detail"]["engine_outcomes"].get("dry_run", 0) == out["detail"]["preventions"]


def other_generator(root, days=10, seed=3):
    """Another generator's fleet in the simulator's layout: node-a runs a nightly export at 02:00 (± 5 min) whose
    staging load rises for 20 min first, then saturates it; node-b's load is noise with one-off spikes."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2026-03-02", periods=days * 1440, freq="min", tz="UTC")
    a = 30 + rng.normal(0, 2, len(idx))
    b = 40 + rng.normal(0, 3, len(idx))
    rows = []
    for d in range(days):
        at = 2 * 60 + int(rng.integers(-5, 6)) + d * 1440
        a[at - 20 : at] += np.linspace(0, 25, 20)
        a[at : at + 30] = 95 + rng.normal(0, 1, 30)
        rows.append((idx[at], idx[at + 29], "node-a", "load_pct", "export_overload", "node-a"))
    for at in rng.integers(1440, len(idx) - 60, 4):
        b[at : at + 15] = 97
        rows.append((idx[at], idx[at + 14], "node-b", "load_pct", "spike", "node-b"))
    (root / "metrics").mkdir(parents=True)
    (root / "incidents").mkdir()
    ts = idx.strftime("%Y-%m-%dT%H:%M:%SZ")
    frames = [
        pd.DataFrame({"ts": ts, "source": s, "metric": "load_pct", "value": v})
        for s, v in (("node-a", a), ("node-b", b))
    ]
    pd.concat(frames).to_csv(root / "metrics" / "fleet.csv", index=False)
    pd.DataFrame(rows, columns=["start", "end", "source", "metric", "kind", "root"]).to_csv(
        root / "incidents" / "labels.csv", index=False
    )


def test_evaluate_reads_another_generators_directory(tmp_path, capsys):
    other_generator(tmp_path)
    assert main(["learn", "evaluate", "--data", str(tmp_path), "--train-days", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (rule,) = [p for p in out["detail"]["precursors"] if p["root"] == "node-a"]
    assert rule["kind"] == "cpu_spike"  # an unknown kind, read by its metric (load)
    assert out["recurrence_prevention"] >= 0.8 and out["unneeded_actions"] <= 0.05, out
    assert out["root_cause_top1"] == 1.0


def test_bad_data_is_refused_naming_the_file_and_row(tmp_path, capsys):
    other_generator(tmp_path)
    f = tmp_path / "incidents" / "labels.csv"
    lines = f.read_text().splitlines()
    lines[3] = lines[3].replace("2026-03-0", "March ", 1).replace("Z", "Zz", 1)
    f.write_text("\n".join(lines) + "\n")
    assert main(["learn", "evaluate", "--data", str(tmp_path), "--json"]) == 2
    err = capsys.readouterr().err
    assert f"{f}: line 4: start/end: not an ISO 8601 timestamp" in err, err
    m = tmp_path / "metrics" / "fleet.csv"
    rows = m.read_text().splitlines()
    rows[7] = rows[7].rsplit(",", 1)[0] + ",abc"
    m.write_text("\n".join(rows) + "\n")
    f.write_text("\n".join(lines[:3] + lines[4:]) + "\n")  # the bad label gone: the bad value is next
    assert main(["learn", "evaluate", "--data", str(tmp_path)]) == 2
    assert f"{m}: line 8: value: 'abc' is not a number" in capsys.readouterr().err
    assert main(["learn", "evaluate", "--data", str(tmp_path / "nowhere")]) == 2
    assert "metrics: no *.csv files" in capsys.readouterr().err


def test_a_labels_file_without_its_columns_is_refused():
    from rhythm_pipelines.learning.incidents import from_labels
    from rhythm_pipelines.learning.signals import Signals

    with pytest.raises(IncidentFileError, match=r"x\.csv: missing column\(s\) root"):
        from_labels(pd.DataFrame(columns=["start", "end", "source", "metric", "kind"]), Signals(pd.DataFrame()),
                    "x.csv")  # fmt: skip
