"""What a job says about itself to the predictive scheduler, through its Dagster tags.

- ``rhythm/priority``: ``high`` (never moved), ``normal`` or ``low`` (deferrable; low yields to normal);
- ``rhythm/deadline``: ``by HH:MM`` (UTC; the next such time after the run's nominal time) or ``within 4h`` /
  ``within 90m`` (after its nominal time); none: the end of the planning horizon;
- ``rhythm/cost``: what a run costs a host, ``cpu=30,mem=10,duration=20m`` (CPU and memory in percent of the
  host, added to its load while the run lasts); what is not given comes from the learned profile.

A tag that cannot be read is an error naming the job, the tag and the value, never a silent default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

PRIORITY, DEADLINE, COST = "rhythm/priority", "rhythm/deadline", "rhythm/cost"
PRIORITIES = ("high", "normal", "low")
_BY = re.compile(r"^by\s+([01]?\d|2[0-3]):([0-5]\d)$")
_WITHIN = re.compile(r"^within\s+(\d+(?:\.\d+)?)\s*(m|min|h)$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h)$")
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600}


class ScheduleTagError(ValueError):
    """A scheduling tag that cannot be used: ``job J: tag T: reason (got 'value')``."""

    def __init__(self, job: str, tag: str, value: str, reason: str):
        super().__init__(f"job {job}: tag {tag}: {reason} (got {value!r})")
        self.job, self.tag, self.value = job, tag, value


@dataclass(frozen=True)
class Deadline:
    """``by`` a time of day (UTC), or ``within`` a delay after the nominal time."""

    by: tuple[int, int] | None = None
    within: pd.Timedelta | None = None

    def after(self, nominal: pd.Timestamp) -> pd.Timestamp:
        """The deadline of a run due at ``nominal``."""
        if self.within is not None:
            return nominal + self.within
        hour, minute = self.by  # type: ignore[misc]
        at = nominal.normalize() + pd.Timedelta(hours=hour, minutes=minute)
        return at if at > nominal else at + pd.Timedelta(days=1)


@dataclass(frozen=True)
class Cost:
    """What a run adds to its host while it lasts; None: learn it."""

    cpu: float | None = None  # percent of the host's CPU
    mem: float | None = None  # percent of its memory
    duration: pd.Timedelta | None = None


@dataclass(frozen=True)
class JobTags:
    job: str
    priority: str = "normal"
    deadline: Deadline | None = None
    cost: Cost = Cost()

    @property
    def deferrable(self) -> bool:
        return self.priority != "high"


def parse_deadline(job: str, raw: str) -> Deadline:
    text = raw.strip().lower()
    if m := _BY.match(text):
        return Deadline(by=(int(m.group(1)), int(m.group(2))))
    if m := _WITHIN.match(text):
        delay = pd.Timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])
        if delay <= pd.Timedelta(0):
            raise ScheduleTagError(job, DEADLINE, raw, "the delay must be positive")
        return Deadline(within=delay)
    raise ScheduleTagError(job, DEADLINE, raw, "expected 'by HH:MM' (UTC) or 'within N[h|m]'")


def parse_cost(job: str, raw: str) -> Cost:
    values: dict[str, object] = {}
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip().lower()
        if not sep or key not in ("cpu", "mem", "duration"):
            raise ScheduleTagError(job, COST, raw, f"expected cpu=, mem= or duration= items, not {part!r}")
        if key in values:
            raise ScheduleTagError(job, COST, raw, f"{key} given twice")
        if key == "duration":
            m = _DURATION.match(value)
            if not m or float(m.group(1)) <= 0:
                raise ScheduleTagError(job, COST, raw, f"duration must be like 20m, 1.5h or 90s, not {value!r}")
            values[key] = pd.Timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])
        else:
            try:
                share = float(value.rstrip("%"))
            except ValueError:
                raise ScheduleTagError(job, COST, raw, f"{key} must be a percentage, not {value!r}") from None
            if not 0 <= share <= 100:
                raise ScheduleTagError(job, COST, raw, f"{key} must be within 0-100 %, not {value!r}")
            values[key] = share
    if not values:
        raise ScheduleTagError(job, COST, raw, "empty: give cpu=, mem= and/or duration=")
    return Cost(**values)  # type: ignore[arg-type]


def parse_tags(job: str, tags: dict[str, str]) -> JobTags | None:
    """The scheduling tags of ``job``; None when it has none (it does not take part)."""
    if not any(k in tags for k in (PRIORITY, DEADLINE, COST)):
        return None
    priority = tags.get(PRIORITY, "normal").strip().lower()
    if priority not in PRIORITIES:
        raise ScheduleTagError(job, PRIORITY, tags[PRIORITY], f"expected one of {', '.join(PRIORITIES)}")
    deadline = parse_deadline(job, tags[DEADLINE]) if DEADLINE in tags else None
    if deadline is not None and priority == "high":
        raise ScheduleTagError(job, DEADLINE, tags[DEADLINE], "a high-priority job is never moved: drop its deadline")
    cost = parse_cost(job, tags[COST]) if COST in tags else Cost()
    return JobTags(job, priority, deadline, cost)
