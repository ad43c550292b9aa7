"""Anomaly detection: scores and alert events per hour (after ingestion), and the detectors' scorecard."""

import os
from collections.abc import Iterator

import dagster as dg
import pandas as pd
from pydantic import Field

from rhythm_pipelines.anomaly import pipeline
from rhythm_pipelines.anomaly.profiles import AUTO
from rhythm_pipelines.anomaly.range_report import SCORE_CAP, events_table, incidents, readable_score, score_range
from rhythm_pipelines.anomaly.series import METHODS
from rhythm_pipelines.defs.ingestion import channel_calls, raw_metrics, window
from rhythm_pipelines.defs.metadata import dashboard_link, md_table, num, partitions_of, plot_flags, run_scoped
from rhythm_pipelines.defs.partitions import hourly_partitions
from rhythm_pipelines.defs.resources import MetricsStoreResource

ANOMALY_GROUP = "anomaly"
SIM_START = pd.Timestamp("2026-03-02", tz="UTC")  # a fixed start: the scorecard's simulator is deterministic


class AnomalyConfig(dg.Config):
    method: str = Field(
        default=AUTO,
        description=f"'{AUTO}' (each metric by its profile: channels on raw calls, host gauges on a fixed bar), "
        f"or one detector for every series: {', '.join(METHODS)}, or a+b+...",
    )
    history_hours: float = Field(
        default=pipeline.DEFAULT_HISTORY / pd.Timedelta("1h"),
        description="Hours read before the window so the detectors' trailing windows are warm (seasonal: 168+).",
    )
    min_points: int = Field(default=pipeline.MIN_POINTS, description="Series with fewer points are skipped.")
    include_processes: bool = Field(default=True, description="Score per-process sources (host/proc/...).")
    max_flags_per_series_hour: float = Field(default=1.0, description="alert_rate check: flagged points ceiling.")
    max_events_per_series_hour: float = Field(default=0.25, description="alert_rate check: events ceiling.")


