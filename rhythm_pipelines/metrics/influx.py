"""The InfluxDB metrics store, for fleets.

Writes go through influxdb-client's write API (``/api/v2/write``) in batches of line protocol;
reads use InfluxQL over ``/query``, which InfluxDB 1.x, 2.x (with a DBRP mapping for the bucket) and
3.x all serve. Metrics live in one measurement, ``metrics``, tagged by ``source`` and ``metric`` with a
``value`` field (and the point's tags as a JSON string field), so a point's identity is exactly
(source, metric, ts) and a re-write replaces it. Each record table is a measurement of its own, its key
columns as Influx tags.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from urllib.parse import urlencode

import pandas as pd
import urllib3

from rhythm_pipelines.metrics.schema import empty_metrics, ns_to_utc, to_epoch_ns
from rhythm_pipelines.metrics.store import MetricsStore, utc
from rhythm_pipelines.metrics.tables import TableSpec, table_spec

METRICS_MEASUREMENT = "metrics"


class InfluxError(RuntimeError):
    pass


def _escape_tag(value: str) -> str:
    """Line-protocol escaping of a tag key/value (InfluxDB unescapes exactly these three)."""
    return str(value).replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _series_key_tags(key: str) -> dict[str, str]:
    """The tags of a ``SHOW SERIES`` key (``measurement,k=v,k2=v2``), escapes undone.

    A backslash escapes only ``,``, ``=`` and space, as in line protocol; any other backslash is literal.
    """
    parts, current, i = [], [], 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and i + 1 < len(key) and key[i + 1] in ",= ":
            current.append(key[i + 1])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append("\0" if ch == "=" else ch)  # an unescaped '=' separates key and value
        i += 1
    parts.append("".join(current))
    return dict(part.partition("\0")[::2] for part in parts[1:])


def _escape_field_str(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_str(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'


class InfluxMetricsStore(MetricsStore):
    """A store on an InfluxDB server; ``bucket`` is the database (``db`` or ``db/rp`` on 1.x)."""

    def __init__(
        self,
        url: str,
        token: str,
        org: str = "rhythm",
        bucket: str = "rhythm",
        batch_size: int = 5000,
        timeout_ms: int = 30_000,
    ):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.url, self.org, self.bucket, self.batch_size = url.rstrip("/"), org, bucket, batch_size
        self._token = token
        self._client = InfluxDBClient(url=self.url, token=token, org=org, timeout=timeout_ms)
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout_ms / 1000))
        self._db = bucket.split("/")[0]

    # -- writing -------------------------------------------------------------------------------
    def _write_lines(self, lines: list[str]) -> None:
        for i in range(0, len(lines), self.batch_size):
            self._write.write(bucket=self.bucket, org=self.org, record=lines[i : i + self.batch_size])

    def write_metrics(self, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        prefix = (
            METRICS_MEASUREMENT
            + ",metric="
            + frame["metric"].map(_escape_tag)
            + ",source="
            + frame["source"].map(_escape_tag)
            + " value="
            + frame["value"].map(repr)
        )
        tags = frame["tags"] if "tags" in frame.columns else pd.Series([None] * len(frame))
        # always write the tags field ("" for none): Influx merges fields, so a missing one would keep old tags
        tag_field = tags.map(lambda t: ',tags=""' if t is None or t != t else ",tags=" + _escape_field_str(t))
        ts = pd.Series(to_epoch_ns(frame["ts"]).astype(str), index=frame.index)
        lines = (prefix + tag_field.to_numpy() + " " + ts).tolist()
        self._write_lines(lines)
        return len(lines)

    def write_table(self, table: str, frame: pd.DataFrame) -> int:
        spec = table_spec(table)
        if frame.empty:
            return 0
        data = spec.conform(frame)
        lines = [self._table_line(spec, row) for row in data.itertuples(index=False)]
        self._write_lines(lines)
        return len(lines)

    @staticmethod
    def _table_line(spec: TableSpec, row: tuple) -> str:
        values = dict(zip(spec.columns, row, strict=True))
        tags = [f"{_escape_tag(c)}={_escape_tag(values[c])}" for c in sorted(spec.key) if c != spec.time]
        fields = []
        for col, kind in spec.columns.items():
            v = values[col]
            if col == spec.time or col in spec.key or v is None or (not isinstance(v, str) and pd.isna(v)):
                continue
            if kind == "ts":
                fields.append(f"{_escape_tag(col)}={int(pd.Timestamp(v).value)}i")
            elif kind == "int":
                fields.append(f"{_escape_tag(col)}={int(v)}i")
            elif kind == "float":
                fields.append(f"{_escape_tag(col)}={float(v)!r}")
            else:
                fields.append(f"{_escape_tag(col)}={_escape_field_str(v)}")
        if not fields:  # Influx needs at least one field
            fields.append("_present=true")
        t = values[spec.time]
        ts = 0 if t is None or pd.isna(t) else int(pd.Timestamp(t).value)
        return f"{_escape_tag(spec.name)},{','.join(tags)} {','.join(fields)} {ts}"

    # -- reading -------------------------------------------------------------------------------
    def query(self, influxql: str) -> Iterator[dict]:
        """Run InfluxQL; yields each result series as ``{"columns": [...], "values": [...]}``."""
        params = urlencode({"db": self._db, "q": influxql, "epoch": "ns", "chunked": "true", "chunk_size": 20000})
        resp = self._http.request(
            "GET",
            f"{self.url}/query?{params}",
            headers={"Authorization": f"Token {self._token}"},
            preload_content=False,
        )
        try:
            if resp.status >= 300:
                raise InfluxError(f"InfluxDB query failed ({resp.status}): {resp.data.decode(errors='replace')}")
            buffer = b""
            for chunk in resp.stream(1 << 16):
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    yield from self._series_of(line)
            yield from self._series_of(buffer)
        finally:
            resp.release_conn()

    @staticmethod
    def _series_of(line: bytes) -> Iterator[dict]:
        if not line.strip():
            return
        doc = json.loads(line)
        if "error" in doc:
            raise InfluxError(f"InfluxDB: {doc['error']}")
        for result in doc.get("results", []):
            if "error" in result:
                raise InfluxError(f"InfluxDB: {result['error']}")
            yield from result.get("series", [])

    def _select(self, measurement: str, where: list[str]) -> pd.DataFrame:
        sql = f"SELECT * FROM {_quote_ident(measurement)}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        frames = [pd.DataFrame(s["values"], columns=s["columns"]) for s in self.query(sql) if s.get("values")]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @staticmethod
    def _time_where(start: datetime | pd.Timestamp | None, end: datetime | pd.Timestamp | None) -> list[str]:
        where = []
        if start is not None:
            where.append(f"time >= {int(utc(start).value)}")
        if end is not None:
            where.append(f"time < {int(utc(end).value)}")
        return where

    def read_metrics(
        self,
        start: datetime | pd.Timestamp,
        end: datetime | pd.Timestamp,
        sources: Sequence[str] | None = None,
        metrics: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        where = self._time_where(start, end)
        for col, wanted in (("source", sources), ("metric", metrics)):
            if wanted is not None:
                if not wanted:
                    return empty_metrics()
                where.append("(" + " OR ".join(f"{_quote_ident(col)} = {_quote_str(v)}" for v in wanted) + ")")
        raw = self._select(METRICS_MEASUREMENT, where)
        if raw.empty:
            return empty_metrics()
        tags = raw["tags"] if "tags" in raw.columns else pd.Series([None] * len(raw))
        out = pd.DataFrame(
            {
                "ts": pd.to_datetime(raw["time"].astype("int64"), unit="ns", utc=True),
                "source": raw["source"].astype(object),
                "metric": raw["metric"].astype(object),
                "value": raw["value"].astype("float64"),
                "tags": tags.astype(object).where(tags.notna() & (tags != ""), None),
            }
        )
        return out.sort_values(["source", "metric", "ts"], kind="stable", ignore_index=True)

    def list_series(self) -> pd.DataFrame:
        rows = []
        for s in self.query(f"SHOW SERIES FROM {_quote_ident(METRICS_MEASUREMENT)}"):
            for (key,) in s.get("values", []):
                tags = _series_key_tags(key)
                rows.append((tags.get("source", ""), tags.get("metric", "")))
        return pd.DataFrame(sorted(rows), columns=["source", "metric"])

    def read_table(
        self,
        table: str,
        start: datetime | pd.Timestamp | None = None,
        end: datetime | pd.Timestamp | None = None,
        **equals: str,
    ) -> pd.DataFrame:
        spec = table_spec(table)
        where = self._time_where(start, end)
        for col, value in equals.items():
            if col not in spec.columns:
                raise KeyError(f"table {table} has no column '{col}'")
            where.append(f"{_quote_ident(col)} = {_quote_str(value)}")
        raw = self._select(spec.name, where)
        if raw.empty:
            return spec.conform(pd.DataFrame(columns=list(spec.columns)))
        raw = raw.rename(columns={"time": spec.time})
        for col, kind in spec.columns.items():
            if kind == "ts" and col in raw.columns:
                raw[col] = ns_to_utc(raw[col])
        out = spec.conform(raw)
        return out.sort_values([spec.time, *[k for k in spec.key if k != spec.time]], ignore_index=True)

    def close(self) -> None:
        self._client.close()
        self._http.clear()


__all__ = ["InfluxError", "InfluxMetricsStore"]
