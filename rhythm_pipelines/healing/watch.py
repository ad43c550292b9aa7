"""One look at everything the healing sensor watches: every detector over the data it was given."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from rhythm_pipelines.healing import detectors as d
from rhythm_pipelines.healing.breaker import BreakerConfig
from rhythm_pipelines.healing.detectors import DetectorSettings, Watch
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.processes import ProcInfo

HOST_METRICS = ("cpu_percent", "mem_percent", "mem_used_bytes", "proc_rss_bytes")


def lookback(s: DetectorSettings) -> pd.Timedelta:
    """How much metric history the host detectors need."""
    return pd.Timedelta(seconds=max(2 * s.cpu_sustain_s, s.leak_window_s) + s.stale_s)


def calls_lookback(s: DetectorSettings) -> pd.Timedelta:
    return pd.Timedelta(seconds=max(s.latency_window_s + s.latency_baseline_s, s.breaker_history_s))


@dataclass
class Observation:
    """What the sensor read this tick."""

    host: str
    now: pd.Timestamp
    points: pd.DataFrame  # ts, source, metric, value: HOST_METRICS over ``lookback``
    calls: pd.DataFrame  # ts, channel, region, latency_ms, status over ``calls_lookback``
    alerts: pd.DataFrame  # the anomaly events table over ``anomaly_window_s``
    procs: list[ProcInfo] = field(default_factory=list)
    temp_roots: tuple[str, ...] = ()
    own: dict[int, str] = field(default_factory=dict)  # this Dagster instance's processes: pid -> role
    breakers: dict[str, BreakerConfig] = field(default_factory=dict)  # channel@region -> its tuned breaker


def detect_all(
    obs: Observation, s: DetectorSettings, watches: tuple[Watch, ...], state: dict[str, dict]
) -> list[HealthEvent]:
    """Every event that holds now, from every detector that has data. ``state`` carries the process
    detectors' memory between ticks (``cpu`` for process_hung, ``zombies`` for process_zombie)."""
    events: list[HealthEvent] = []
    if not obs.points.empty:
        events += d.cpu_spike(obs.points, obs.now, s)
        events += d.memory_leak(obs.points, obs.now, s)
    if not obs.calls.empty:
        events += d.high_latency(obs.calls, obs.now, s)
        events += d.circuit_breaker_open(obs.calls, obs.now, s, obs.breakers)
    events += d.anomaly(obs.alerts, obs.now, s)
    events += d.process_zombie(obs.procs, obs.host, obs.now, state.setdefault("zombies", {}), s)
    events += d.process_hung(obs.procs, list(watches), obs.host, obs.now, state.setdefault("cpu", {}), s)
    events += d.disk_pressure(obs.temp_roots, obs.host, obs.now, s)
    return [_own(e, obs) for e in events]


def _own(event: HealthEvent, obs: Observation) -> HealthEvent:
    """An event about one of this Dagster instance's own processes carries its role (``dagster_role``): healing
    reports it and never acts on it."""
    if event.host != obs.host or "/proc/" not in event.source:
        return event
    tail = event.source.rsplit("/proc/", 1)[1]
    role = obs.own.get(int(tail)) if tail.isdigit() else None
    return replace(event, detail={**event.detail, "dagster_role": role}) if role else event
