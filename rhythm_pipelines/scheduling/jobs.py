"""From the jobs that opted in (their tags) to the runs the planner places.

A job's runs are its ``rhythm/cron`` times in the horizon, plus the past ones of the last ``LOOKBACK`` not
launched yet (deferred past their nominal time, or missed while the daemon was down) from the time the
scheduler first planned the job (``since``) or its earliest launched run in that window: a job it never saw
starts now, with no burst of a day's past times on its first start. A deferrable run stays in the plan until
it runs; a high-priority run more than ``MISSED`` late is a missed tick, dropped as Dagster's own schedules
drop them. A run's cost is what its tag says, else what its history measured (``learn.learned_cost``), else
``DEFAULT_COST``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from rhythm_pipelines.scheduling.planner import HORIZON, Run
from rhythm_pipelines.scheduling.tags import Cost, JobTags

LOOKBACK = pd.Timedelta(hours=24)
MISSED = pd.Timedelta(minutes=15)  # a high-priority run not launched this long after its time is a missed tick
DEFAULT_COST = Cost(cpu=10.0, mem=0.0, duration=pd.Timedelta(minutes=10))


@dataclass(frozen=True)
class Costed:
    cost: Cost  # every field set
    source: dict[str, str]  # field -> "tag", "learned" or "default"


def cost_of(tags: JobTags, learned: Cost | None) -> Costed:
    values, source = {}, {}
    for name in ("cpu", "mem", "duration"):
        for origin, c in (("tag", tags.cost), ("learned", learned), ("default", DEFAULT_COST)):
            v = getattr(c, name) if c is not None else None
            if v is not None:
                values[name], source[name] = v, origin
                break
    return Costed(Cost(**values), source)


def runs_to_place(
    jobs: Iterable[JobTags],
    learned: Mapping[tuple[str, str], Cost],
    now: pd.Timestamp,
    default_host: str,
    launched: set[str],
    horizon: pd.Timedelta = HORIZON,
    since: Mapping[str, pd.Timestamp] | None = None,
) -> list[Run]:
    """The runs of ``jobs`` from ``now - LOOKBACK`` to ``now + horizon`` whose key is not in ``launched``.
    ``learned``: (job, host) -> cost measured by the job profiles; ``since``: job -> when first planned."""
    out = []
    for tags in jobs:
        host = tags.host or default_host
        c = cost_of(tags, learned.get((tags.job, host))).cost
        known = [pd.Timestamp(k.split("|", 1)[1]) for k in launched if k.split("|", 1)[0] == tags.job]
        if since and tags.job in since:
            known.append(pd.Timestamp(since[tags.job]))
        floor = max(min(known), now - LOOKBACK) if known else now - MISSED
        for nominal in tags.nominal_times(floor, now + horizon):
            run = Run(
                tags.job, host, nominal, c.duration, c.cpu, c.mem or 0.0, tags.priority,
                tags.deadline.after(nominal) if tags.deadline is not None else None,
            )  # fmt: skip
            if run.key in launched or (tags.priority == "high" and nominal < now - MISSED):
                continue
            out.append(run)
    return out
