"""Local evidence: before healing touches a process or a file on this machine, this machine confirms the event.

A host name in the metrics store is only what an agent or a file asserted (``rhythm agent --host <this
host>`` writes points as if it were us). The health sensor therefore reads this host only from points its
own sampler signed (``metrics/provenance.py``), and, as a second line, an action on a local process or file
needs the event to hold on this machine *now*, read here with psutil: the host's CPU over the configured
bar; the host's memory at the level the event reports (within ``MEM_TOLERANCE`` points, and not fallen back
by the leak's margin); the process alive with the start time the detector saw (or started before the event)
and, for a leaking process, its real RSS at the level the event reports (from 90 % to twice it); one of the
configured temp roots over its limit; a prevention's precursor metric (CPU or memory) at the value the sensor
read. Events that only the store knows (anomaly alerts, channel or job
events) give no local evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from rhythm_pipelines.healing import processes as procs
from rhythm_pipelines.healing.detectors import DetectorSettings, disk_pressure, leak_margin
from rhythm_pipelines.healing.events import HealthEvent

MEM_TOLERANCE = 5.0  # points of mem_percent between the event's level and this machine's reading
CPU_TOLERANCE = 15.0  # points of cpu_percent (CPU moves faster than memory)


def _cpu() -> float:
    return psutil.cpu_percent(interval=1.0)


def _mem() -> float:
    return psutil.virtual_memory().percent


@dataclass
class LocalEvidence:
    """``(confirmed?, what was read)`` for an event about ``host``, read on this machine."""

    settings: DetectorSettings
    host: str
    cpu_percent: Callable[[], float] = field(default=_cpu)
    mem_percent: Callable[[], float] = field(default=_mem)
    temp_roots: tuple[str, ...] = ()  # the configured roots: the only ones a disk event may be confirmed on

    def __call__(self, event: HealthEvent) -> tuple[bool, str]:
        if event.host != self.host:
            return False, f"{event.host} is not this host ({self.host}): no remote actions"
        if "/proc/" in event.source:
            return self._process(event)
        check = getattr(self, f"_{event.kind}", None)
        if check is None:
            return False, f"{event.kind} on {event.source}: no local evidence (known only from the store)"
        return check(event)

    def _process(self, event: HealthEvent) -> tuple[bool, str]:
        pid = int(event.detail.get("pid") or event.detail.get("parent_pid") or event.source.rsplit("/proc/", 1)[1])
        p = procs.process(pid, alive=True)
        if p is None:
            return False, f"pid {pid} is not running here"
        created = event.detail.get("create_time", event.detail.get("parent_create_time"))
        if created is not None:
            if abs(p.create_time - float(created)) > 1e-3:
                return False, f"pid {pid} is another process than the one the event saw (reused pid)"
        elif p.create_time > event.start.timestamp():
            return False, f"pid {pid} started after the event began: not the process it saw"
        if event.kind == "memory_leak" and not math.isnan(event.value):
            if not 0.9 * event.value <= p.rss_bytes <= 2.0 * event.value:  # a leak grows, a claim is not a fiction
                return False, (
                    f"pid {pid} RSS here is {p.rss_bytes / 1e6:.0f} MB, not the {event.value / 1e6:.0f} MB the event "
                    "reports"
                )
            return True, f"pid {pid} RSS {p.rss_bytes / 1e6:.0f} MB here"
        return True, f"pid {pid} ({p.name}) is the process the event saw"

    def _cpu_spike(self, event: HealthEvent) -> tuple[bool, str]:
        cpu = self.cpu_percent()
        bar = self.settings.cpu_percent
        return cpu > bar, f"cpu_percent here {cpu:.1f} ({'over' if cpu > bar else 'not over'} {bar:g})"

    def _memory_leak(self, event: HealthEvent) -> tuple[bool, str]:
        mem = self.mem_percent()
        if math.isnan(event.value):
            return False, "the event reports no memory level"
        margin = leak_margin(event)
        ok = event.value - margin <= mem <= event.value + MEM_TOLERANCE
        return ok, f"mem_percent here {mem:.1f} (event {event.value:.1f}, margin {margin:.1f})"

    def _recurrence_risk(self, event: HealthEvent) -> tuple[bool, str]:
        """A precursor read from the store: this machine's own reading of its metric must match the value the
        sensor read (CPU within ``CPU_TOLERANCE`` points, memory within ``MEM_TOLERANCE``)."""
        readers = {"cpu_percent": (self.cpu_percent, CPU_TOLERANCE), "mem_percent": (self.mem_percent, MEM_TOLERANCE)}
        if event.metric not in readers or math.isnan(event.value):
            return False, f"a precursor on {event.metric or 'an unnamed metric'} cannot be read on this machine"
        read, tolerance = readers[event.metric]
        here = read()
        ok = abs(here - event.value) <= tolerance
        return ok, f"{event.metric} here {here:.1f} (the precursor read {event.value:.1f}, tolerance {tolerance:g})"

    def _disk_pressure(self, event: HealthEvent) -> tuple[bool, str]:
        root = str(event.detail.get("root") or event.source.partition(":")[2])
        if root not in self.temp_roots:
            return False, f"{root!r} is not a configured temp root"
        found = disk_pressure([root], self.host, event.start, self.settings)  # the detector, run here and now
        if not found:
            return False, f"{root}: no pressure here now"
        seen = found[0].detail
        return True, f"{root}: {seen['bytes'] / 1e6:.1f} MB, disk {seen['disk_percent']:.0f}% here"
