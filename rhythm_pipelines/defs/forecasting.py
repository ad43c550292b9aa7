"""Forecasting: walk-forward daily training into the model registry, how each day's models forecast the next
day, and live 15 min / 1 h forecasts of channel latency and host CPU and memory load."""

import os
from collections.abc import Iterator

import dagster as dg
import pandas as pd
from pydantic import Field

from rhythm_pipelines.defs.ingestion import channel_calls, raw_metrics, window
from rhythm_pipelines.defs.metadata import dashboard_link, md_table, num, plot_forecast
from rhythm_pipelines.defs.partitions import daily_partitions
from rhythm_pipelines.defs.resources import MetricsStoreResource, ModelRegistryResource, healing_from_env
from rhythm_pipelines.forecasting.day_report import DayReport, score_day
from rhythm_pipelines.forecasting.drift import BASELINE_DAYS, drifted
from rhythm_pipelines.forecasting.first_models import train_first, without_models
from rhythm_pipelines.forecasting.live import NO_MODEL, forecast_now, horizon_label
from rhythm_pipelines.forecasting.models import DEFAULT_MODELS
from rhythm_pipelines.forecasting.serving import DEFAULT_HORIZONS
from rhythm_pipelines.forecasting.targets import TARGETS, ForecastTarget, target
from rhythm_pipelines.forecasting.training import TrainReport, train_window
from rhythm_pipelines.healing.pause import PRIORITY_TAG, paused_by

FORECAST_GROUP = "forecasting"
DAY = pd.Timedelta("1D")


def partition_tag(day: pd.Timestamp) -> str:
    """The registry tag of the models a daily partition trained."""
    return f"partition-{day:%Y-%m-%d}"


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of the same columns, one per day, the empty ones left out (their columns kept)."""
    full = [f for f in frames if not f.empty]
    return pd.concat(full, ignore_index=True) if full else frames[0]


def _days(context: dg.AssetExecutionContext) -> list[pd.Timestamp]:
    start, end = window(context)
    return list(pd.date_range(start, end - DAY, freq=DAY))


class TrainConfig(dg.Config):
    targets: list[str] = Field(default=list(TARGETS), description=f"Of: {', '.join(TARGETS)}.")
    window_days: float = Field(default=7.0, description="Training window: this many days ending with the partition.")
    step: str = Field(
        default="",
        description="The forecasting grid for every target (empty: each target's own: "
        + ", ".join(f"{t.name} {t.step}" for t in TARGETS.values())
        + ").",
    )
    horizon: str = Field(default="1h", description="The longest horizon served (and selected for).")
    models: list[str] = Field(default=list(DEFAULT_MODELS), description="The zoo the selection chooses from.")
    min_history_hours: float = Field(default=12.0, description="Series with less history in the window are skipped.")
    n_jobs: int = Field(default=1, description="Processes training series in parallel.")


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[raw_metrics, channel_calls],
    group_name=FORECAST_GROUP,
    kinds={"python", "statsforecast"},
    check_specs=[
        dg.AssetCheckSpec(
            "every_series_trained",
            asset="forecaster_models",
            description="No target series failed to train.",
        )
    ],
)
def forecaster_models(
    context: dg.AssetExecutionContext,
    config: TrainConfig,
    store: MetricsStoreResource,
    model_registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    """Per target series, a model chosen by rolling-origin CV and fitted on the window that ends with the
    partition's day (walk-forward: a backfill builds the model history), saved as a new registry version
    tagged with the partition; the served version moves to it unless a newer day's model is served."""
    targets = [target(n) for n in config.targets]
    registry = model_registry.open()
    reports = []
    with store.open() as s:
        for day in _days(context):
            end = day + DAY
            context.log.info(f"training {day:%Y-%m-%d}: window {end - pd.Timedelta(days=config.window_days)}..{end}")
            report = train_window(
                s,
                registry,
                targets,
                end - pd.Timedelta(days=config.window_days),
                end,
                pd.Timedelta(config.horizon),
                partition_tag(day),
                config.models,
                pd.Timedelta(hours=config.min_history_hours),
                config.n_jobs,
                pd.Timedelta(config.step) if config.step else None,
                progress=context.log.info,
            )
            reports.append(report.rows.assign(day=f"{day:%Y-%m-%d}"))
    report = TrainReport(_concat(reports), 0.0)
    trained, failed, skipped = report.trained, report.failed, report.skipped
    shown = ["day", "target", "source", "model", "points", "cv_mae", "cv_naive_mae", "cv_skill", "fit_s", "version"]
    return dg.MaterializeResult(
        metadata={
            "registry": model_registry.root,
            "series_trained": dg.MetadataValue.int(len(trained)),
            "series_skipped": dg.MetadataValue.int(len(skipped)),
            "series_failed": dg.MetadataValue.int(len(failed)),
            "served_versions_moved": dg.MetadataValue.int(int(trained["served"].sum())),
            "mean_cv_skill_vs_naive": dg.MetadataValue.float(num(float(trained["cv_skill"].mean())))
            if len(trained)
            else dg.MetadataValue.float(float("nan")),
            "fit_s_total": dg.MetadataValue.float(num(float(trained["fit_s"].sum()))),
            # the CV skill chose the model, so it is in-sample for the choice; forecast_accuracy scores the
            # served model on the next day, which it never saw
            "cv_skill_is": dg.MetadataValue.text("in-sample (the score that chose the model); see forecast_accuracy"),
            "models_chosen": md_table(report.model_counts()),
            "trained": md_table(trained[shown], 40),
            "skipped": md_table(skipped[["day", "target", "source", "reason"]], 20),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="every_series_trained",
                passed=failed.empty,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"failed": md_table(failed[["day", "target", "source", "reason"]], 20)},
            )
        ],
    )