@dg.multi_asset(
    name="anomaly_detection",
    specs=[
        dg.AssetSpec(
            "anomaly_scores",
            deps=[raw_metrics, channel_calls],
            description="Causal anomaly score of every point of every scored series, stored as derived series "
            "'anomaly_score:<metric>' of the same source (1 = the alert bar; flagged points tagged).",
            group_name=ANOMALY_GROUP,
            kinds={"python", "sqlite"},
        ),
        dg.AssetSpec(
            "anomaly_events",
            deps=["anomaly_scores"],
            description="Alert events (one per excursion) that start in the hour(s), upserted by stable id "
            "into the store's events table; events still open from earlier hours get their new end.",
            group_name=ANOMALY_GROUP,
            kinds={"python", "sqlite"},
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "finite_scores", asset="anomaly_scores", description="Every scored point has a finite score."
        ),
        dg.AssetCheckSpec(
            "alert_rate",
            asset="anomaly_events",
            description="Flagged points and events per scored series per hour stay under their ceilings "
            "(above them the detector has gone noisy).",
        ),
    ],
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def anomaly_detection(
    context: dg.AssetExecutionContext, config: AnomalyConfig, store: MetricsStoreResource
) -> Iterator[dg.MaterializeResult]:
    """Score the hour(s) with history before them, a day of a range at a time; store scores and events."""
    start, end = window(context)
    with store.open() as s:
        report = score_range(
            s,
            start,
            end,
            config.method,
            pd.Timedelta(hours=config.history_hours),
            config.min_points,
            config.include_processes,
            progress=context.log.info,
        )
    series = report.series
    context.log.info(
        f"anomaly {start}..{end} ({config.method}): {len(series)} series, {report.flagged} flags, "
        f"{len(report.events)} new events, {len(report.continued)} continued"
    )

    yield dg.MaterializeResult(
        asset_key="anomaly_scores",
        metadata=run_scoped(
            context,
            {
                "window": f"{start.isoformat()} … {end.isoformat()}",
                "method": config.method,
                "history_hours": config.history_hours,
                "series_scored": dg.MetadataValue.int(len(series)),
                "points_scored": dg.MetadataValue.int(int(series["points"].sum())),
                "points_written": dg.MetadataValue.int(report.points_written),
                "flagged_points": dg.MetadataValue.int(report.flagged),
                "series_skipped": dg.MetadataValue.int(len(report.skipped)),
                "by_metric": md_table(report.by_metric()),
                "skipped": md_table(report.skipped, 15),
            },
        ),
        check_results=[
            dg.AssetCheckResult(
                asset_key="anomaly_scores",
                check_name="finite_scores",
                passed=report.nonfinite.empty,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"nonfinite": len(report.nonfinite), "examples": md_table(report.nonfinite, 10)},
            )
        ],
    )

    rates = report.rates()
    grouped = incidents(report.events)
    events_meta = {
        "incidents": dg.MetadataValue.int(len(grouped)),
        "events": dg.MetadataValue.int(len(report.events)),
        "continued_events": dg.MetadataValue.int(len(report.continued)),
        "rows_upserted": dg.MetadataValue.int(report.events_written),
        "by_severity": md_table(report.severity_counts()),
        "incident_list": md_table(grouped, 30),
        "score_scale": "scores are multiples of the alert bar (1× = the bar; major from 1.5×, critical from 3×), "
        f"shown up to {SCORE_CAP:g}×",
        "table": md_table(events_table(report.events), 30),
        "continued": md_table(events_table(report.continued), 10),
    }
    if not report.top.empty:
        top = report.top
        src, met = top["source"].iloc[0], top["metric"].iloc[0]
        peak = readable_score(float(top["score"].max()))
        title = f"{src} {met}: {int(top['flagged'].sum())} flagged points, peak {peak} the alert bar"
        events_meta["most_anomalous"] = plot_flags(top, title, ylabel=met)
    for key, a, b in partitions_of(context):
        mine = [e for e in report.events if a <= e.start < b]
        context.log_event(
            dg.AssetObservation(
                asset_key="anomaly_events",
                partition=key,
                metadata={"events": len(mine), "incidents": md_table(incidents(mine), 10)},
            )
        )
    yield dg.MaterializeResult(
        asset_key="anomaly_events",
        metadata=run_scoped(context, events_meta),
        check_results=[
            dg.AssetCheckResult(
                asset_key="anomaly_events",
                check_name="alert_rate",
                passed=rates["flags_per_series_hour"] <= config.max_flags_per_series_hour
                and rates["events_per_series_hour"] <= config.max_events_per_series_hour,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    **{k: num(v) for k, v in rates.items()},
                    "max_flags_per_series_hour": config.max_flags_per_series_hour,
                    "max_events_per_series_hour": config.max_events_per_series_hour,
                    "noisiest": md_table(report.noisiest(), 10),
                },
            )
        ],
    )


class ScorecardConfig(dg.Config):
    sim_days: float = Field(default=3.0, description="Days of simulated fleet (fixed start, labelled incidents).")
    sim_seed: int = 7
    methods: list[str] = Field(default=[], description="Detectors to score (empty: every method).")
    nab_dir: str = Field(default="", description="NAB-format data directory (default: $RHYTHM_NAB_DIR; unset: skip).")
    nab_windows: str = Field(
        default="",
        description="Labelled windows JSON (default: $RHYTHM_NAB_WINDOWS, else ../labels/combined_windows.json).",
    )


