import numpy as np
import pandas as pd

from rhythm_pipelines.healing.detectors import DetectorSettings
from rhythm_pipelines.healing.processes import ProcInfo, dagster_role, instance_roles
from rhythm_pipelines.healing.watch import Observation, detect_all

PY = "/work/.venv/bin/python"


def proc(pid, ppid, cmdline):
    return ProcInfo(pid, ppid, "python", cmdline, "svc", "running", 1.0, 100 << 20, 1000.0 + pid)


TREE = [
    proc(1, 0, "/sbin/init"),
    proc(5, 1, "bash"),
    proc(10, 5, f"{PY} /work/.venv/bin/dagster dev -w workspace.yaml"),
    proc(11, 10, f"{PY} -m dagster_webserver -h 127.0.0.1"),
    proc(12, 10, f"{PY} -m dagster._daemon run"),
    proc(13, 12, f"{PY} -m dagster api grpc --lazy-load-user-code --socket /tmp/x"),
    proc(14, 13, f"{PY} -m dagster api execute_run {{}}"),
    proc(15, 14, f"{PY} -m rhythm_pipelines.chaos.workloads burn"),  # something a run started
    proc(20, 1, f"{PY} -m dagster api grpc --port 4000"),  # looks like Dagster, not of this instance
    proc(21, 5, "/usr/bin/python3 my_worker.py"),
]


def test_the_instance_is_the_tree_under_its_topmost_dagster_ancestor_not_every_dagster_name():
    roles = instance_roles(TREE, me=13)
    assert roles == {
        10: "dagster dev",
        11: "webserver",
        12: "daemon",
        13: "code server",
        14: "run worker",
        15: "child of run worker",
    }
    assert dagster_role(TREE[8].cmdline) == "code server" and 20 not in roles  # a name alone is not membership
    assert instance_roles(TREE, me=21) == {}  # outside Dagster: nothing is ours


def test_a_leak_event_on_an_own_process_carries_its_role():
    n, t0 = 360, pd.Timestamp("2026-11-30 10:00", tz="UTC")
    ts = pd.date_range(t0, periods=n, freq="10s")
    rss = lambda pid: pd.DataFrame(  # noqa: E731
        {"ts": ts, "source": f"web-01/proc/{pid}", "metric": "proc_rss_bytes", "value": np.linspace(2e8, 4e8, n)}
    )
    points = pd.concat([rss(13), rss(21)])
    obs = Observation("web-01", ts[-1], points, pd.DataFrame(), pd.DataFrame(), [], (), instance_roles(TREE, 13))
    events = {e.source: e for e in detect_all(obs, DetectorSettings(), (), {}) if e.kind == "memory_leak"}
    assert events["web-01/proc/13"].detail["dagster_role"] == "code server"
    assert "dagster_role" not in events["web-01/proc/21"].detail
