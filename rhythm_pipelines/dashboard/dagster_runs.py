"""Run counts per job from a Dagster instance, for ``/metrics`` (Dagster exports none itself: dagster#4480)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pandas as pd

LIMIT = 5000  # runs read per status and scrape: a backlog beyond this is reported as this many


def run_counts(instance_factory: Callable[[], object]) -> Callable[[], dict | None]:
    """A function giving ``{(job, status): n}``: runs queued, starting and started now, failed in the last 24 h.
    The instance is opened on first use; an instance that cannot be read gives None (no series)."""
    state: dict = {}

    def counts() -> dict | None:
        import dagster as dg

        try:
            instance = state.get("instance") or state.setdefault("instance", instance_factory())
            out: Counter = Counter()
            now = pd.Timestamp.now(tz="UTC")
            asked = {
                "queued": dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]),
                "running": dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]),
                "failed_24h": dg.RunsFilter(
                    statuses=[dg.DagsterRunStatus.FAILURE], updated_after=(now - pd.Timedelta(hours=24)).to_pydatetime()
                ),
            }
            for status, runs_filter in asked.items():
                for record in instance.get_run_records(filters=runs_filter, limit=LIMIT):
                    out[(record.dagster_run.job_name, status)] += 1
            return dict(out)
        except Exception:  # noqa: BLE001 - a dashboard without Dagster counts still serves everything else
            return None

    return counts
