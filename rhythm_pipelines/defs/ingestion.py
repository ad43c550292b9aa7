"""Raw ingestion and hourly rollups: hourly partitions, backfillable in a single run per range."""

from datetime import timedelta

import dagster as dg
import pandas as pd

from rhythm_pipelines.defs.metadata import md_table, partitions_of, plot_series, run_scoped
from rhythm_pipelines.defs.partitions import hourly_partitions
from rhythm_pipelines.defs.resources import LandingZone, MetricsStoreResource, sampler_host
from rhythm_pipelines.metrics.ingest import (
    IngestReport,
    build_rollups,
    ingest_call_logs,
    ingest_metric_files,
    ingest_runs,
    run_records_frame,
)
from rhythm_pipelines.metrics.quality import range_violations, series_gaps
from rhythm_pipelines.metrics.rollups import highest_per_metric

INGESTION_GROUP = "ingestion"
# an hour is normally ingested minutes after it closes: warn when the newest is 2 h old, fail at 3 h
HOURLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3), warn_window=timedelta(hours=2))
_common = dict(
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=INGESTION_GROUP,
)


def window(context: dg.AssetExecutionContext) -> tuple[pd.Timestamp, pd.Timestamp]:
    tw = context.partition_time_window
    return pd.Timestamp(tw.start).tz_convert("UTC"), pd.Timestamp(tw.end).tz_convert("UTC")


def _report_metadata(report: IngestReport, start: pd.Timestamp, end: pd.Timestamp) -> dict:
    quarantined = pd.DataFrame(
        [(e.origin, e.row, e.field, e.reason) for e in report.quarantined],
        columns=["file", "row", "field", "reason"],
    )
    return {
        "window": f"{start.isoformat()} … {end.isoformat()}",
        "rows_written": dg.MetadataValue.int(report.rows),
        "files_read": dg.MetadataValue.int(len(report.files)),
        "quarantined_rows": dg.MetadataValue.int(len(report.quarantined)),
        "quarantined_without_time": dg.MetadataValue.int(report.untimed_rejects),
        "quarantine": md_table(quarantined),
        "by_source": md_table(report.by_source),
        **report.extra,
    }


def _range_check(asset: str, points: pd.DataFrame) -> dg.AssetCheckResult:
    bad = range_violations(points)
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name="value_ranges",
        passed=bad.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "violations": len(bad),
            "examples": md_table(bad.drop(columns="tags", errors="ignore"), 10),
        },
    )


def _quality_checks(asset: str, points: pd.DataFrame) -> list[dg.AssetCheckResult]:
    gaps = series_gaps(points)
    return [
        _range_check(asset, points),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name="no_gaps",
            passed=gaps.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"series_with_gaps": len(gaps), "gaps": md_table(gaps, 15)},
        ),
    ]


RANGE_SPEC = dict(
    name="value_ranges",
    description="Percents in [0, 100], rates in [0, 1], counts, sizes and latencies not negative.",
)


@dg.asset(
    **_common,
    kinds={"python", "sqlite"},
    check_specs=[
        dg.AssetCheckSpec(**RANGE_SPEC, asset="raw_metrics"),
        dg.AssetCheckSpec("no_gaps", asset="raw_metrics", description="No series has a gap over 3x its median step."),
    ],
    freshness_policy=HOURLY_FRESHNESS,
)
def raw_metrics(
    context: dg.AssetExecutionContext, store: MetricsStoreResource, landing: LandingZone
) -> dg.MaterializeResult:
    """Long-format metric files from the landing zone (host sampler spool, agents, simulator) for the hour(s)."""
    start, end = window(context)
    with store.open() as s:
        report = ingest_metric_files(s, landing.path / "metrics", start, end)
    context.log.info(f"raw_metrics {start}..{end}: {report.rows} points from {len(report.files)} files")
    return dg.MaterializeResult(
        metadata=_report_metadata(report, start, end),
        check_results=_quality_checks("raw_metrics", report.data),
    )


@dg.asset(
    **_common,
    kinds={"python", "sqlite"},
    check_specs=[
        dg.AssetCheckSpec(**RANGE_SPEC, asset="channel_calls"),
        dg.AssetCheckSpec("quarantine_rate", asset="channel_calls", description="Under 1% of call rows rejected."),
    ],
)
def channel_calls(
    context: dg.AssetExecutionContext, store: MetricsStoreResource, landing: LandingZone
) -> dg.MaterializeResult:
    """API/LLM gateway call logs for the hour(s): calls kept one per call_id, plus per-minute channel metrics."""
    start, end = window(context)
    with store.open() as s:
        report = ingest_call_logs(s, landing.path / "calls", start, end)
    rate = report.quarantine_rate
    # channel metrics exist only for minutes with calls, so gaps are expected here
    checks = [
        _range_check("channel_calls", report.data),
        dg.AssetCheckResult(
            asset_key="channel_calls",
            check_name="quarantine_rate",
            passed=rate < 0.01,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rate": rate},
        ),
    ]
    return dg.MaterializeResult(metadata=_report_metadata(report, start, end), check_results=checks)