class AccuracyConfig(dg.Config):
    targets: list[str] = Field(default=list(TARGETS), description=f"Of: {', '.join(TARGETS)}.")
    skill_tolerance: float = Field(
        default=0.0, description="not_worse_than_naive warns below a skill of -tolerance (0: any loss to Naive)."
    )


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        dg.AssetDep(forecaster_models, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1))
    ],
    group_name=FORECAST_GROUP,
    kinds={"python"},
    output_required=False,
    check_specs=[
        dg.AssetCheckSpec(
            "not_worse_than_naive",
            asset="forecast_accuracy",
            description="Every model forecast its day at least as well as the last value would have.",
        )
    ],
)
def forecast_accuracy(
    context: dg.AssetExecutionContext,
    config: AccuracyConfig,
    store: MetricsStoreResource,
    model_registry: ModelRegistryResource,
) -> Iterator[dg.MaterializeResult]:
    """How the models trained on the day before (forecaster_models of the previous partition) forecast this
    day, walking forward point by point: MAE, MAPE, MASE and skill against Naive per series, with a plot of
    forecast against actual. A day whose previous day has no models is skipped (nothing materialized)."""
    targets = [target(n) for n in config.targets]
    registry = model_registry.open()
    rows, skipped, plots = [], [], {}
    with store.open() as s:
        for day in _days(context):
            report = score_day(s, registry, targets, day, day + DAY, partition_tag(day - DAY))
            context.log.info(f"{day:%Y-%m-%d}: {len(report.rows)} series scored, {len(report.skipped)} skipped")
            if len(report.rows):  # the drift sensor reads these days back
                s.write_table("forecast_accuracy", report.rows.assign(ts=day))
            rows.append(report.rows.assign(day=f"{day:%Y-%m-%d}"))
            skipped.append(report.skipped.assign(day=f"{day:%Y-%m-%d}"))
            plots.update({(day, *k): v for k, v in report.scores.items()})
    report = DayReport(_concat(rows), _concat(skipped), plots)
    table, missing = report.rows, report.skipped
    if table.empty:
        context.log.warning(
            "nothing to score: no model of the previous day(s) covers these days "
            f"({md_table(missing, 5).value if len(missing) else 'no target series in the store'}); "
            "materialize forecaster_models for the day before first"
        )
        return
    worse = report.worse_than_naive(config.skill_tolerance)
    metadata = {
        "dashboard": dashboard_link("/forecasts"),
        "series_scored": dg.MetadataValue.int(len(table)),
        "mean_skill_vs_naive": dg.MetadataValue.float(num(float(table["skill"].mean()))),
        "worst_skill_vs_naive": dg.MetadataValue.float(num(float(table["skill"].min()))),
        "coverage_80": dg.MetadataValue.float(num(float(table["coverage_80"].mean()))),  # target 0.80
        "coverage_95": dg.MetadataValue.float(num(float(table["coverage_95"].mean()))),  # target 0.95
        "by_target": md_table(report.by_target()),
        "accuracy": md_table(table[["day", *table.columns.drop("day")]], 40),
        "skipped": md_table(missing[["day", "target", "source", "reason"]], 20),
    }
    worst = table.loc[table["skill"].idxmin()]
    key = (pd.Timestamp(worst["day"], tz="UTC"), worst["target"], worst["source"])
    metadata["worst_series"] = _accuracy_plot(report.scores[key], worst)
    for r in report.by_target().itertuples():  # numeric per target, so the UI charts them across partitions
        metadata[f"mape_{r.target}"] = dg.MetadataValue.float(num(float(r.mape)))
        metadata[f"skill_{r.target}"] = dg.MetadataValue.float(num(float(r.mean_skill)))
    yield dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="not_worse_than_naive",
                passed=worse.empty,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "worse_than_naive": dg.MetadataValue.int(len(worse)),
                    "series": md_table(worse[["day", "target", "source", "model", "skill", "mae", "naive_mae"]], 20),
                },
            )
        ],
    )


