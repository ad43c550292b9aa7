"""The one Definitions object of the rhythm_pipelines code location."""

import dagster as dg

from rhythm_pipelines.defs import chaos
from rhythm_pipelines.defs.anomaly import anomaly_assets
from rhythm_pipelines.defs.cost import (
    budget_alert_job,
    budget_sensor,
    cost_assets,
    cost_from_env,
    cost_jobs,
    cost_schedules,
)
from rhythm_pipelines.defs.demo import demo_planned_jobs, demo_traffic
from rhythm_pipelines.defs.forecasting import (
    first_models_sensor,
    forecast_drift_sensor,
    forecast_first_models_job,
    forecast_retrain_job,
    forecast_training_job,
    forecast_training_schedule,
    forecasting_assets,
    live_forecasts_job,
    live_forecasts_schedule,
)
from rhythm_pipelines.defs.healing import (
    healing_jobs,
    healing_log,
    healing_report,
    healing_schedules,
    healing_sensors,
    incidents_resolved,
)
from rhythm_pipelines.defs.ingestion import ingestion_assets, ingestion_checks
from rhythm_pipelines.defs.jobs import anomaly_job, hourly_ingestion_job
from rhythm_pipelines.defs.learning import learning_assets, learning_jobs, learning_schedules, learning_sensors
from rhythm_pipelines.defs.resources import healing_from_env, landing_from_env, registry_from_env, store_from_env
from rhythm_pipelines.defs.scheduling import (
    scheduling_assets,
    scheduling_jobs,
    scheduling_schedules,
    scheduling_sensors,
)
from rhythm_pipelines.defs.sensors import host_sampler

defs = dg.Definitions(
    assets=[
        *ingestion_assets,
        *anomaly_assets,
        *forecasting_assets,
        healing_log,
        healing_report,
        *cost_assets,
        *scheduling_assets,
        *learning_assets,
        *(chaos.chaos_assets if chaos.enabled() else []),
    ],
    asset_checks=[*ingestion_checks, incidents_resolved],
    jobs=[
        hourly_ingestion_job,
        anomaly_job,
        forecast_training_job,
        live_forecasts_job,
        forecast_first_models_job,
        forecast_retrain_job,
        *healing_jobs,
        budget_alert_job,
        *cost_jobs,
        *demo_planned_jobs,
        *scheduling_jobs,
        *learning_jobs,
        *(chaos.chaos_jobs if chaos.enabled() else []),
    ],
    schedules=[
        forecast_training_schedule,
        live_forecasts_schedule,
        *healing_schedules,
        *cost_schedules,
        *scheduling_schedules,
        *learning_schedules,
    ],
    sensors=[
        host_sampler,
        *healing_sensors,
        budget_sensor,
        first_models_sensor,
        forecast_drift_sensor,
        demo_traffic,
        *scheduling_sensors,
        *learning_sensors,
    ],
    resources={
        "store": store_from_env(),
        "landing": landing_from_env(),
        "model_registry": registry_from_env(),
        "healing": healing_from_env(),
        "cost": cost_from_env(),
    },
)
