"""The psutil sampler on this real machine, with real child processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from rhythm_pipelines.metrics.host import HOST_METRICS, HostSampler, points_frame


def values(points, source, metric):
    return [v for _, s, m, v, _ in points if s == source and m == metric]


def test_first_and_second_sample():
    sampler = HostSampler(host="me")
    first = sampler.sample()
    metrics = {m for _, s, m, _, _ in first if s == "me"}
    assert {
        "cpu_percent",
        "mem_percent",
        "swap_percent",
        "disk_percent",
        "load1",
        "process_count",
        "zombie_count",
    } <= metrics
    json.dumps(sampler.state)  # the state fits in a sensor cursor
    time.sleep(0.3)
    second = sampler.sample()
    metrics = {m for _, s, m, _, _ in second if s == "me"}
    assert set(HOST_METRICS) <= metrics  # rates need two samples
    assert 0 <= values(second, "me", "cpu_percent")[0] <= 100
    frame = points_frame(second)
    assert len(frame) == len(second)


def test_busy_process_is_reported_in_the_top_by_cpu():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        sampler = HostSampler(host="me", top_n=200)
        sampler.sample()
        time.sleep(1.0)
        points = sampler.sample()
        cpu = values(points, f"me/proc/{busy.pid}", "proc_cpu_percent")
        idle_cpu = values(points, f"me/proc/{idle.pid}", "proc_cpu_percent") or [0.0]
        assert cpu and cpu[0] > idle_cpu[0]  # relative: a loaded machine may give the spinner little CPU
        tags = next(t for _, s, m, _, t in points if s == f"me/proc/{busy.pid}")
        assert tags["pid"] == busy.pid and tags["name"].startswith("python")
    finally:
        for p in (busy, idle):
            p.kill()
            p.wait()


def zombie_count() -> float:
    return values(HostSampler(host="me", top_n=0).sample(), "me", "zombie_count")[0]


def test_zombie_is_counted():
    # other processes on the machine may make or reap zombies meanwhile: compare with/without ours, up to 3 times
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        deadline = time.time() + 10
        while time.time() < deadline:  # exited but not reaped: a zombie until we wait() on it
            with open(f"/proc/{child.pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    break
            time.sleep(0.05)
        with_ours = zombie_count()
        child.wait()
        without = zombie_count()
        if with_ours - without >= 1:
            return
    raise AssertionError(f"our zombie was not counted: {with_ours} with it, {without} after reaping it")