@dg.asset(
    group_name=ANOMALY_GROUP,
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec("every_method_scored", asset="detector_scorecard", description="No detector raised."),
    ],
)
def detector_scorecard(context: dg.AssetExecutionContext, config: ScorecardConfig) -> dg.MaterializeResult:
    """Window precision, recall and F1 of every detector on a simulated fleet, and on NAB when configured: held
    out by category (each NAB category scored with the constants chosen on the others) beside in-sample."""
    from rhythm_pipelines.anomaly.evaluate import nab_paths, nab_report, score_simulation, simulation_example
    from rhythm_pipelines.anomaly.tuning import GRID
    from rhythm_pipelines.simulate import SimConfig, simulate

    methods = list(config.methods) or [AUTO, *METHODS]
    sim = simulate(SimConfig(days=config.sim_days, seed=config.sim_seed, start=SIM_START))
    sim_name = f"simulator ({config.sim_days:g} d, seed {config.sim_seed})"
    rows, errors = [], []

    def run(dataset: str, method: str, fn) -> None:
        try:
            _, score = fn(method)
        except Exception as exc:  # one broken detector must not hide the others' scores
            context.log.warning(f"{method} on {dataset}: {exc!r}")
            errors.append({"dataset": dataset, "method": method, "error": f"{type(exc).__name__}: {exc}"[:300]})
            return
        rows.append({"dataset": dataset, "method": method, **score.as_dict()})

    for method in methods:
        run(sim_name, method, lambda m: score_simulation(sim, m))

    nab_dir = config.nab_dir or os.environ.get("RHYTHM_NAB_DIR", "")
    categories: list[dict] = []
    if nab_dir:
        data, windows_path = nab_paths(nab_dir, config.nab_windows or os.environ.get("RHYTHM_NAB_WINDOWS"))
        for method in methods:
            try:
                report = nab_report(data, windows_path, method)
            except Exception as exc:  # one broken detector must not hide the others' scores
                context.log.warning(f"{method} on NAB: {exc!r}")
                errors.append({"dataset": "NAB", "method": method, "error": f"{type(exc).__name__}: {exc}"[:300]})
                continue
            if report["held_out"] is not None:
                rows.append({"dataset": "NAB held-out", "method": method, **report["held_out"]})
            rows.append({"dataset": "NAB in-sample", "method": method, **report["in_sample"]})
            categories += [
                {"method": method, "category": c, **s, "in_sample_f1": report["in_sample_by_category"][c]["f1"]}
                for c, s in report["by_category"].items()
            ]
        nab_note = f"{data} (windows {windows_path}); held out = leave-one-category-out over {len(GRID)} settings"
    else:
        nab_note = "skipped: set RHYTHM_NAB_DIR (and RHYTHM_NAB_WINDOWS) or the nab_dir config to score NAB"

    table = pd.DataFrame(rows, columns=["dataset", "method", "tp", "fp", "fn", "precision", "recall", "f1"])
    table = table.sort_values(["dataset", "f1"], ascending=[True, False], kind="stable")
    metadata = {
        "scorecard": md_table(table, 50),
        "dashboard": dashboard_link("/"),
        "nab": nab_note,
        "nab_by_category": md_table(pd.DataFrame(categories), 60),
        "simulated_incidents": dg.MetadataValue.int(len(sim.incidents)),
        "errors": md_table(pd.DataFrame(errors, columns=["dataset", "method", "error"])),
    }
    keys = {"NAB held-out": "nab", "NAB in-sample": "nab_in_sample"}
    for r in rows:  # numeric entries, so the UI plots each F1 across materializations
        key = keys.get(r["dataset"], "sim")
        metadata[f"f1_{key}_{r['method']}"] = dg.MetadataValue.float(num(float(r["f1"])))
    scored = [r["method"] for r in rows if r["dataset"] == sim_name]
    if scored:
        shown = AUTO if AUTO in scored else scored[0]
        frame, labelled, source, metric = simulation_example(sim, shown)
        metadata["example"] = plot_flags(
            frame,
            f"{source} {metric} ({shown}): incidents shaded, alerts marked",
            windows=labelled,
            ylabel=metric,
        )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="every_method_scored",
                passed=not errors,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"failed": ", ".join(f"{e['method']} on {e['dataset']}" for e in errors) or "none"},
            )
        ],
    )


anomaly_assets = [anomaly_detection, detector_scorecard]
anomaly_job = dg.define_asset_job(
    "anomaly_job",
    selection=dg.AssetSelection.assets(anomaly_detection),
    description="Anomaly scores and events of the hour(s) alone: re-score history with another method or config.",
)
