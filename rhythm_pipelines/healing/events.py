"""Health events: what a detector saw, with a stable id so one incident is handled once.

An event's id is ``source|kind|start``: the same incident seen on later sensor ticks (or after a daemon
restart) has the same id, and Dagster's ``run_key`` turns that into one healing run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

KINDS = (
    "cpu_spike",
    "memory_leak",
    "high_latency",
    "task_failure_pattern",
    "circuit_breaker_open",
    "process_zombie",
    "process_hung",
    "anomaly",
    "cascade_failure",
    "disk_pressure",
    "forecast_peak",  # a host's load is forecast over its target soon (raised by the predictive scheduler)
    "forecast_slo",  # a channel@region's latency is forecast over its SLO soon
)  # the kinds a playbook file holds
FORECAST_KINDS = ("forecast_peak", "forecast_slo")  # optional in a playbook file: no playbook, no pre-emption
PREVENTION_KIND = "recurrence_risk"  # a learned failure pattern's precursor fired: never in a playbook file, its
# one step is its pattern's fix as a playbook spells it (learning/prevention.py)
EVENT_KINDS = (*KINDS, PREVENTION_KIND)
LEVELS = ("soft", "hard", "critical")  # in escalation order


def level_index(level: str) -> int:
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}") from None


@dataclass(frozen=True)
class HealthEvent:
    """One incident: its kind, its target (``source``: a host, ``host/proc/PID``, ``channel@region``, a
    job or asset), when it started, the reading that raised it and the facts an action needs."""

    kind: str
    source: str
    start: pd.Timestamp
    metric: str = ""
    value: float = math.nan
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; choose from {', '.join(EVENT_KINDS)}")
        start = pd.Timestamp(self.start)
        object.__setattr__(self, "start", start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC"))

    @property
    def event_id(self) -> str:
        if self.kind == PREVENTION_KIND:  # two patterns on one root at one minute are two preventions
            return f"{self.source}|{self.kind}|{self.detail.get('pattern', '')}|{self.start.isoformat()}"
        return f"{self.source}|{self.kind}|{self.start.isoformat()}"

    @property
    def host(self) -> str:
        """The host of a process or directory source (``web-01/proc/42``, ``web-01:/tmp`` → ``web-01``)."""
        return self.source.split("/proc/")[0].split(":")[0]

    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict (for run config and the log)."""
        return {
            "kind": self.kind,
            "source": self.source,
            "start": self.start.isoformat(),
            "metric": self.metric,
            "value": None if math.isnan(self.value) else float(self.value),
            "detail": json.loads(json.dumps(self.detail, default=str)),
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> HealthEvent:
        value = cfg.get("value")
        return cls(
            kind=cfg["kind"],
            source=cfg["source"],
            start=pd.Timestamp(cfg["start"]),
            metric=cfg.get("metric", ""),
            value=math.nan if value is None else float(value),
            detail=dict(cfg.get("detail") or {}),
        )
