"""The demo fleet keeps going: a sensor that appends the simulated fleet's newest minutes to the landing zone,
and three jobs the predictive scheduler plans on the demo's hosts.

On only with ``RHYTHM_DEMO=1`` (``make dev`` sets it): the hourly ingestion picks the hour files up like any
shipped log, so the demo's hosts and channels stay as fresh as a real fleet's would. The demo jobs do a few
seconds of real work here; their ``rhythm/cost`` tags say what such a job would add to the simulated host it
names, which is what the planner weighs against that host's forecast.
"""

import os
import time

import dagster as dg
import pandas as pd

from rhythm_pipelines.defs.resources import LandingZone
from rhythm_pipelines.simulate.live import feed

DEMO_INTERVAL_S = 60


def enabled() -> bool:
    return os.environ.get("RHYTHM_DEMO", "") == "1"


@dg.sensor(
    minimum_interval_seconds=DEMO_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING if enabled() else dg.DefaultSensorStatus.STOPPED,
    description="Demo only (RHYTHM_DEMO=1): every minute, the demo fleet's newest minutes appended to the landing "
    "zone's hour files under metrics/demo and calls/demo (the recorded fleet's same hour of a day with no "
    "labelled incident, shifted forward; else simulated); the hourly ingestion reads them like any shipped log.",
)
def demo_traffic(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SkipReason:
    now = pd.Timestamp.now(tz="UTC")
    last = pd.Timestamp(context.cursor) if context.cursor else None
    done = feed(landing.path, last, now)
    if done is None:
        return dg.SkipReason("no whole minute since the last one written")
    end, points, calls, how = done
    context.update_cursor(end.isoformat())
    return dg.SkipReason(f"appended {points:,} points and {calls:,} calls up to {end:%H:%M} UTC ({how})")


class DemoWorkConfig(dg.Config):
    seconds: float = 3.0


@dg.op(description="A few seconds of real CPU work (the demo's stand-in for a batch step).")
def demo_work(context: dg.OpExecutionContext, config: DemoWorkConfig) -> None:
    end, n = time.monotonic() + config.seconds, 0
    while time.monotonic() < end:
        sum(i * i for i in range(20_000))
        n += 1
    context.log.info(f"{n} rounds of work in {config.seconds:g} s")


def _demo_job(name: str, tags: dict[str, str], description: str) -> dg.JobDefinition:
    @dg.job(name=name, tags=tags, description=description)
    def _job():
        demo_work()

    return _job


demo_planned_jobs = [
    _demo_job(
        "demo_report_batch",
        {
            "rhythm/cron": "0 */2 * * *",
            "rhythm/priority": "normal",
            "rhythm/deadline": "within 4h",
            "rhythm/cost": "cpu=35,mem=5,duration=40m",
            "rhythm/host": "web-01",
        },  # fmt: skip
        "Demo: a heavy report every two hours on web-01, due within 4 h (deferred out of forecast peaks).",
    ),
    _demo_job(
        "demo_reindex",
        {
            "rhythm/cron": "30 */3 * * *",
            "rhythm/priority": "low",
            "rhythm/deadline": "within 8h",
            "rhythm/cost": "cpu=25,duration=30m",
            "rhythm/host": "db-01",
        },  # fmt: skip
        "Demo: a low-priority reindex every three hours on db-01, due within 8 h.",
    ),
    _demo_job(
        "demo_health_probe",
        {
            "rhythm/cron": "*/30 * * * *",
            "rhythm/priority": "high",
            "rhythm/cost": "cpu=2,duration=1m",
            "rhythm/host": "web-01",
        },  # fmt: skip
        "Demo: a light high-priority probe every 30 min on web-01 (never moved).",
    ),
]
