"""Local evidence: an event that names this host must hold on this machine before a local action."""

from __future__ import annotations

import socket

import pandas as pd
import psutil

from rhythm_pipelines.healing.detectors import DetectorSettings
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.evidence import LocalEvidence

HOST = socket.gethostname()
NOW = pd.Timestamp.now(tz="UTC")


def evidence(cpu: float = 0.0, mem: float = 0.0, **settings) -> LocalEvidence:
    return LocalEvidence(DetectorSettings(**settings), HOST, cpu_percent=lambda: cpu, mem_percent=lambda: mem)


def test_a_host_event_asserted_by_a_writer_is_not_confirmed_by_calm_readings():
    spike = HealthEvent("cpu_spike", HOST, NOW, "cpu_percent", 97.0)  # what an agent claiming our name wrote
    ok, why = evidence(cpu=4.0)(spike)
    assert not ok and "cpu_percent here 4.0 (not over 80)" in why
    assert evidence(cpu=96.0)(spike)[0]
    leak = HealthEvent("memory_leak", HOST, NOW, "mem_percent", 88.0, {"rise": 10.0})
    assert not evidence(mem=40.0)(leak)[0] and evidence(mem=86.0)(leak)[0]
    tiny = HealthEvent("memory_leak", HOST, NOW, "mem_percent", 1.0, {"rise": 1.0})  # a deflated claim
    assert not evidence(mem=40.0)(tiny)[0]
    assert "not this host" in evidence(cpu=99.0)(HealthEvent("cpu_spike", "elsewhere-01", NOW))[1]
    anomaly = HealthEvent("anomaly", HOST, NOW, "cpu_percent", 9.0)
    assert "known only from the store" in evidence(cpu=99.0)(anomaly)[1]


def test_a_process_event_needs_the_live_process_it_saw(spawn):
    p, _ = spawn("idle")
    me = psutil.Process(p.pid)
    now = pd.Timestamp.now(tz="UTC")  # after the process started
    hung = HealthEvent(
        "process_hung", f"{HOST}/proc/{p.pid}", now, detail={"pid": p.pid, "create_time": me.create_time()}
    )
    assert evidence()(hung)[0]
    reused = HealthEvent("process_hung", f"{HOST}/proc/{p.pid}", now, detail={"pid": p.pid, "create_time": 12.0})
    assert "reused pid" in evidence()(reused)[1]
    before = HealthEvent("memory_leak", f"{HOST}/proc/{p.pid}", pd.Timestamp("2020-01-01", tz="UTC"), value=1e6)
    assert "started after the event began" in evidence()(before)[1]
    claimed = HealthEvent("memory_leak", f"{HOST}/proc/{p.pid}", now, "proc_rss_bytes", 10e9)
    ok, why = evidence()(claimed)
    assert not ok and "not the 10000 MB the event reports" in why
    real = HealthEvent("memory_leak", f"{HOST}/proc/{p.pid}", now, "proc_rss_bytes", float(me.memory_info().rss))
    assert evidence()(real)[0]
    small = HealthEvent("memory_leak", f"{HOST}/proc/{p.pid}", now, "proc_rss_bytes", 1000.0)  # deflated
    assert "not the 0 MB the event reports" in evidence()(small)[1]


def test_disk_pressure_is_measured_here(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 5000)
    ev = HealthEvent("disk_pressure", f"{HOST}:{tmp_path}", NOW, detail={"root": str(tmp_path)})
    assert "not a configured temp root" in evidence(temp_max_bytes=1000)(ev)[1]
    configured = LocalEvidence(DetectorSettings(temp_max_bytes=1000), HOST, temp_roots=(str(tmp_path),))
    assert configured(ev)[0]
    calm = LocalEvidence(DetectorSettings(temp_max_bytes=10**9, disk_percent=100.0), HOST, temp_roots=(str(tmp_path),))
    assert not calm(ev)[0]
