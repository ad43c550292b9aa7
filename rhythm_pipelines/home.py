"""Where rhythm keeps its state, and which store it uses: one answer for the CLI and for Dagster.

- ``$RHYTHM_HOME`` (default ``./.rhythm``): the embedded store, landing zone, models, reports, healing state.
- ``$RHYTHM_STORE`` (``sqlite`` | ``influx``) with ``$RHYTHM_SQLITE_PATH`` or ``$RHYTHM_INFLUX_URL``/``_ORG``/
  ``_BUCKET`` (the token: ``$RHYTHM_INFLUX_TOKEN``) names the metrics store.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode, urlparse


def rhythm_home() -> Path:
    """``$RHYTHM_HOME`` (default ``./.rhythm``), absolute."""
    return Path(os.environ.get("RHYTHM_HOME", ".rhythm")).resolve()


def landing_dir() -> Path:
    """``$RHYTHM_LANDING_DIR`` (default ``$RHYTHM_HOME/landing``): the files raw ingestion reads."""
    return Path(os.environ.get("RHYTHM_LANDING_DIR", str(rhythm_home() / "landing")))


def healing_dir() -> Path:
    """``$RHYTHM_HEALING_DIR`` (default ``$RHYTHM_HOME/healing``): routes, pauses, reboot plans, alerts."""
    return Path(os.environ.get("RHYTHM_HEALING_DIR", str(rhythm_home() / "healing")))


def store_kind() -> str:
    """``$RHYTHM_STORE``: ``sqlite`` (default) or ``influx``."""
    if "RHYTHM_STORE_URL" in os.environ:
        raise ValueError(
            "RHYTHM_STORE_URL is not read: name the store with RHYTHM_STORE=sqlite|influx and "
            "RHYTHM_SQLITE_PATH or RHYTHM_INFLUX_URL/_ORG/_BUCKET (the same variables Dagster reads)"
        )
    kind = os.environ.get("RHYTHM_STORE", "sqlite").lower()
    if kind not in ("sqlite", "influx"):
        raise ValueError(f"RHYTHM_STORE must be 'sqlite' or 'influx', not {kind!r}")
    return kind


def sqlite_path() -> str:
    """``$RHYTHM_SQLITE_PATH``, default ``$RHYTHM_HOME/metrics.db``."""
    return os.environ.get("RHYTHM_SQLITE_PATH", str(rhythm_home() / "metrics.db"))


def influx_settings() -> dict[str, str]:
    """org and bucket of ``$RHYTHM_INFLUX_ORG``/``_BUCKET`` (default ``rhythm``)."""
    return {
        "org": os.environ.get("RHYTHM_INFLUX_ORG", "rhythm"),
        "bucket": os.environ.get("RHYTHM_INFLUX_BUCKET", "rhythm"),
    }


def store_url() -> str:
    """The store the environment names, as a URL for :func:`rhythm_pipelines.metrics.store.open_store`."""
    if store_kind() == "sqlite":
        return f"sqlite:///{sqlite_path()}"
    raw = os.environ.get("RHYTHM_INFLUX_URL", "")
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"RHYTHM_STORE=influx needs RHYTHM_INFLUX_URL as http(s)://host:port, not {raw!r}")
    scheme = "influxs" if parsed.scheme == "https" else "influx"
    return f"{scheme}://{parsed.netloc}?{urlencode(influx_settings())}"