def _failure_text(entry: dg.EventLogEntry) -> str | None:
    """The user's own error of a step failure (its root cause), else the event's message."""
    event = entry.dagster_event
    if event is not None and event.is_step_failure:
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            return f"{event.step_key}: {error.message.strip()}"
    return None if event is not None and event.is_step_failure else entry.message


def _run_dicts(instance: dg.DagsterInstance, start: pd.Timestamp, end: pd.Timestamp) -> list[dict]:
    records = instance.get_run_records(
        # created_after is exclusive: step back a microsecond so a run created exactly on the hour is in it
        filters=dg.RunsFilter(
            created_after=(start - pd.Timedelta("1us")).to_pydatetime(), created_before=end.to_pydatetime()
        )
    )
    out = []
    for rec in records:
        run = rec.dagster_run
        failure = None
        if run.status == dg.DagsterRunStatus.FAILURE:
            events = instance.all_logs(
                run.run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
            )
            failure = "; ".join(filter(None, (_failure_text(e) for e in events)))[:2000] or "failed"
        out.append(
            {
                "run_id": run.run_id,
                "job": run.job_name,
                "status": run.status.value,
                "start": pd.Timestamp(rec.start_time, unit="s", tz="UTC") if rec.start_time else None,
                "end": pd.Timestamp(rec.end_time, unit="s", tz="UTC") if rec.end_time else None,
                "failure": failure,
                "partition": run.tags.get("dagster/partition"),
                "created": pd.Timestamp(rec.create_timestamp),
            }
        )
    return out


@dg.asset(**_common, kinds={"dagster"})
def run_history(context: dg.AssetExecutionContext, store: MetricsStoreResource) -> dg.MaterializeResult:
    """Dagster's own runs created in the hour(s): job, status, start, end, failure message."""
    start, end = window(context)
    runs = run_records_frame(_run_dicts(context.instance, start, end))
    with store.open() as s:
        report = ingest_runs(s, runs)
    by_status = runs.groupby("status").size().rename("runs").reset_index() if not runs.empty else runs
    return dg.MaterializeResult(
        metadata={
            "runs": dg.MetadataValue.int(report.rows),
            "failures": report.extra.get("failures", 0),
            "by_status": md_table(by_status),
        }
    )


@dg.asset(
    **_common,
    kinds={"pandas"},
    deps=[raw_metrics, channel_calls, run_history],
    freshness_policy=HOURLY_FRESHNESS,
)
def hourly_rollups(context: dg.AssetExecutionContext, store: MetricsStoreResource) -> dg.MaterializeResult:
    """Mean, p50, p95, max and count per source, metric and hour."""
    start, end = window(context)
    with store.open() as s:
        rollups = build_rollups(s, start, end)
        cpu = s.read_metrics(start, end, metrics=["cpu_percent"])
    metadata = {
        "rows": dg.MetadataValue.int(len(rollups)),
        "series": dg.MetadataValue.int(int(rollups[["source", "metric"]].drop_duplicates().shape[0])),
        "highest_p95": md_table(highest_per_metric(rollups), 30),
    }
    if not cpu.empty:
        span = f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC"
        metadata["cpu_percent"] = plot_series(cpu, "cpu_percent", f"cpu_percent, {span}")
    for key, a, b in partitions_of(context):
        hour = rollups[(pd.to_datetime(rollups["ts"], utc=True) >= a) & (pd.to_datetime(rollups["ts"], utc=True) < b)]
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                partition=key,
                metadata={"rows": len(hour), "highest_p95": md_table(highest_per_metric(hour), 30)},
            )
        )
    return dg.MaterializeResult(metadata=run_scoped(context, metadata))


LIVE_HOURS = pd.Timedelta("2h")  # a materialization reaching this close to now is about the live sampler


@dg.asset_check(
    asset=raw_metrics,
    description="The host sampler of this code location's host wrote a sample in the last 2 minutes. Judged when "
    "the hours materialized reach the last two hours (hourly ingestion); a backfill or the demo seed of history "
    "says nothing about the live sampler and is reported as not judged.",
)
def host_samples_fresh(context: dg.AssetCheckExecutionContext, store: MetricsStoreResource) -> dg.AssetCheckResult:
    host = sampler_host()
    now = pd.Timestamp.now(tz="UTC")
    if context.has_partition_key or context.has_partition_key_range:
        end = pd.Timestamp(context.partition_time_window.end).tz_convert("UTC")
        if end < now - LIVE_HOURS:
            return dg.AssetCheckResult(
                passed=True,
                metadata={"host": host, "judged": False, "why": f"history up to {end:%Y-%m-%d %H:%M} UTC"},
            )
    with store.open() as s:
        recent = s.read_metrics(
            now - pd.Timedelta("1h"), now + pd.Timedelta("1min"), sources=[host], metrics=["cpu_percent"]
        )
    age_s = (now - recent["ts"].max()).total_seconds() if not recent.empty else None
    return dg.AssetCheckResult(
        passed=age_s is not None and age_s <= 120,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"host": host, "newest_sample_age_s": age_s if age_s is not None else "none in the last hour"},
    )


ingestion_assets = [raw_metrics, channel_calls, run_history, hourly_rollups]
ingestion_checks = [host_samples_fresh]