def _accuracy_plot(score, row: pd.Series) -> dg.MarkdownMetadataValue:
    p = score.plot.set_index("ts")
    title = f"{row['day']} {row['source']} {row['target']} ({row['model']}): skill {row['skill']:+.1%}"
    return plot_forecast(
        p["actual"],
        {"1 step ahead": p["ahead_1"].dropna(), "horizon ahead": p["ahead_h"]},
        title,
        band=(p["lo"], p["hi"]),
        band_label="80% interval (horizon ahead)",
        ylabel=TARGETS[row["target"]].metric,
    )


class LiveConfig(dg.Config):
    now: str = Field(default="", description="Forecast from this UTC time (ISO); empty: the current time.")
    horizons: list[str] = Field(default=[horizon_label(h) for h in DEFAULT_HORIZONS])


def _live_asset(t: ForecastTarget) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{t.name}_forecasts",
        deps=[forecaster_models],
        group_name=FORECAST_GROUP,
        kinds={"python", "sqlite"},
        description=f"Forecasts of {t.description} per source for the next 15 min and 1 h (80/95 % "
        "intervals) from each source's served model, brought up to date with the points stored since its "
        "training; every step is kept in the store's forecasts table. Each says its origin (newest point); a "
        "source whose data is older than the longest horizon is refused and fails the check forecasts_are_live.",
        check_specs=[
            dg.AssetCheckSpec(
                "forecasts_are_live",
                asset=f"{t.name}_forecasts",
                description="Every source with a model was forecast: none stale (its newest point older than the "
                "longest horizon, or its model days behind) and none failing to catch up.",
            )
        ],
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: LiveConfig,
        store: MetricsStoreResource,
        model_registry: ModelRegistryResource,
    ) -> dg.MaterializeResult:
        now = pd.Timestamp(config.now or pd.Timestamp.now(tz="UTC"))
        now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
        horizons = [pd.Timedelta(h) for h in config.horizons]
        with store.open() as s:
            live = forecast_now(s, model_registry.open(), t, now, horizons)
            written = s.write_table("forecasts", live.points) if not live.points.empty else 0
        context.log.info(f"{t.name}: {len(live.summary)} sources forecast, {len(live.skipped)} skipped")
        stale = live.skipped[live.skipped["kind"] != NO_MODEL]  # a series with a model and no forecast
        metadata = {
            "now": now.isoformat(),
            "sources_forecast": dg.MetadataValue.int(len(live.summary)),
            "sources_skipped": dg.MetadataValue.int(len(live.skipped)),
            "sources_stale": dg.MetadataValue.int(len(stale)),
            "rows_written": dg.MetadataValue.int(written),
            "forecasts": md_table(live.summary, 40),
            "skipped": md_table(live.skipped, 20),
        }
        if not live.summary.empty:
            row = live.summary.iloc[0]
            source = row["source"]
            path = live.points[live.points["source"] == source].set_index("ts")
            metadata["example"] = plot_forecast(
                live.recent[source],
                {"forecast": path["mean"]},
                f"{source} {t.metric}: the next {horizon_label(max(horizons))} from {row['origin']:%Y-%m-%d %H:%M} UTC",
                band=(path["lo_80"], path["hi_80"]),
                ylabel=t.metric,
            )
        check = dg.AssetCheckResult(
            check_name="forecasts_are_live",
            passed=stale.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"stale_sources": len(stale), "stale": md_table(stale, 20)},
        )
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    return _asset


