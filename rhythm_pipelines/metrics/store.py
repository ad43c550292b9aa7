"""The ``MetricsStore`` interface, and opening a store from a URL (for the CLI and agents)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from urllib.parse import parse_qs, urlparse

import pandas as pd


class MetricsStore(ABC):
    """Long-format metrics plus keyed record tables (see :mod:`rhythm_pipelines.metrics.tables`).

    Writes are idempotent: re-writing the same (source, metric, ts), or a table row with the same
    key, replaces it. Time ranges are half-open ``[start, end)`` in UTC.
    """

    @abstractmethod
    def write_metrics(self, frame: pd.DataFrame) -> int:
        """Write a validated long-format frame (see ``schema.validate_metrics``); returns rows written."""

    @abstractmethod
    def read_metrics(
        self,
        start: datetime | pd.Timestamp,
        end: datetime | pd.Timestamp,
        sources: Sequence[str] | None = None,
        metrics: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Points in ``[start, end)``, sorted by source, metric, ts; columns ts, source, metric, value, tags."""

    @abstractmethod
    def list_series(self) -> pd.DataFrame:
        """The known (source, metric) pairs."""

    @abstractmethod
    def write_table(self, table: str, frame: pd.DataFrame) -> int:
        """Upsert rows into a record table by its key; returns rows written."""

    @abstractmethod
    def read_table(
        self,
        table: str,
        start: datetime | pd.Timestamp | None = None,
        end: datetime | pd.Timestamp | None = None,
        **equals: str,
    ) -> pd.DataFrame:
        """Rows of a record table with ``start <= ts < end`` and the given column equalities."""

    def read_keys(self, table: str, column: str, values: Sequence[str]) -> pd.DataFrame:
        """Rows of a record table whose ``column`` is one of ``values`` (any time)."""
        frames = [self.read_table(table, **{column: v}) for v in dict.fromkeys(values)]
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else self.read_table(table).iloc[0:0]

    @contextmanager
    def batch(self) -> Iterator[MetricsStore]:
        """Writes inside are all or nothing where the store can (SQLite: one transaction). InfluxDB has no
        transactions: its callers validate everything before the first write, so nothing fails half-way."""
        yield self

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and flush pending writes."""

    def __enter__(self) -> MetricsStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def utc(ts: datetime | pd.Timestamp | str) -> pd.Timestamp:
    """Any timestamp as a tz-aware UTC ``pd.Timestamp`` (naive is taken as UTC)."""
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def open_store(url: str) -> MetricsStore:
    """Open a store from a URL.

    - ``sqlite:///abs/path.db`` (``sqlite:////abs/path.db`` too), ``sqlite://rel/path.db`` or a plain file
      path: the embedded store.
    - ``influx://host:8086?bucket=B&org=O`` (``influxs://`` for HTTPS): InfluxDB; the token is read from
      ``RHYTHM_INFLUX_TOKEN``.
    """
    parsed = urlparse(url)
    if parsed.scheme in ("", "sqlite", "file"):
        from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore

        if parsed.scheme == "":
            return SQLiteMetricsStore(url)
        path = parsed.netloc + parsed.path
        return SQLiteMetricsStore("/" + path.lstrip("/") if path.startswith("/") else path)
    if parsed.scheme in ("influx", "influxs"):
        from rhythm_pipelines.metrics.influx import InfluxMetricsStore

        q = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        http = "https" if parsed.scheme == "influxs" else "http"
        return InfluxMetricsStore(
            url=f"{http}://{parsed.netloc}",
            token=os.environ.get("RHYTHM_INFLUX_TOKEN", ""),
            org=q.get("org", "rhythm"),
            bucket=q.get("bucket", "rhythm"),
        )
    raise ValueError(f"unsupported store URL scheme '{parsed.scheme}' in {url!r} (use sqlite:// or influx://)")
