"""Resources: the metrics store (SQLite by default, InfluxDB for fleets) and the landing zone."""

from __future__ import annotations

import os
import socket
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from rhythm_pipelines.home import healing_dir, influx_settings, landing_dir, sqlite_path, store_kind
from rhythm_pipelines.metrics.store import MetricsStore

if TYPE_CHECKING:
    from rhythm_pipelines.forecasting.registry import ModelRegistry


def sampler_host() -> str:
    """The host name this code location's sampler reports (``$RHYTHM_HOST``, default the hostname)."""
    return os.environ.get("RHYTHM_HOST", socket.gethostname())


class MetricsStoreResource(dg.ConfigurableResource):
    """A configured metrics store; ``open()`` gives a :class:`MetricsStore` to use in a ``with`` block."""

    @abstractmethod
    def open(self) -> MetricsStore: ...


class SQLiteStoreResource(MetricsStoreResource):
    """The embedded default: one SQLite file."""

    path: str

    def open(self) -> MetricsStore:
        from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore

        return SQLiteMetricsStore(self.path)


class InfluxStoreResource(MetricsStoreResource):
    """InfluxDB through influxdb-client; ``url`` and ``token`` come from environment variables."""

    url: str
    token: str
    org: str = "rhythm"
    bucket: str = "rhythm"
    batch_size: int = 5000

    def open(self) -> MetricsStore:
        from rhythm_pipelines.metrics.influx import InfluxMetricsStore

        return InfluxMetricsStore(self.url, self.token, self.org, self.bucket, self.batch_size)


class LandingZone(dg.ConfigurableResource):
    """Files that raw ingestion reads: ``metrics/`` (long format, incl. the host spool) and ``calls/``."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)


def store_from_env() -> MetricsStoreResource:
    """``RHYTHM_STORE=influx`` selects InfluxDB (``RHYTHM_INFLUX_URL``/``_TOKEN``/``_ORG``/``_BUCKET``)."""
    if store_kind() == "influx":
        return InfluxStoreResource(
            url=dg.EnvVar("RHYTHM_INFLUX_URL"), token=dg.EnvVar("RHYTHM_INFLUX_TOKEN"), **influx_settings()
        )
    return SQLiteStoreResource(path=sqlite_path())


def landing_from_env() -> LandingZone:
    return LandingZone(root=str(landing_dir()))


class ModelRegistryResource(dg.ConfigurableResource):
    """The versioned model registry (a local directory, or S3 through boto3's default credentials). With
    ``hmac_key`` it saves signed versions and loads only those (see ``forecasting/registry.py``)."""

    root: str
    hmac_key: str = ""

    def open(self) -> ModelRegistry:
        from rhythm_pipelines.forecasting.registry import ModelRegistry

        return ModelRegistry(self.root, hmac_key=self.hmac_key)


def registry_from_env() -> ModelRegistryResource:
    """``$RHYTHM_MODEL_REGISTRY`` and the signing key ``$RHYTHM_MODEL_HMAC_KEY`` (a secret: read through EnvVar)."""
    from rhythm_pipelines.forecasting.registry import HMAC_ENV, default_root

    key = dg.EnvVar(HMAC_ENV) if os.environ.get(HMAC_ENV) else ""
    return ModelRegistryResource(root=default_root(), hmac_key=key)


class HealingResource(dg.ConfigurableResource):
    """Playbooks, the healing state directory (routes, pauses, reboot plans, alerts) and the admin webhook."""

    state_dir: str
    playbooks: str = ""  # a playbook file; empty: $RHYTHM_PLAYBOOKS, else the shipped recovery_playbooks.yaml
    webhook_url: str = ""  # Slack-compatible incoming webhook; empty: alerts go to the log and alerts.jsonl
    dry_run: bool = False  # forces dry run whatever the playbooks say

    def books(self):
        from dataclasses import replace

        from rhythm_pipelines.healing.playbooks import load

        books = load(self.playbooks or None)
        return replace(books, safety=replace(books.safety, dry_run=True)) if self.dry_run else books

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def paused_file(self) -> Path:
        return self.state_path / "paused.json"

    def notifier(self):
        from rhythm_pipelines.healing.notify import Notifier

        return Notifier(self.webhook_url or None, self.state_path / "alerts.jsonl")


def healing_from_env() -> HealingResource:
    """``$RHYTHM_HEALING_DIR`` (default ``$RHYTHM_HOME/healing``), ``$RHYTHM_PLAYBOOKS``, ``$RHYTHM_ADMIN_WEBHOOK``
    (a secret: read through EnvVar) and ``$RHYTHM_HEALING_DRY_RUN=1``."""
    return HealingResource(
        state_dir=str(healing_dir()),
        playbooks=os.environ.get("RHYTHM_PLAYBOOKS", ""),
        webhook_url=dg.EnvVar("RHYTHM_ADMIN_WEBHOOK") if os.environ.get("RHYTHM_ADMIN_WEBHOOK") else "",
        dry_run=os.environ.get("RHYTHM_HEALING_DRY_RUN", "") in ("1", "true", "yes"),
    )
