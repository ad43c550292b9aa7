"""Event detectors: pure functions from recent metrics, calls, runs or processes to :class:`HealthEvent`s.

Each reports what holds at ``now``; :class:`~rhythm_pipelines.healing.tracker.EpisodeTracker` turns
repeated detections into one event. Thresholds live in :class:`DetectorSettings` (the playbook file's
``detectors:`` section; the chaos profile shortens the windows).
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.trend import mann_kendall
from rhythm_pipelines.healing.breaker import OPEN, BreakerConfig, replay
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.processes import ProcInfo
from rhythm_pipelines.healing.safety import ProcessRule


@dataclass(frozen=True)
class DetectorSettings:
    cpu_percent: float = 80.0  # cpu_spike: above this...
    cpu_sustain_s: float = 300.0  # ...for this long
    stale_s: float = 60.0  # a series whose last point is older than this says nothing about now
    leak_window_s: float = 3600.0  # memory_leak: Mann–Kendall over this window...
    leak_min_points: int = 12
    leak_p_value: float = 1e-4  # ...rising with this significance...
    leak_min_mem_pct_per_h: float = 2.0  # ...and at least this fast (host memory, points of % per hour)
    leak_min_rss_frac_per_h: float = 0.2  # (process RSS, fraction of its median per hour)...
    leak_tail_frac: float = 0.25  # ...still rising over the window's last quarter, at least...
    leak_tail_min_ratio: float = 0.5  # ...this share of the whole window's slope (warm-up levels off: no leak)...
    leak_horizon_s: float = 21600.0  # ...and, at that rate, within this long: host memory above...
    leak_full_mem_pct: float = 90.0  # ...this, or a process holding at least...
    leak_min_share: float = 0.10  # ...this share of its host's memory
    latency_p95_ms: float = 500.0  # high_latency: p95 over the window above this floor...
    latency_window_s: float = 300.0
    latency_min_calls: int = 5
    latency_factor: float = 2.0  # ...and above this multiple of the channel's own p95 over...
    latency_baseline_s: float = 3600.0  # ...this long before the window...
    latency_min_slow: int = 2  # ...with at least this many calls over the bar (one timeout is not a trend)
    failure_window_s: float = 900.0  # task_failure_pattern: this many failures of one job in the window
    failure_min_count: int = 3
    hung_after_s: float = 30.0  # process_hung: heartbeat or CPU time still for this long
    zombie_persist_s: float = 20.0  # process_zombie: zombies seen this long (a child just exiting is not one)
    cascade_window_s: float = 600.0  # cascade_failure: this many failures under one failing upstream
    cascade_min_failures: int = 3
    anomaly_window_s: float = 3600.0  # anomaly: alert events of these severities that started lately
    anomaly_severities: tuple[str, ...] = ("major", "critical")
    disk_percent: float = 90.0  # disk_pressure: the disk holding a temp root fuller than this...
    temp_max_bytes: int = 1 << 30  # ...or a temp root holding more than this
    breaker_window: int = 20
    breaker_min_calls: int = 10
    breaker_failure_rate: float = 0.5
    breaker_slow_call_ms: float = 5000.0
    breaker_slow_rate: float = 0.8
    breaker_open_s: float = 30.0
    breaker_probe_calls: int = 3
    breaker_history_s: float = 1800.0  # calls replayed through the breaker

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], where: str = "detectors") -> DetectorSettings:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
        out = {}
        for k, v in values.items():
            default = getattr(cls, k)
            if isinstance(default, tuple):
                if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
                    raise ValueError(f"{where}.{k}: expected a list of strings, got {v!r}")
                out[k] = tuple(v)
            elif isinstance(default, int) and not isinstance(default, bool):
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ValueError(f"{where}.{k}: expected a non-negative integer, got {v!r}")
                out[k] = v
            else:
                if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                    raise ValueError(f"{where}.{k}: expected a non-negative number, got {v!r}")
                out[k] = float(v)
        return cls(**out)

    def with_overrides(self, **kw) -> DetectorSettings:
        return replace(self, **kw)

    @property
    def breaker(self) -> BreakerConfig:
        return BreakerConfig(
            window=self.breaker_window,
            min_calls=self.breaker_min_calls,
            failure_rate=self.breaker_failure_rate,
            slow_call_ms=self.breaker_slow_call_ms,
            slow_rate=self.breaker_slow_rate,
            open_s=self.breaker_open_s,
            probe_calls=self.breaker_probe_calls,
        )


def _series(points: pd.DataFrame, metric: str) -> Iterable[tuple[str, pd.DataFrame]]:
    sel = points[points["metric"] == metric]
    for source, g in sel.groupby("source", sort=True):
        yield source, g.sort_values("ts")


def cpu_spike(points: pd.DataFrame, now: pd.Timestamp, s: DetectorSettings) -> list[HealthEvent]:
    """Host CPU above ``cpu_percent`` for at least ``cpu_sustain_s``: the event starts where that run began
    (read at least twice the sustain window, so the run's start is inside what you pass)."""
    out = []
    for source, g in _series(points, "cpu_percent"):
        if "/proc/" in source:
            continue
        ts, v = pd.DatetimeIndex(g["ts"]), g["value"].to_numpy(dtype="float64")
        if now - ts[-1] > pd.Timedelta(seconds=s.stale_s) or v[-1] <= s.cpu_percent:
            continue
        below = np.flatnonzero(v <= s.cpu_percent)
        first = below[-1] + 1 if len(below) else 0
        if ts[-1] - ts[first] >= pd.Timedelta(seconds=s.cpu_sustain_s):
            out.append(
                HealthEvent(
                    "cpu_spike",
                    source,
                    ts[first],
                    "cpu_percent",
                    float(v[first:].mean()),
                    {"peak": float(v[first:].max()), "sustained_s": (ts[-1] - ts[first]).total_seconds()},
                )
            )
    return out


def host_memory_bytes(points: pd.DataFrame) -> dict[str, float]:
    """Each host's total memory, from its own points (``mem_used_bytes`` × 100 / ``mem_percent``)."""
    used = points[points["metric"] == "mem_used_bytes"].set_index(["source", "ts"])["value"]
    pct = points[points["metric"] == "mem_percent"].set_index(["source", "ts"])["value"]
    both = pd.concat({"used": used, "pct": pct}, axis=1, join="inner")
    both = both[both["pct"] > 0]
    return (both["used"] * 100 / both["pct"]).groupby(level="source").median().to_dict()


def _leak(v: np.ndarray, secs: np.ndarray, s: DetectorSettings):
    """(whole window's trend, its last ``leak_tail_frac``'s trend): a leak is still rising at the end."""
    mk = mann_kendall(v, secs)
    tail = secs >= secs[-1] - s.leak_tail_frac * s.leak_window_s
    if tail.sum() < 3:
        return mk, None
    return mk, mann_kendall(v[tail], secs[tail])


def memory_leak(points: pd.DataFrame, now: pd.Timestamp, s: DetectorSettings) -> list[HealthEvent]:
    """Host memory (``mem_percent``) or a process's RSS (``proc_rss_bytes``) growing without levelling off.

    All of: a Mann–Kendall trend over ``leak_window_s`` with p under ``leak_p_value`` and Sen's slope over the
    minimum rate; the window's last ``leak_tail_frac`` still rising at ``leak_tail_min_ratio`` of that slope
    (warm-up and caches that plateau are not leaks); and, at that rate, within ``leak_horizon_s`` the host's
    memory above ``leak_full_mem_pct`` or the process holding ``leak_min_share`` of its host's memory (the
    host's total is read from its ``mem_used_bytes`` and ``mem_percent`` points; without them, that last test
    is left out for a process).
    """
    out = []
    lo = now - pd.Timedelta(seconds=s.leak_window_s)
    recent = points[pd.to_datetime(points["ts"], utc=True) >= lo]
    totals = host_memory_bytes(recent)
    horizon_h = s.leak_horizon_s / 3600
    for metric in ("mem_percent", "proc_rss_bytes"):
        for source, g in _series(recent, metric):
            ts = pd.DatetimeIndex(g["ts"])
            if len(g) < s.leak_min_points or now - ts[-1] > pd.Timedelta(seconds=s.stale_s):
                continue
            if (ts[-1] - ts[0]).total_seconds() < 0.8 * s.leak_window_s:
                continue  # too little of the window covered (a process just started, still warming up)
            v = g["value"].to_numpy(dtype="float64")
            mk, tail = _leak(v, (ts - ts[0]).total_seconds().to_numpy(), s)
            per_h = mk.slope * 3600
            if not (mk.increasing and mk.p_value < s.leak_p_value) or tail is None:
                continue
            tail_per_h = tail.slope * 3600
            projected = float(v[-1]) + per_h * horizon_h
            if metric == "mem_percent":
                fast = per_h >= s.leak_min_mem_pct_per_h
                reaches = projected >= s.leak_full_mem_pct
                share = projected / 100
            else:
                fast = per_h >= s.leak_min_rss_frac_per_h * max(float(np.median(v)), 1.0)
                total = totals.get(source.split("/proc/")[0])
                share = projected / total if total else math.nan
                reaches = total is None or share >= s.leak_min_share
            if fast and tail_per_h >= s.leak_tail_min_ratio * per_h and reaches:
                out.append(
                    HealthEvent(
                        "memory_leak",
                        source,
                        ts[0],
                        metric,
                        float(v[-1]),
                        {
                            "slope_per_h": per_h,
                            "tail_slope_per_h": tail_per_h,
                            "rise": per_h * (ts[-1] - ts[0]).total_seconds() / 3600,
                            "projected": projected,
                            "projected_share": share,
                            "horizon_h": horizon_h,
                            "p_value": mk.p_value,
                            "points": len(v),
                        },
                    )
                )
    return out


def high_latency(calls: pd.DataFrame, now: pd.Timestamp, s: DetectorSettings) -> list[HealthEvent]:
    """A channel@region whose p95 latency over the last ``latency_window_s`` is above ``latency_p95_ms`` and
    above ``latency_factor`` × its own p95 over the ``latency_baseline_s`` before the window (an LLM that
    always takes two seconds is not slow; one that takes five today is), with at least ``latency_min_slow``
    calls over that bar. A channel with fewer than ``latency_min_calls`` calls in the baseline is not judged."""
    out = []
    ts = pd.to_datetime(calls["ts"], utc=True)
    cut = now - pd.Timedelta(seconds=s.latency_window_s)
    base_from = cut - pd.Timedelta(seconds=s.latency_baseline_s)
    recent, before = calls[ts > cut], calls[(ts > base_from) & (ts <= cut)]
    baselines = {
        k: float(np.percentile(g["latency_ms"].to_numpy(dtype="float64"), 95))
        for k, g in before.groupby(["channel", "region"], sort=False)
        if len(g) >= s.latency_min_calls
    }
    for (channel, region), g in recent.groupby(["channel", "region"], sort=True):
        if len(g) < s.latency_min_calls:
            continue
        lat = g["latency_ms"].to_numpy(dtype="float64")
        p95 = float(np.percentile(lat, 95))
        baseline = baselines.get((channel, region))
        if baseline is None:
            continue  # no rhythm of its own yet to be slow against (the breaker still judges failures)
        bar = max(s.latency_p95_ms, s.latency_factor * baseline)
        slow = g[lat > bar]
        if p95 > bar and len(slow) >= s.latency_min_slow:
            out.append(
                HealthEvent(
                    "high_latency",
                    f"{channel}@{region}",
                    pd.Timestamp(slow["ts"].min()),
                    "latency_ms_p95",
                    p95,
                    {"calls": len(g), "channel": channel, "region": region, "bar_ms": bar, "baseline_p95_ms": baseline},
                )
            )
    return out


def circuit_breaker_open(
    calls: pd.DataFrame, now: pd.Timestamp, s: DetectorSettings, tuned: Mapping[str, BreakerConfig] | None = None
) -> list[HealthEvent]:
    """A channel@region whose breaker, replayed over its recent calls, is open or half-open now; the event
    starts when it tripped (re-opening after a failed probe is the same outage). A channel with a tuned
    breaker (``tuned_policies``' file in force) is judged by it; the others by the settings' one."""
    out = []
    recent = calls[pd.to_datetime(calls["ts"], utc=True) > now - pd.Timedelta(seconds=s.breaker_history_s)]
    for (channel, region), g in recent.groupby(["channel", "region"], sort=True):
        b = replay(g.sort_values("ts"), (tuned or {}).get(f"{channel}@{region}", s.breaker), now)
        if b.tripped_at is not None:
            failure, slow = b.transitions[-1].failure_rate, b.transitions[-1].slow_rate
            out.append(
                HealthEvent(
                    "circuit_breaker_open",
                    f"{channel}@{region}",
                    b.tripped_at,
                    "error_rate",
                    failure,
                    {
                        "state": b.state,
                        "slow_rate": slow,
                        "channel": channel,
                        "region": region,
                        "opened": str(b.opened_at),
                    },
                )
            )
    return [e for e in out if e.detail["state"] in (OPEN, "half_open")]


def task_failure_pattern(runs: pd.DataFrame, now: pd.Timestamp, s: DetectorSettings) -> list[HealthEvent]:
    """A job failing at least ``failure_min_count`` times within ``failure_window_s`` (``runs``: ``run_id``,
    ``job``, ``status``, ``end``); the event starts at the first of those failures."""
    out = []
    if runs.empty:
        return out
    end = pd.to_datetime(runs["end"], utc=True)
    failed = runs[(runs["status"] == "FAILURE") & (end > now - pd.Timedelta(seconds=s.failure_window_s))]
    for job, g in failed.assign(end=pd.to_datetime(failed["end"], utc=True)).groupby("job", sort=True):
        if len(g) >= s.failure_min_count:
            g = g.sort_values("end")
            out.append(
                HealthEvent(
                    "task_failure_pattern",
                    str(job),
                    g["end"].iloc[0],
                    "failures",
                    float(len(g)),
                    {"run_ids": list(g["run_id"]), "last_run_id": str(g["run_id"].iloc[-1]), "job": str(job)},
                )
            )
    return out


def cascade_failure(
    failures: pd.DataFrame, upstream: Mapping[str, Iterable[str]], now: pd.Timestamp, s: DetectorSettings
) -> list[HealthEvent]:
    """Several failures (``failures``: ``key``, ``ts``, ``run_id``) in the window that share a failing
    upstream. The root is the earliest failing key that is upstream of (or is) at least
    ``cascade_min_failures`` of them; the lineage is ``upstream``: key -> its direct upstream keys."""
    if failures.empty:
        return []
    recent = failures[pd.to_datetime(failures["ts"], utc=True) > now - pd.Timedelta(seconds=s.cascade_window_s)]
    first = recent.assign(ts=pd.to_datetime(recent["ts"], utc=True)).sort_values("ts").drop_duplicates("key")
    failing = dict(zip(first["key"], first["ts"], strict=True))
    ancestors = {k: _ancestors(k, upstream) for k in failing}
    best = None
    for root, t in sorted(failing.items(), key=lambda kv: (kv[1], kv[0])):
        affected = sorted(k for k in failing if k == root or root in ancestors[k])
        if len(affected) >= s.cascade_min_failures and failing[root] <= min(failing[k] for k in affected):
            best = (root, t, affected)
            break
    if best is None:
        return []
    root, t, affected = best
    run = first.set_index("key").loc[root, "run_id"] if "run_id" in first else None
    return [
        HealthEvent(
            "cascade_failure",
            root,
            t,
            "failures",
            float(len(affected)),
            {"root": root, "affected": affected, "root_run_id": run},
        )
    ]


def _ancestors(key: str, upstream: Mapping[str, Iterable[str]]) -> set[str]:
    seen, stack = set(), list(upstream.get(key, ()))
    while stack:
        k = stack.pop()
        if k not in seen:
            seen.add(k)
            stack.extend(upstream.get(k, ()))
    return seen


@dataclass(frozen=True)
class Watch:
    """A process to watch for hangs: matched like an allowlist rule; hung when its heartbeat file
    (``<heartbeat_dir>/<pid>.hb``, touched by the process) or, with ``cpu_still_is_hung``, its CPU time
    has not moved for ``hung_after_s``."""

    rule: ProcessRule
    heartbeat_dir: str | None = None
    cpu_still_is_hung: bool = False


def process_zombie(
    procs: list[ProcInfo], host: str, now: pd.Timestamp, seen: dict[str, float], s: DetectorSettings
) -> list[HealthEvent]:
    """Zombies that lingered at least ``zombie_persist_s``, one event per parent (the parent is what can reap
    them); ``seen`` (``"pid:create_time"`` -> epoch first seen) is updated in place, keep it between calls.
    Orphans already under PID 1 are left out: only init can reap them (this machine's PID 1 does not)."""
    t = now.timestamp()
    by_parent: dict[int, list[ProcInfo]] = {}
    current = set()
    for p in procs:
        if p.zombie and p.ppid != 1:
            key = f"{p.pid}:{p.create_time:.3f}"
            current.add(key)
            seen.setdefault(key, t)
            if t - seen[key] >= s.zombie_persist_s:
                by_parent.setdefault(p.ppid, []).append(p)
    for key in set(seen) - current:
        del seen[key]
    names = {p.pid: p for p in procs}
    out = []
    for ppid, zs in sorted(by_parent.items()):
        parent = names.get(ppid)
        first = min(seen[f"{z.pid}:{z.create_time:.3f}"] for z in zs)
        out.append(
            HealthEvent(
                "process_zombie",
                f"{host}/proc/{ppid}",
                pd.Timestamp(first, unit="s", tz="UTC").floor("s"),
                "zombie_count",
                float(len(zs)),
                {
                    "parent_pid": ppid,
                    "parent_name": parent.name if parent else "",
                    "parent_create_time": parent.create_time if parent else None,
                    "zombie_pids": [z.pid for z in zs],
                },
            )
        )
    return out


def process_hung(
    procs: list[ProcInfo],
    watches: list[Watch],
    host: str,
    now: pd.Timestamp,
    cpu_state: dict[str, list[float]],
    s: DetectorSettings,
) -> list[HealthEvent]:
    """Watched processes whose heartbeat is older than ``hung_after_s`` or whose CPU time has not moved
    for that long. ``cpu_state`` (``"pid:create_time"`` -> [cpu seconds, epoch since unchanged]) is
    updated in place; keep it between calls (a sensor keeps it in its cursor)."""
    out, seen = [], set()
    t = now.timestamp()
    for p in procs:
        if p.zombie:
            continue
        w = next((w for w in watches if w.rule.matches(p.name, p.cmdline, p.user)), None)
        if w is None:
            continue
        key = f"{p.pid}:{p.create_time:.3f}"
        seen.add(key)
        prev = cpu_state.get(key)
        if prev is None or abs(prev[0] - p.cpu_seconds) > 1e-3:
            cpu_state[key] = [p.cpu_seconds, t]
        still_since = cpu_state[key][1]
        reason, since = None, None
        if w.heartbeat_dir is not None:
            hb = Path(w.heartbeat_dir) / f"{p.pid}.hb"
            try:
                mtime = hb.stat().st_mtime
            except OSError:
                mtime = None
            if mtime is not None and t - mtime > s.hung_after_s:
                reason, since = "heartbeat", mtime
        if reason is None and w.cpu_still_is_hung and t - still_since > s.hung_after_s:
            reason, since = "cpu_time", still_since
        if reason is not None:
            out.append(
                HealthEvent(
                    "process_hung",
                    f"{host}/proc/{p.pid}",
                    pd.Timestamp(since, unit="s", tz="UTC").floor("s"),
                    "heartbeat_age_s",
                    t - since,
                    {"pid": p.pid, "name": p.name, "create_time": p.create_time, "reason": reason},
                )
            )
    for key in set(cpu_state) - seen:
        del cpu_state[key]
    return out


def anomaly(events: pd.DataFrame, now: pd.Timestamp, s: DetectorSettings) -> list[HealthEvent]:
    """Alert events of the anomaly detectors (the ``events`` table) of the listed severities that started
    within ``anomaly_window_s``; the healing event keeps the alert's source and start."""
    if events.empty:
        return []
    ts = pd.to_datetime(events["ts"], utc=True)
    sel = events[(ts > now - pd.Timedelta(seconds=s.anomaly_window_s)) & events["severity"].isin(s.anomaly_severities)]
    return [
        HealthEvent(
            "anomaly",
            str(r.source),
            pd.Timestamp(r.ts),
            str(r.metric),
            float(r.score) if pd.notna(r.score) else math.nan,
            {"alert_id": str(r.event_id), "severity": str(r.severity)},
        )
        for r in sel.itertuples(index=False)
    ]


def leak_margin(event: HealthEvent) -> float:
    """How much of its rise a host memory leak must give back to be over (points of mem_percent)."""
    return max(0.2, 0.3 * float(event.detail.get("rise", 0.0)))


def dir_bytes(root: str | Path) -> int:
    """Bytes of the regular files under ``root`` (symlinks not followed)."""
    total = 0
    for dirpath, _, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


def disk_pressure(roots: Iterable[str], host: str, now: pd.Timestamp, s: DetectorSettings) -> list[HealthEvent]:
    """A temp root holding more than ``temp_max_bytes``, or on a disk fuller than ``disk_percent``."""
    import psutil

    out = []
    for root in roots:
        if not os.path.isdir(root):
            continue
        size, disk = dir_bytes(root), psutil.disk_usage(root).percent
        if size > s.temp_max_bytes or disk > s.disk_percent:
            metric, value = ("temp_bytes", float(size)) if size > s.temp_max_bytes else ("disk_percent", disk)
            out.append(
                HealthEvent(
                    "disk_pressure",
                    f"{host}:{root}",
                    now,
                    metric,
                    value,
                    {"root": root, "bytes": size, "disk_percent": disk},
                )
            )
    return out
