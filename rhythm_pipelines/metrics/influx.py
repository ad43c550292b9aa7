"""The InfluxDB metrics store, for fleets.

Writes go through influxdb-client's write API (``/api/v2/write``) in batches, serialised by the
client's own DataFrame serializer (metrics) and ``Point`` (table rows): no hand-written line protocol.
Reads use InfluxQL over ``/query``, which InfluxDB 1.x, 2.x (with a DBRP mapping for the bucket) and
3.x all serve. Metrics live in one measurement, ``metrics``, tagged by ``source`` and ``metric`` with a
``value`` field (and the point's tags as a JSON string field), so a point's identity is exactly
(source, metric, ts) and a re-write replaces it.

Each record table is a measurement of its own. Only the spec's low-cardinality ``tags`` columns are
Influx tags; per-row ids (``call_id``, ``entry_id``, ``event_id``...) are fields, since one series per
row defeats InfluxDB. Where the key is not (tags, time), a row's identity comes from its key: a
``shard`` tag (one of 64) and a point time offset under 1 ms, both hashed from the key, keep rows that
share a time apart (a collision needs equal tags, time, shard and offset: about 1 in 64 million for two
rows stamped the same instant) and make a re-write of the same key land on the same point. The exact
time is kept in the ``_ts`` field; reads pad their window by 1 ms and filter on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from urllib.parse import urlencode

import pandas as pd
import urllib3

from rhythm_pipelines.metrics.schema import empty_metrics, from_epoch_ns, ns_to_utc, to_epoch_ns
from rhythm_pipelines.metrics.store import MetricsStore, utc
from rhythm_pipelines.metrics.tables import TableSpec, table_spec

METRICS_MEASUREMENT = "metrics"
SHARDS = 64  # the `shard` tag's values, for tables keyed by a per-row id
OFFSET_NS = 1_000_000  # a row's point time lies under a millisecond after its own time


class InfluxError(RuntimeError):
    pass


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


def _quote_str(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'


def exact_identity(spec: TableSpec) -> bool:
    """Is a row of ``spec`` identified by its tags and time alone (no shard, no offset)?"""
    return set(spec.key) <= {*spec.tags, spec.time}


def row_hash(spec: TableSpec, values: dict) -> int:
    """A stable hash of a row's key (not Python's salted ``hash``)."""
    key = json.dumps([str(values[c]) for c in spec.key])
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def table_point(spec: TableSpec, row: tuple):
    """One table row as an influxdb-client ``Point`` (see the module doc for its identity)."""
    from influxdb_client import Point, WritePrecision

    values = dict(zip(spec.columns, row, strict=True))
    point = Point(spec.name)
    for col in spec.tags:
        if values[col] is not None:
            point.tag(col, str(values[col]))
    for col, kind in spec.columns.items():
        v = values[col]
        if col == spec.time or col in spec.tags or v is None or (not isinstance(v, str) and pd.isna(v)):
            continue
        if kind == "ts":
            point.field(col, int(pd.Timestamp(v).value))
        elif kind == "int":
            point.field(col, int(v))
        elif kind == "float":
            point.field(col, float(v))
        else:
            point.field(col, str(v))
    t = values[spec.time]
    ts = 0 if t is None or pd.isna(t) else int(pd.Timestamp(t).value)
    point.field("_ts", ts)  # the exact time (and Influx needs at least one field)
    if not exact_identity(spec):
        h = row_hash(spec, values)
        point.tag("shard", str(h % SHARDS))
        ts += (h // SHARDS) % OFFSET_NS
    return point.time(ts, WritePrecision.NS)


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
    def _send(self, records) -> None:
        self._write.write(bucket=self.bucket, org=self.org, record=records)

    def write_metrics(self, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        tags = frame["tags"] if "tags" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        data = pd.DataFrame(
            {
                "metric": frame["metric"].astype(str).to_numpy(),
                "source": frame["source"].astype(str).to_numpy(),
                "value": frame["value"].astype("float64").to_numpy(),
                # always write the tags field ("" for none): Influx merges fields, so a missing one keeps old tags
                "tags": tags.astype(object).where(tags.notna(), "").astype(str).to_numpy(),
            },
            index=pd.DatetimeIndex(from_epoch_ns(to_epoch_ns(frame["ts"]))),
        )
        for i in range(0, len(data), self.batch_size):
            self._write.write(
                bucket=self.bucket,
                org=self.org,
                record=data.iloc[i : i + self.batch_size],
                data_frame_measurement_name=METRICS_MEASUREMENT,
                data_frame_tag_columns=["metric", "source"],
            )
        return len(data)

    def write_table(self, table: str, frame: pd.DataFrame) -> int:
        spec = table_spec(table)
        if frame.empty:
            return 0
        data = spec.conform(frame)
        points = [table_point(spec, row) for row in data.itertuples(index=False)]
        for i in range(0, len(points), self.batch_size):
            self._send(points[i : i + self.batch_size])
        return len(points)

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
        sql = f"SELECT * FROM {_quote_ident(measurement)}"  # noqa: S608  identifiers and values are quoted
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
        pad = pd.Timedelta(0) if exact_identity(spec) else pd.Timedelta(OFFSET_NS, "ns")
        where = self._time_where(None if start is None else utc(start) - pad, None if end is None else utc(end) + pad)
        for col, value in equals.items():
            if col not in spec.columns:
                raise KeyError(f"table {table} has no column '{col}'")
            where.append(f"{_quote_ident(col)} = {_quote_str(value)}")
        raw = self._select(spec.name, where)
        if raw.empty:
            return spec.conform(pd.DataFrame(columns=list(spec.columns)))
        out = self._table_frame(spec, raw)
        if start is not None:
            out = out[out[spec.time] >= utc(start)]
        if end is not None:
            out = out[out[spec.time] < utc(end)]
        return out.sort_values([spec.time, *[k for k in spec.key if k != spec.time]], ignore_index=True)

    def read_keys(self, table: str, column: str, values: Sequence[str]) -> pd.DataFrame:
        spec = table_spec(table)
        if column not in spec.columns:
            raise KeyError(f"table {table} has no column '{column}'")
        wanted = list(dict.fromkeys(values))
        frames = []
        for i in range(0, len(wanted), 200):
            cond = " OR ".join(f"{_quote_ident(column)} = {_quote_str(v)}" for v in wanted[i : i + 200])
            raw = self._select(spec.name, [f"({cond})"])
            if not raw.empty:
                frames.append(self._table_frame(spec, raw))
        return (
            pd.concat(frames, ignore_index=True) if frames else spec.conform(pd.DataFrame(columns=list(spec.columns)))
        )

    @staticmethod
    def _table_frame(spec: TableSpec, raw: pd.DataFrame) -> pd.DataFrame:
        raw = raw.rename(columns={"time": spec.time})
        if "_ts" in raw.columns:  # the exact time, without the row's identity offset
            raw[spec.time] = raw["_ts"].where(raw["_ts"].notna(), raw[spec.time])
        for col, kind in spec.columns.items():
            if kind == "ts" and col in raw.columns:
                raw[col] = ns_to_utc(raw[col])
        return spec.conform(raw)

    def close(self) -> None:
        self._client.close()
        self._http.clear()


__all__ = ["InfluxError", "InfluxMetricsStore"]