live_forecast_assets = [_live_asset(t) for t in TARGETS.values()]
latency_forecasts, cpu_forecasts, memory_forecasts = live_forecast_assets

forecast_training_job = dg.define_asset_job(
    "forecast_training_job",
    selection=dg.AssetSelection.assets(forecaster_models, forecast_accuracy),
    description="Train the day's models (walk-forward window) and score the previous day's models on it.",
)
live_forecasts_job = dg.define_asset_job(
    "live_forecasts_job",
    selection=dg.AssetSelection.assets(*live_forecast_assets),
    description="Latency, CPU and memory forecasts for the next 15 min and 1 h from the served models.",
    tags={PRIORITY_TAG: "low"},  # healing cancels its queued runs while it pauses low-priority work
)
forecast_training_schedule = dg.build_schedule_from_partitioned_job(
    forecast_training_job,
    name="forecast_training_schedule",
    hour_of_day=0,
    minute_of_hour=30,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly: retrain on the window ending with yesterday, and score the day before's models.",
)


@dg.schedule(
    name="live_forecasts_schedule",
    job=live_forecasts_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    tags={PRIORITY_TAG: "low"},
    description="Every 15 minutes: fresh forecasts from the served models. Low priority: skipped while healing "
    "pauses low-priority work.",
)
def live_forecasts_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    held = paused_by(healing_from_env().paused_file, pd.Timestamp.now(tz="UTC"))
    if held:
        return dg.SkipReason(f"low-priority work paused by healing event(s): {', '.join(held)}")
    return dg.RunRequest()


FIRST_MODEL_INTERVAL_S = 600


class FirstModelsConfig(dg.Config):
    series: list[str] = Field(description="target:source pairs that have no served model yet")


@dg.op(description="Train a first model for series that have none, on the history they have (up to 7 days to now).")
def train_first_models(
    context: dg.OpExecutionContext,
    config: FirstModelsConfig,
    store: MetricsStoreResource,
    model_registry: ModelRegistryResource,
) -> None:
    with store.open() as s:
        rows = train_first(s, model_registry.open(), config.series, pd.Timestamp.now(tz="UTC"), context.log.info)
    for r in rows.itertuples(index=False):
        context.log.info(f"{r.target} {r.source}: {r.status}" + (f" ({r.reason})" if r.status != "trained" else ""))


@dg.job(
    description="First models for series that have none yet (the nightly training takes over from the next night).",
    tags={PRIORITY_TAG: "low"},
)
def forecast_first_models_job():
    train_first_models()


