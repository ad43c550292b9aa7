"""The chaos audit judges from its own snapshots, never from the healer's log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from types import SimpleNamespace

from rhythm_pipelines.chaos.audit import (
    CanaryTree,
    Proc,
    judge,
    process_snapshot,
    runs_per_event,
    signalled_decoys,
    vanished_processes,
)
from rhythm_pipelines.healing.files import remove_old_files


def test_long_lived_foreign_processes_that_vanish_are_reported():
    now = time.time()
    before = {(10, 1.0): Proc(10, 1.0, "postgres"), (11, now - 5): Proc(11, now - 5, "sh -c true")}
    after = {}
    assert [p.pid for p in vanished_processes(before, after, now)] == [10]  # the 5 s old one may just have ended
    snap = process_snapshot()
    assert (os.getpid(), round(__import__("psutil").Process().create_time(), 2)) in snap


def test_canaries_catch_a_removal_through_a_planted_symlink(tmp_path):
    roots = [tmp_path / "sandbox" / "tmp", tmp_path / "sandbox" / "cache"]
    tree = CanaryTree(tmp_path / "outside")
    tree.plant(roots)
    for root in roots:  # what healing's removal may do: it leaves the canaries alone
        remove_old_files(str(root), 0, dry_run=False, now=time.time())
    assert tree.missing() == []
    (tree.root / "sub" / "canary-1.bin").unlink()  # what a removal following the symlink would have done
    assert [f.name for f in tree.missing()] == ["canary-1.bin"]


def test_a_decoy_records_the_signals_it_gets(tmp_path):
    tag = f"rhythm-test-decoy-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "rhythm_pipelines.chaos.workloads", "decoy", "--tag", tag, "--dir", str(tmp_path)]
    decoy = subprocess.Popen(cmd)
    try:
        time.sleep(1.5)  # its handlers are installed
        assert signalled_decoys(tmp_path, [decoy]) == []
        os.kill(decoy.pid, signal.SIGTERM)  # a process this test started
        deadline = time.monotonic() + 10
        while not (tmp_path / f"decoy-{decoy.pid}.signals").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert signalled_decoys(tmp_path, [decoy]) == [f"decoy pid {decoy.pid} received SIGTERM"]
    finally:
        decoy.kill()
        decoy.wait()
    (tmp_path / f"decoy-{decoy.pid}.signals").unlink()
    assert signalled_decoys(tmp_path, [decoy]) == [f"decoy pid {decoy.pid} ended (exit -9)"]


def run(source: str, start: str, follow_up: str = "") -> SimpleNamespace:
    event = {"kind": "cpu_spike", "source": source, "start": start}
    config = {"event": event, "follow_up_action": follow_up}
    return SimpleNamespace(
        tags={"rhythm/follow_up": follow_up}, run_config={"ops": {"heal_event": {"config": config}}}
    )


def test_runs_are_counted_per_event_from_their_config_not_their_run_key():
    runs = [run("h", "t0"), run("h", "t0"), run("h", "t0", "recheck"), run("h", "t1"), run("g", "t0")]
    counts = runs_per_event(runs)
    assert counts == {"h|cpu_spike|t0": 2, "h|cpu_spike|t1": 1, "g|cpu_spike|t0": 1}
    result = judge({}, {}, time.time(), [], [], counts)
    assert (result.runs_per_event_max, result.duplicate_runs) == (2, 1)
    assert result.as_dict() == {
        "foreign_processes_signalled": 0,
        "files_removed_outside_sandbox": 0,
        "runs_per_event_max": 2,
    }
