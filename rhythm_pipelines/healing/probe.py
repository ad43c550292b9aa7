"""Verification: fresh readings of a target and "is the incident over?", per event kind.

:class:`LocalProbe` reads this host with psutil, channel calls through a callable (the store's
``channel_calls`` table in Dagster), job outcomes through another (Dagster's run storage), and alert
events through a third. A kind whose data source is missing is never called resolved.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from rhythm_pipelines.healing import processes as procs
from rhythm_pipelines.healing.breaker import replay
from rhythm_pipelines.healing.detectors import DetectorSettings, dir_bytes, leak_margin
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.pause import paused_by
from rhythm_pipelines.healing.routing import read_routes

CallsReader = Callable[[pd.Timestamp, pd.Timestamp], pd.DataFrame]  # [start, end) -> ts, channel, region, ...
JobRecovered = Callable[[str, pd.Timestamp], tuple[bool, str]]  # (job or asset, since) -> (succeeded since?, how)
AlertEnd = Callable[[str], pd.Timestamp | None]  # alert event id -> its stored end


@dataclass
class LocalProbe:
    settings: DetectorSettings
    host: str
    routes_file: Path
    calls: CallsReader | None = None
    job_recovered: JobRecovered | None = None
    alert_end: AlertEnd | None = None
    paused_file: Path | None = None
    breakers: dict | None = None  # channel@region -> its tuned BreakerConfig: verified by the one that detected
    cpu_interval_s: float = 1.0
    mem_percent: Callable[[], float] = lambda: psutil.virtual_memory().percent  # injectable in tests

    def _now(self) -> pd.Timestamp:
        return pd.Timestamp.now(tz="UTC")

    def readings(self, event: HealthEvent) -> dict[str, float]:
        if event.host != self.host:
            return {}
        return {"cpu_percent": psutil.cpu_percent(interval=0.5), "mem_percent": self.mem_percent()}

    def resolved(self, event: HealthEvent, since: pd.Timestamp) -> tuple[bool, str]:
        check = getattr(self, f"_{event.kind}", None)
        if check is None:
            return False, f"no verification for {event.kind}"
        return check(event, since)

    # -- host and processes --------------------------------------------------------------------------------

    def _cpu_spike(self, event, since):
        if event.host != self.host:
            return False, f"cannot read {event.host} from here"
        cpu = psutil.cpu_percent(interval=self.cpu_interval_s)
        return cpu <= self.settings.cpu_percent, f"cpu_percent = {cpu:.1f} (bar {self.settings.cpu_percent:g})"

    def _memory_leak(self, event, since):
        if event.host != self.host:
            return False, f"cannot read {event.host} from here"
        if "/proc/" in event.source:
            pid = int(event.source.rsplit("/proc/", 1)[1])
            p = procs.process(pid, alive=True)
            if p is None:
                return True, f"pid {pid} is gone"
            ok = not math.isnan(event.value) and p.rss_bytes < 0.9 * event.value
            return ok, f"pid {pid} RSS {p.rss_bytes / 1e6:.0f} MB (was {event.value / 1e6:.0f} MB at detection)"
        # over when memory gave back a good part of what the leak window saw it gain
        margin = leak_margin(event)
        mem = self.mem_percent()
        return (
            mem < event.value - margin,
            f"mem_percent = {mem:.1f} (was {event.value:.1f} at detection, bar -{margin:.1f})",
        )

    def _process_zombie(self, event, since):
        ppid = int(event.detail.get("parent_pid") or event.source.rsplit("/proc/", 1)[1])
        left = procs.zombies_of(ppid)
        return not left, f"{len(left)} zombie(s) under pid {ppid}"

    def _process_hung(self, event, since):
        pid = int(event.detail.get("pid") or event.source.rsplit("/proc/", 1)[1])
        p = procs.process(pid, alive=True)
        created = event.detail.get("create_time")
        if p is None or (created is not None and abs(p.create_time - float(created)) > 1e-3):
            return True, f"pid {pid} is gone"
        return False, f"pid {pid} ({p.name}) still there"

    def _disk_pressure(self, event, since):
        root = event.detail.get("root", "")
        size, disk = dir_bytes(root), psutil.disk_usage(root).percent if root else math.nan
        ok = size <= self.settings.temp_max_bytes and disk <= self.settings.disk_percent
        return ok, f"{root}: {size / 1e6:.1f} MB, disk {disk:.0f}%"

    # -- channels ------------------------------------------------------------------------------------------

    def _recent_calls(self, source: str, since: pd.Timestamp) -> pd.DataFrame:
        if self.calls is None:
            return pd.DataFrame(columns=["ts", "channel", "region", "latency_ms", "status"])
        c = self.calls(since, self._now() + pd.Timedelta(seconds=1))
        channel, _, region = source.partition("@")
        return c[(c["channel"] == channel) & (c["region"] == region)].sort_values("ts")

    def _serving(self, event: HealthEvent, since: pd.Timestamp) -> tuple[str, pd.DataFrame]:
        """Who serves the event's channel now (itself or its fallback) and its calls since ``since``."""
        route = read_routes(self.routes_file, self._now()).get(event.source)
        serving = route["to"] if route else event.source
        return serving, self._recent_calls(serving, since)

    def _high_latency(self, event, since):
        serving, calls = self._serving(event, since)
        n = len(calls)
        if n < max(3, self.settings.latency_min_calls // 2):
            return False, f"{serving}: {n} call(s) since the action, too few to tell"
        p95 = float(np.percentile(calls["latency_ms"].to_numpy(dtype="float64"), 95))
        bar = float(event.detail.get("bar_ms") or self.settings.latency_p95_ms)  # the bar the detector used
        return p95 <= bar, f"{serving}: p95 {p95:.0f} ms over {n} calls (bar {bar:.0f} ms)"

    def _circuit_breaker_open(self, event, since):
        serving, calls = self._serving(event, since)
        n = len(calls)
        if n < self.settings.breaker_probe_calls:
            return False, f"{serving}: {n} call(s) since the action, too few to tell"
        b = replay(calls, (self.breakers or {}).get(event.source, self.settings.breaker), self._now())
        failures = float((calls["status"] != "ok").mean())
        return b.tripped_at is None, f"{serving}: breaker {b.state}, {failures:.0%} failed over {n} calls"

    # -- acting before a forecast breach ------------------------------------------------------------------

    def _forecast_peak(self, event, since):
        if self.paused_file is None:
            return False, "no pause file to read"
        held = event.event_id in paused_by(self.paused_file, self._now())
        until = event.detail.get("until", "?")
        return held, f"low-priority work paused until {until}" if held else "low-priority work is not paused"

    def _forecast_slo(self, event, since):
        route = read_routes(self.routes_file, self._now()).get(event.source)
        if route is None:
            return False, f"{event.source} is not rerouted"
        return True, f"{event.source} routed to {route['to']} until {route['until']}"

    def _recurrence_risk(self, event, since):
        return False, f"pattern {event.detail.get('pattern', '?')}'s precursor holds: the breach is still ahead"

    # -- jobs and alerts -----------------------------------------------------------------------------------

    def _task_failure_pattern(self, event, since):
        if self.job_recovered is None:
            return False, "no run history attached"
        return self.job_recovered(event.detail.get("job", event.source), since)

    def _cascade_failure(self, event, since):
        if self.job_recovered is None:
            return False, "no run history attached"
        return self.job_recovered(event.detail.get("root", event.source), since)

    def _anomaly(self, event, since):
        if self.alert_end is None:
            return False, "no alert store attached"
        end = self.alert_end(event.detail.get("alert_id", ""))
        if end is None:
            return False, "the alert is not in the store"
        return end < since, f"the alert's last flagged point is {end.isoformat()}"
