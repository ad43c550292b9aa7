"""`rhythm cost optimize` as a real process, on a simulated gateway log and on bad ones."""

from __future__ import annotations

import json
import shutil

import pytest

from rhythm_pipelines_tests.test_cli import run


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    done = run("simulate", "-o", str(out), "--hosts", "1", "--days", "3", "--seed", "5",
               "--start", "2026-03-02T00:00:00Z")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out / "calls" / "sim-5.jsonl"


def test_optimize_prints_the_contract_json_and_the_plan_beats_the_observed_allocation(sim_log):
    done = run("cost", "optimize", "--calls", str(sim_log), "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert set(r) >= {"baseline", "plan", "policies", "cost_reduction", "latency_change"}
    assert set(r["policies"]) == {"cheapest", "fastest", "round_robin"}
    for block in (r["baseline"], r["plan"], *r["policies"].values()):
        assert set(block) >= {"cost_usd", "mean_latency_ms", "p95_latency_ms", "error_rate"}
    assert set(r["plan"]["shares"]) == {"reasoning", "chat", "extract"}
    for shares in r["plan"]["shares"].values():
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-4)
    assert "mistral-small@us-east-1" not in r["plan"]["shares"]["reasoning"]  # the catalog forbids it
    assert r["cost_reduction"] >= 0.4 and r["latency_change"] <= 0.05
    assert r["cost_reduction"] == pytest.approx(1 - r["plan"]["cost_usd"] / r["baseline"]["cost_usd"], abs=1e-3)
    assert r["dominated_by"] == []


def test_a_budget_buys_latency_and_an_impossible_one_names_the_cheapest(sim_log):
    cheap = json.loads(run("cost", "optimize", "--calls", str(sim_log), "--json").stdout)
    rich = run("cost", "optimize", "--calls", str(sim_log), "--budget-usd-per-day", "1000", "--json")
    assert rich.returncode == 0, rich.stderr
    assert json.loads(rich.stdout)["expected"]["mean_latency_ms"] <= cheap["expected"]["mean_latency_ms"] + 1e-6
    poor = run("cost", "optimize", "--calls", str(sim_log), "--budget-usd-per-day", "0.5")
    assert poor.returncode == 2
    assert "cannot carry the demand; the cheapest feasible plan costs $" in poor.stderr
    table = run("cost", "optimize", "--calls", str(sim_log), "--latency-slo-ms", "1500")
    assert table.returncode == 0 and "cheapest with p95 <= 1500 ms" in table.stdout and "round_robin" in table.stdout


def test_bad_rows_are_named_and_stop_the_run_unless_skipped(sim_log, tmp_path):
    bad = tmp_path / "calls.jsonl"
    shutil.copy(sim_log, bad)
    lines = bad.read_text().splitlines()
    broken = json.loads(lines[9])
    broken["latency_ms"] = "fast"
    lines[9] = json.dumps(broken)
    bad.write_text("\n".join(lines) + "\n")
    done = run("cost", "optimize", "--calls", str(bad))
    assert done.returncode == 2
    assert f"{bad}, row 10, field 'latency_ms': not a number" in done.stderr
    skipped = run("cost", "optimize", "--calls", str(bad), "--skip-bad-rows", "--json")
    assert skipped.returncode == 0 and "going on without 1 bad row(s)" in skipped.stderr
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[20:70]) + "\n")
    done = run("cost", "optimize", "--calls", str(short))
    assert done.returncode == 2 and "needs more than a day" in done.stderr
    missing = run("cost", "optimize", "--calls", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2 and "no such call log" in missing.stderr
    cat = tmp_path / "cat.yaml"
    cat.write_text("channels:\n  a: {input_per_1k: 1}\n")
    done = run("cost", "optimize", "--calls", str(sim_log), "--catalog", str(cat))
    assert done.returncode == 2 and f"{cat}:2: channels.a.output_per_1k: required" in done.stderr
