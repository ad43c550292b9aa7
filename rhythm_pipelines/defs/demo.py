"""The demo fleet keeps going: a sensor that appends the simulated fleet's newest minutes to the landing zone.

On only with ``RHYTHM_DEMO=1`` (``make dev`` sets it): the hourly ingestion picks the hour files up like any
shipped log, so the demo's hosts and channels stay as fresh as a real fleet's would.
"""

import os

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
