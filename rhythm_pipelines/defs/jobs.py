"""Jobs: the hourly run the host sampler launches (ingestion, then anomaly detection), and anomaly alone."""

import dagster as dg

from rhythm_pipelines.defs.anomaly import anomaly_detection, anomaly_job
from rhythm_pipelines.defs.ingestion import INGESTION_GROUP

hourly_ingestion_job = dg.define_asset_job(
    "hourly_ingestion_job",
    selection=dg.AssetSelection.groups(INGESTION_GROUP) | dg.AssetSelection.assets(anomaly_detection),
    description="Raw ingestion, rollups, then anomaly scores and events of one hour (the host sampler launches "
    "it as each hour closes).",
)

__all__ = ["anomaly_job", "hourly_ingestion_job"]
