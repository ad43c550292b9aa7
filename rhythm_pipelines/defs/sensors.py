"""The host sampler: every ~10 s, this host's metrics into the store and the spool; hourly ingestion runs."""

import json
import os

import dagster as dg
import pandas as pd

from rhythm_pipelines.defs.jobs import hourly_ingestion_job
from rhythm_pipelines.defs.resources import LandingZone, MetricsStoreResource, sampler_host
from rhythm_pipelines.home import rhythm_home
from rhythm_pipelines.metrics.host import HostSampler, load_procs, points_frame, save_procs, split_state
from rhythm_pipelines.metrics.landing import append_spool, closed_hours
from rhythm_pipelines.metrics.provenance import sampler_key, sign

SAMPLE_INTERVAL_S = int(os.environ.get("RHYTHM_SAMPLE_INTERVAL_S", "10"))
MAX_CATCH_UP_HOURS = 24  # after a long outage, ingest at most the last day's hours
INGEST_GRACE_S = 120  # an hour is ingested this long after it closes: shipped logs of its last minute arrive late


@dg.sensor(
    job=hourly_ingestion_job,
    minimum_interval_seconds=SAMPLE_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Samples this host with psutil each tick (at least 10 s apart: the daemon's sensor loop adds its own "
    "delay, 2–5 s on a busy machine; each tick's message gives the interval it kept), writes the points to the "
    "store and the landing spool, and launches hourly ingestion for each hour two minutes after it closes (logs of its "
    "last minute arrive late). Per-process counters "
    "live in $RHYTHM_HOME/state/sampler_procs.json, not in the cursor.",
)
def host_sampler(
    context: dg.SensorEvaluationContext, store: MetricsStoreResource, landing: LandingZone
) -> dg.SensorResult | dg.SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {}
    host = sampler_host()
    procs_file = rhythm_home() / "state" / "sampler_procs.json"
    previous = cursor.get("sampler", {})
    sampler = HostSampler(host=host, state={**previous, "procs": load_procs(procs_file, previous.get("ts"))})
    frame = sign(points_frame(sampler.sample()), sampler_key())  # so healing can tell our points from claims
    small, procs = split_state(sampler.state)
    interval = round(small["ts"] - previous["ts"], 1) if previous.get("ts") else None
    with store.open() as s:
        s.write_metrics(frame)
    append_spool(landing.path, host, frame)
    save_procs(procs_file, procs, small["ts"])  # paired with the cursor below by the sample's time

    requests = [
        dg.RunRequest(run_key=f"hourly-ingestion-{key}", partition_key=key)
        for key in (
            h.strftime("%Y-%m-%d-%H:%M")
            for h in closed_hours(
                previous["ts"] - INGEST_GRACE_S if previous.get("ts") else None,
                frame["ts"].max() - pd.Timedelta(seconds=INGEST_GRACE_S),
                MAX_CATCH_UP_HOURS,
            )
        )
    ]
    context.update_cursor(json.dumps({"sampler": small}, separators=(",", ":")))
    if requests:
        return dg.SensorResult(run_requests=requests)
    kept = f"; {interval:g} s since the last sample" if interval is not None else "; first sample"
    return dg.SkipReason(f"sampled {host}: {len(frame)} points written{kept}")
