"""What a job says about itself to the predictive scheduler, through its Dagster tags.

- ``rhythm/priority``: ``high`` (never moved), ``normal`` or ``low`` (deferrable; low yields to normal);
- ``rhythm/deadline``: ``by HH:MM`` (UTC; the next such time after the run's nominal time) or ``within 4h`` /
  ``within 90m`` (after its nominal time); none: the end of the planning horizon;
- ``rhythm/cost``: what a run costs a host, ``cpu=30,mem=10,duration=20m`` (CPU and memory in percent of the
  host, added to its load while the run lasts); what is not given comes from the learned profile;
- ``rhythm/cron``: the job's nominal times (a 5-field cron expression, UTC): the predictive scheduler plans
  the jobs that carry it, and launches them itself (give such a job no schedule of its own);
- ``rhythm/host``: the host whose load a run adds to (default: the machine the runs execute on).

A job with only ``rhythm/priority`` is not planned (healing's pause still reads it); a deadline or a cost
without ``rhythm/cron`` is an error: there would be nothing to plan.

A tag that cannot be read is an error naming the job, the tag and the value, never a silent default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from cronsim import CronSim, CronSimError

PRIORITY, DEADLINE, COST, CRON, HOST = "rhythm/priority", "rhythm/deadline", "rhythm/cost", "rhythm/cron", "rhythm/host"
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
    cron: str | None = None
    host: str | None = None

    @property
    def deferrable(self) -> bool:
        return self.priority != "high"

    def nominal_times(self, start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
        """The cron's times in ``[start, end)`` (UTC)."""
        if self.cron is None:
            return []
        out, it = [], CronSim(self.cron, (start - pd.Timedelta(seconds=1)).to_pydatetime())
        for t in it:
            ts = pd.Timestamp(t)
            if ts >= end:
                break
            if ts >= start:
                out.append(ts)
        return out


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
    if not any(k in tags for k in (PRIORITY, DEADLINE, COST, CRON)):
        return None
    priority = tags.get(PRIORITY, "normal").strip().lower()
    if priority not in PRIORITIES:
        raise ScheduleTagError(job, PRIORITY, tags[PRIORITY], f"expected one of {', '.join(PRIORITIES)}")
    deadline = parse_deadline(job, tags[DEADLINE]) if DEADLINE in tags else None
    if deadline is not None and priority == "high":
        raise ScheduleTagError(job, DEADLINE, tags[DEADLINE], "a high-priority job is never moved: drop its deadline")
    cost = parse_cost(job, tags[COST]) if COST in tags else Cost()
    cron = parse_cron(job, tags[CRON]) if CRON in tags else None
    if cron is None and (DEADLINE in tags or COST in tags):
        tag = DEADLINE if DEADLINE in tags else COST
        raise ScheduleTagError(job, tag, tags[tag], f"the job has no {CRON} tag: nothing for the scheduler to plan")
    host = tags.get(HOST, "").strip() or None
    return JobTags(job, priority, deadline, cost, cron, host)


def parse_cron(job: str, raw: str) -> str:
    text = " ".join(raw.split())
    if len(text.split(" ")) != 5:
        raise ScheduleTagError(job, CRON, raw, "expected 5 cron fields (minute hour day month weekday, UTC)")
    try:
        CronSim(text, datetime(2026, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ScheduleTagError(job, CRON, raw, f"not a cron expression: {exc}") from None
    return text