@dg.sensor(
    job=forecast_first_models_job,
    minimum_interval_seconds=FIRST_MODEL_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 10 min: target series (this host's CPU and memory, channel latency) with no served model "
    "but 3 h of history get a first model now, not at the next nightly training.",
)
def first_models_sensor(
    context: dg.SensorEvaluationContext, store: MetricsStoreResource, model_registry: ModelRegistryResource
):
    now = pd.Timestamp.now(tz="UTC")
    with store.open() as s:
        ready, waiting = without_models(s, model_registry.open(), now)
    if not ready:
        return dg.SkipReason(f"no series ready for a first model ({len(waiting)} still gathering 3 h of history)")
    return dg.RunRequest(
        run_key=f"first-models-{now:%Y-%m-%dT%H}-{len(ready)}",
        run_config={"ops": {"train_first_models": {"config": {"series": ready}}}},
    )


DRIFT_INTERVAL_S = int(os.environ.get("RHYTHM_DRIFT_INTERVAL_S", "600"))
RETRAIN_MIN_WINDOW = pd.Timedelta(hours=12)  # a regime younger than this: train on the last 12 h anyway


class RetrainConfig(dg.Config):
    series: list[str] = Field(description="target:source pairs to retrain")
    since: str = Field(description="where the new regime starts (UTC): the training window begins there")
    reason: str = Field(default="", description="why (the drift sensor's verdict)")


@dg.op(description="Retrain the drifting series on the data since their regime changed, and serve the new models.")
def retrain_series(
    context: dg.OpExecutionContext, config: RetrainConfig, store: MetricsStoreResource,
    model_registry: ModelRegistryResource,
) -> None:  # fmt: skip
    now = pd.Timestamp.now(tz="UTC")
    window = max(now - pd.Timestamp(config.since), RETRAIN_MIN_WINDOW)
    context.log.info(f"retraining {', '.join(config.series)} on the last {window} because {config.reason}")
    with store.open() as s:
        rows = train_first(s, model_registry.open(), config.series, now, context.log.info, window, tag="drift")
    for r in rows.itertuples(index=False):
        context.log.info(f"{r.target} {r.source}: {r.status}" + (f" ({r.reason})" if r.status != "trained" else ""))
    if rows.empty or not (rows["status"] == "trained").any():
        raise dg.Failure(description=f"nothing retrained for {', '.join(config.series)}", allow_retries=False)


@dg.job(description="Retrain the series the drift sensor names (not the fleet), on the data since they changed.")
def forecast_retrain_job():
    retrain_series()


@dg.sensor(
    job=forecast_retrain_job,
    minimum_interval_seconds=DRIFT_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 10 min: a series whose model lost to Naive 3 scored days running, or whose MAE jumped to 3x "
    "its 7-day median (forecast_accuracy), is retrained alone on the data since the change; the reason rides on "
    "the run (tag rhythm/retrain_reason) and its log. Once per series and scored day (run_key).",
)
def forecast_drift_sensor(context: dg.SensorEvaluationContext, store: MetricsStoreResource):
    now = pd.Timestamp.now(tz="UTC")
    with store.open() as s:
        accuracy = s.read_table("forecast_accuracy", now.floor("D") - pd.Timedelta(days=BASELINE_DAYS + 2), now)
    drifts = drifted(accuracy) if len(accuracy) else []
    if not drifts:
        return dg.SkipReason(f"no drift in {accuracy[['target', 'source']].drop_duplicates().shape[0]} scored series")
    return [
        dg.RunRequest(
            run_key=f"retrain|{d.series}|{d.day:%Y-%m-%d}",
            run_config=dg.RunConfig(
                ops={"retrain_series": RetrainConfig(series=[d.series], since=d.since.isoformat(), reason=d.reason)}
            ),
            tags={"rhythm/retrain_series": d.series[:200], "rhythm/retrain_reason": d.reason[:250]},
        )
        for d in drifts
    ]


forecasting_assets = [forecaster_models, forecast_accuracy, *live_forecast_assets]
