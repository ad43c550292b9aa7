"""Host metrics sampled with psutil.

:class:`HostSampler` turns one look at the machine into long-format points. Rates (CPU %, disk and
network bytes/s, per-process CPU %) come from the difference of cumulative counters between two
samples; the counters are kept in a small JSON-able ``state`` so a sensor can carry them in its cursor
between ticks and an agent in memory. Only psutil is imported: this runs in sensor ticks.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

HOST_METRICS = (
    "cpu_percent",
    "mem_percent",
    "mem_used_bytes",
    "swap_percent",
    "disk_percent",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
    "load1",
    "load5",
    "load15",
    "net_recv_bytes_per_s",
    "net_sent_bytes_per_s",
    "process_count",
    "zombie_count",
)
PROCESS_METRICS = ("proc_cpu_percent", "proc_rss_bytes", "proc_cpu_seconds")

Point = tuple[float, str, str, float, dict[str, Any] | None]  # (epoch s, source, metric, value, tags)


def process_source(host: str, pid: int) -> str:
    return f"{host}/proc/{pid}"


@dataclass
class HostSampler:
    """Samples this host; ``top_n`` processes by CPU and by memory are reported too."""

    host: str = field(default_factory=socket.gethostname)
    disk_path: str = "/"
    top_n: int = 5
    state: dict[str, Any] = field(default_factory=dict)

    def sample(self, now: float | None = None) -> list[Point]:
        now = round(time.time() if now is None else now, 3)  # ms: what the store and the spool keep
        prev = self.state
        dt = now - prev["ts"] if prev.get("ts") is not None and now > prev["ts"] else None
        h = self.host
        points: list[Point] = []

        def add(metric: str, value: float | None, source: str = h, tags: dict | None = None) -> None:
            if value is not None:
                points.append((now, source, metric, float(value), tags))

        cpu = psutil.cpu_times()
        idle = cpu.idle + getattr(cpu, "iowait", 0.0)
        total = sum(cpu) - getattr(cpu, "guest", 0.0) - getattr(cpu, "guest_nice", 0.0)  # Linux counts guest twice
        if dt and prev.get("cpu"):
            d_total = total - prev["cpu"][1]
            busy = 100.0 * (d_total - (idle - prev["cpu"][0])) / d_total if d_total > 0 else 0.0
            add("cpu_percent", min(100.0, max(0.0, busy)))  # float rounding can leave -7e-12 on an idle machine
        else:
            add("cpu_percent", psutil.cpu_percent(interval=0.1))
        mem = psutil.virtual_memory()
        add("mem_percent", mem.percent)
        add("mem_used_bytes", mem.total - mem.available)
        add("swap_percent", psutil.swap_memory().percent)
        with contextlib.suppress(OSError):  # the disk may be gone
            add("disk_percent", psutil.disk_usage(self.disk_path).percent)
        disk = psutil.disk_io_counters()
        net = psutil.net_io_counters()
        if dt:
            if disk is not None and prev.get("disk"):
                add("disk_read_bytes_per_s", max(0.0, (disk.read_bytes - prev["disk"][0]) / dt))
                add("disk_write_bytes_per_s", max(0.0, (disk.write_bytes - prev["disk"][1]) / dt))
            if net is not None and prev.get("net"):
                add("net_recv_bytes_per_s", max(0.0, (net.bytes_recv - prev["net"][0]) / dt))
                add("net_sent_bytes_per_s", max(0.0, (net.bytes_sent - prev["net"][1]) / dt))
        load = psutil.getloadavg()
        add("load1", load[0])
        add("load5", load[1])
        add("load15", load[2])

        procs, zombies, prev_procs = [], 0, prev.get("procs", {})
        for p in psutil.process_iter(["pid", "name", "username", "status", "cpu_times", "memory_info", "create_time"]):
            info = p.info
            if info["status"] == psutil.STATUS_ZOMBIE:
                zombies += 1
                continue
            if info["cpu_times"] is None or info["memory_info"] is None:
                continue
            cpu_s = info["cpu_times"].user + info["cpu_times"].system
            before = prev_procs.get(str(info["pid"]))
            cpu_pct = None
            if dt and before and before[0] == info["create_time"]:
                cpu_pct = max(0.0, 100.0 * (cpu_s - before[1]) / dt)
            procs.append(
                (
                    info["pid"],
                    info["name"],
                    info["username"],
                    info["create_time"],
                    cpu_s,
                    cpu_pct,
                    info["memory_info"].rss,
                )
            )
        add("process_count", len(procs) + zombies)
        add("zombie_count", zombies)

        by_cpu = sorted((p for p in procs if p[5] is not None), key=lambda p: -p[5])[: self.top_n]
        by_mem = sorted(procs, key=lambda p: -p[6])[: self.top_n]
        seen = set()
        for pid, name, user, _, cpu_s, cpu_pct, rss in by_cpu + by_mem:
            if pid in seen:
                continue
            seen.add(pid)
            src, tags = process_source(h, pid), {"host": h, "name": name, "pid": pid, "user": user}
            add("proc_cpu_percent", cpu_pct, src, tags)
            add("proc_rss_bytes", rss, src, tags)
            add("proc_cpu_seconds", cpu_s, src, tags)

        self.state = {
            "ts": now,
            "cpu": [idle, total],
            "disk": [disk.read_bytes, disk.write_bytes] if disk is not None else None,
            "net": [net.bytes_recv, net.bytes_sent] if net is not None else None,
            "procs": {str(p[0]): [p[3], p[4]] for p in procs},
        }
        return points


def split_state(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the small counters, the per-process ones): a sensor keeps the first in its cursor, the second (one entry
    per process on the machine) in a file, so the cursor stays readable on its page."""
    small = {k: v for k, v in state.items() if k != "procs"}
    return small, state.get("procs", {})


def load_procs(path: str | os.PathLike, ts: float | None) -> dict[str, Any]:
    """Per-process counters saved by :func:`save_procs` at the sample of time ``ts`` (the cursor's): counters of
    another sample (a tick that failed after saving them) or a missing file give none, which costs one tick
    without per-process CPU."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    ok = isinstance(data, dict) and ts is not None and data.get("ts") == ts and isinstance(data.get("procs"), dict)
    return data["procs"] if ok else {}


def save_procs(path: str | os.PathLike, procs: dict[str, Any], ts: float) -> None:
    """Write the per-process counters of the sample at ``ts`` whole (a temporary file renamed over the old)."""
    directory = os.path.dirname(os.fspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".procs-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"ts": ts, "procs": procs}, f, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def points_frame(points: list[Point]):  # -> pd.DataFrame (pandas imported lazily)
    """Sampler points as a validated long-format frame."""
    import pandas as pd

    from rhythm_pipelines.metrics.schema import validate_metrics

    frame = pd.DataFrame(points, columns=["ts", "source", "metric", "value", "tags"])
    frame["ts"] = pd.to_datetime((frame["ts"] * 1000).round().astype("int64"), unit="ms", utc=True)
    return validate_metrics(frame, origin="<host sampler>")
