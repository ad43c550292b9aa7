"""`rhythm chaos run` end to end: a real Dagster daemon in a sandbox heals a hung worker and a failing HTTP
channel, restarts half-way, touches nothing it may not, and launches one run per event."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RHYTHM = Path(sys.executable).parent / "rhythm"


@pytest.mark.timeout(600)
def test_chaos_run_json_contract_and_the_healing_loop():
    out = subprocess.run(
        [str(RHYTHM), "chaos", "run", "--scenarios", "hung_process,circuit_breaker", "--json"],
        capture_output=True,
        text=True,
        timeout=540,
        check=True,
    )
    report = json.loads(out.stdout)
    assert {"scenarios", "detection_rate", "auto_resolution_rate", "mttr_s", "unsafe_actions", "duplicate_runs"} <= set(
        report
    )
    by_name = {s["name"]: s for s in report["scenarios"]}
    assert list(by_name) == ["hung_process", "circuit_breaker"]
    for s in by_name.values():
        assert {"name", "detected", "resolved", "detect_s", "resolve_s", "actions"} <= set(s)
        assert s["detected"] and s["resolved"], (s, out.stderr[-3000:])
        assert s["resolve_s"] > 0  # how fast is the chaos report's figure, not a test bound on a loaded machine
    assert any(a.startswith("terminate_process ") for a in by_name["hung_process"]["actions"])
    assert by_name["circuit_breaker"]["actions"] == ["reroute_channel chaos-a@local"]
    assert report["detection_rate"] == report["auto_resolution_rate"] == 1.0
    assert report["unsafe_actions"] == 0 and report["duplicate_runs"] == 0, report["findings"]
    # the independent audit: snapshots, a decoy and canaries, never the healer's log
    assert report["audit"] == {
        "foreign_processes_signalled": 0,
        "files_removed_outside_sandbox": 0,
        "runs_per_event_max": 1,
    }, report["findings"]
    assert "restarting the Dagster daemon" in out.stderr  # the second scenario ran after a daemon restart
