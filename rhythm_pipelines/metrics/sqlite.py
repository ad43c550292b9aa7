"""The embedded SQLite metrics store (the default).

Layout, as in a time-series database: ``series(id, source, metric)`` with a unique index on
(source, metric), and ``blocks(series_id, block, n, ts, value, tags)``, a WITHOUT ROWID table
clustered on (series_id, block) where each row holds one series' points of one hour as packed
little-endian arrays (``ts`` int64 epoch ns, ``value`` float64) plus their tags as a JSON list (NULL
when none has tags). Together this is an index on (source, metric, ts): a range query reads a few
contiguous rows per series and decodes them with numpy, and a write merges into the hour blocks it
touches, so re-writing the same (source, metric, ts) replaces the value, never duplicates it. WAL
journal; each write call is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.metrics.schema import empty_metrics, from_epoch_ns, ns_to_utc, to_epoch_ns
from rhythm_pipelines.metrics.store import MetricsStore, utc
from rhythm_pipelines.metrics.tables import TableSpec, table_spec

BLOCK_NS = 3600 * 10**9  # one block per series and hour
_I8, _F8 = np.dtype("<i8"), np.dtype("<f8")
_SQL_TYPES = {"ts": "INTEGER", "float": "REAL", "int": "INTEGER", "str": "TEXT"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    metric TEXT NOT NULL,
    UNIQUE (source, metric)
);
CREATE TABLE IF NOT EXISTS blocks (
    series_id INTEGER NOT NULL,
    block INTEGER NOT NULL,
    n INTEGER NOT NULL,
    ts BLOB NOT NULL,
    value BLOB NOT NULL,
    tags TEXT,
    PRIMARY KEY (series_id, block)
) WITHOUT ROWID;
"""


def _keep_last(ts: np.ndarray) -> np.ndarray:
    """Indices that sort ``ts`` ascending, keeping the last occurrence of each duplicate."""
    _, first_from_end = np.unique(ts[::-1], return_index=True)
    return len(ts) - 1 - first_from_end


def _while_locked(fn: Callable[[], object], timeout_s: float) -> None:
    """Run ``fn``, again after a short wait while SQLite says the database is locked, up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            fn()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class SQLiteMetricsStore(MetricsStore):
    """A metrics store in one SQLite file (created on first use)."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        # Switching a new file to WAL needs it alone: SQLite answers "database is locked" at once (no busy
        # wait) while another process opens the same new file. Two steps of one run do exactly that.
        _while_locked(lambda: self._conn.execute("PRAGMA journal_mode=WAL"), timeout_s)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA cache_size=-65536")
        _while_locked(lambda: self._conn.executescript(_SCHEMA), timeout_s)
        self._series: dict[tuple[str, str], int] = {}
        self._tables_ready: set[str] = set()
        self._batch_depth = 0

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction, or a part of the enclosing :meth:`batch`'s."""
        with self._lock:
            if self._batch_depth:
                yield
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._series.clear()  # ids and tables created inside the rolled-back transaction are gone
                self._tables_ready.clear()
                raise

    @contextmanager
    def batch(self) -> Iterator[SQLiteMetricsStore]:
        """Every write inside is one transaction: all of it lands, or none."""
        with self._lock, self._transaction():
            self._batch_depth += 1
            try:
                yield self
            finally:
                self._batch_depth -= 1

    # -- metrics -------------------------------------------------------------------------------
    def write_metrics(self, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        codes, uniques = pd.factorize(pd.MultiIndex.from_arrays([frame["source"], frame["metric"]]))
        ts = to_epoch_ns(frame["ts"])
        values = frame["value"].to_numpy(dtype="float64")
        tags = frame["tags"].to_numpy(dtype=object) if "tags" in frame.columns else np.full(len(frame), None)
        with self._transaction():
            ids = np.array([self._series_id(s, m) for s, m in uniques], dtype="int64")
            self._merge_blocks(ids[codes], ts, values, tags)
        return len(frame)

    def _merge_blocks(self, sid: np.ndarray, ts: np.ndarray, values: np.ndarray, tags: np.ndarray) -> None:
        block = ts // BLOCK_NS
        order = np.lexsort((ts, block, sid))  # stable: among equal keys, input order is kept
        sid, block, ts, values, tags = sid[order], block[order], ts[order], values[order], tags[order]
        has_tag = pd.notna(tags)
        cut = np.flatnonzero((np.diff(sid) != 0) | (np.diff(block) != 0)) + 1
        starts, ends = np.r_[0, cut], np.r_[cut, len(ts)]
        existing = self._existing_blocks(sid, block)
        rows = []
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            key = (int(sid[a]), int(block[a]))
            t, v, g, tagged = ts[a:b], values[a:b], tags[a:b], bool(has_tag[a:b].any())
            old = existing.get(key)
            if old is not None:
                old_t, old_v, old_g = old
                t, v = np.concatenate([old_t, t]), np.concatenate([old_v, v])
                g = np.concatenate([old_g if old_g is not None else np.full(len(old_t), None), g])
                tagged = tagged or old_g is not None
                keep = _keep_last(t)
                t, v, g = t[keep], v[keep], g[keep]
            elif len(t) > 1 and not (np.diff(t) > 0).all():
                keep = _keep_last(t)
                t, v, g = t[keep], v[keep], g[keep]
            tag_json = json.dumps(g.tolist(), separators=(",", ":")) if tagged else None
            rows.append((key[0], key[1], len(t), t.astype(_I8).tobytes(), v.astype(_F8).tobytes(), tag_json))
        self._conn.executemany(
            "INSERT OR REPLACE INTO blocks (series_id, block, n, ts, value, tags) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _existing_blocks(
        self, sid: np.ndarray, block: np.ndarray
    ) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        found = {}
        uniq, first = np.unique(sid, return_index=True)
        last = np.r_[first[1:], len(sid)] - 1
        for s, a, b in zip(uniq.tolist(), first.tolist(), last.tolist(), strict=True):
            for blk, t, v, g in self._conn.execute(
                "SELECT block, ts, value, tags FROM blocks WHERE series_id = ? AND block BETWEEN ? AND ?",
                (s, int(block[a]), int(block[b])),
            ):
                found[(s, blk)] = (
                    np.frombuffer(t, dtype=_I8),
                    np.frombuffer(v, dtype=_F8),
                    None if g is None else np.array(json.loads(g), dtype=object),
                )
        return found

    def _series_id(self, source: str, metric: str) -> int:
        key = (source, metric)
        sid = self._series.get(key)
        if sid is None:
            self._conn.execute("INSERT OR IGNORE INTO series (source, metric) VALUES (?, ?)", key)
            sid = self._conn.execute("SELECT id FROM series WHERE source = ? AND metric = ?", key).fetchone()[0]
            self._series[key] = sid
        return sid

    def read_metrics(
        self,
        start: datetime | pd.Timestamp,
        end: datetime | pd.Timestamp,
        sources: Sequence[str] | None = None,
        metrics: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        series = self.list_series(with_ids=True)  # sorted by source, metric
        if sources is not None:
            series = series[series["source"].isin(list(sources))]
        if metrics is not None:
            series = series[series["metric"].isin(list(metrics))]
        lo, hi = int(utc(start).value), int(utc(end).value)
        if series.empty or hi <= lo:
            return empty_metrics()
        rank = {int(i): r for r, i in enumerate(series["id"])}
        with self._lock:
            rows = self._conn.execute(
                "SELECT series_id, n, ts, value, tags FROM blocks "  # noqa: S608  integer ids from our own table
                f"WHERE series_id IN ({','.join(str(i) for i in rank)}) AND block BETWEEN ? AND ? "
                "ORDER BY series_id, block",
                (lo // BLOCK_NS, (hi - 1) // BLOCK_NS),
            ).fetchall()
        if not rows:
            return empty_metrics()
        rows.sort(key=lambda r: rank[r[0]])  # stable: each series' blocks stay in block order
        counts = np.array([r[1] for r in rows], dtype="int64")
        series_pos = np.repeat(np.array([rank[r[0]] for r in rows], dtype="int64"), counts)
        ts = np.frombuffer(b"".join(r[2] for r in rows), dtype=_I8)
        values = np.frombuffer(b"".join(r[3] for r in rows), dtype=_F8)
        if any(r[4] is not None for r in rows):
            tags = np.empty(len(ts), dtype=object)
            tags[:] = [t for r in rows for t in (json.loads(r[4]) if r[4] is not None else [None] * r[1])]
        else:
            tags = np.full(len(ts), None, dtype=object)
        inside = (ts >= lo) & (ts < hi)
        series_pos = series_pos[inside]
        return pd.DataFrame(
            {
                "ts": from_epoch_ns(ts[inside]),
                "source": series["source"].to_numpy(dtype=object)[series_pos],
                "metric": series["metric"].to_numpy(dtype=object)[series_pos],
                "value": values[inside].astype("float64"),
                "tags": tags[inside],
            }
        )

    def list_series(self, with_ids: bool = False) -> pd.DataFrame:
        with self._lock:
            rows = self._conn.execute("SELECT id, source, metric FROM series ORDER BY source, metric").fetchall()
        frame = pd.DataFrame(rows, columns=["id", "source", "metric"])
        return frame if with_ids else frame.drop(columns="id")

    # -- record tables -----------------------------------------------------------------------
    def _ensure_table(self, spec: TableSpec) -> None:
        if spec.name in self._tables_ready:
            return
        cols = ", ".join(f'"{c}" {_SQL_TYPES[k]}' for c, k in spec.columns.items())
        key = ", ".join(f'"{c}"' for c in spec.key)
        with self._lock:
            self._conn.execute(f'CREATE TABLE IF NOT EXISTS "{spec.name}" ({cols}, PRIMARY KEY ({key}))')
            self._conn.execute(f'CREATE INDEX IF NOT EXISTS "{spec.name}_by_time" ON "{spec.name}" ("{spec.time}")')
            have = {row[1] for row in self._conn.execute(f'PRAGMA table_info("{spec.name}")')}
            for c, k in spec.columns.items():  # a column added since the file was made: older rows read null
                if c not in have:
                    self._conn.execute(f'ALTER TABLE "{spec.name}" ADD COLUMN "{c}" {_SQL_TYPES[k]}')
        self._tables_ready.add(spec.name)

    def write_table(self, table: str, frame: pd.DataFrame) -> int:
        spec = table_spec(table)
        self._ensure_table(spec)
        if frame.empty:
            return 0
        data = spec.conform(frame)
        columns = []
        for col, kind in spec.columns.items():
            if kind == "ts":
                ns = data[col].astype("int64").to_numpy()
                columns.append([None if t else int(v) for v, t in zip(ns, data[col].isna(), strict=True)])
            elif kind == "int":
                columns.append([None if pd.isna(v) else int(v) for v in data[col]])
            elif kind == "float":
                columns.append([None if np.isnan(v) else float(v) for v in data[col].to_numpy()])
            else:
                columns.append(data[col].tolist())
        names = ", ".join(f'"{c}"' for c in spec.columns)
        marks = ", ".join("?" for _ in spec.columns)
        with self._transaction():
            self._conn.executemany(
                f'INSERT OR REPLACE INTO "{spec.name}" ({names}) VALUES ({marks})',  # noqa: S608  spec names
                zip(*columns, strict=True),
            )
        return len(data)

    def read_table(
        self,
        table: str,
        start: datetime | pd.Timestamp | None = None,
        end: datetime | pd.Timestamp | None = None,
        **equals: str,
    ) -> pd.DataFrame:
        spec = table_spec(table)
        where, params = [], []
        if start is not None:
            where.append(f'"{spec.time}" >= ?')
            params.append(int(utc(start).value))
        if end is not None:
            where.append(f'"{spec.time}" < ?')
            params.append(int(utc(end).value))
        for col, value in equals.items():
            if col not in spec.columns:
                raise KeyError(f"table {table} has no column '{col}'")
            where.append(f'"{col}" = ?')
            params.append(value)
        return self._select(spec, where, params)

    def read_keys(self, table: str, column: str, values: Sequence[str]) -> pd.DataFrame:
        spec = table_spec(table)
        if column not in spec.columns:
            raise KeyError(f"table {table} has no column '{column}'")
        wanted = list(dict.fromkeys(values))
        frames = [
            self._select(spec, [f'"{column}" IN ({", ".join("?" * len(chunk))})'], chunk)
            for chunk in (wanted[i : i + 900] for i in range(0, len(wanted), 900))
        ]
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else self._select(spec, ["0"], [])

    def _select(self, spec: TableSpec, where: list[str], params: list) -> pd.DataFrame:
        self._ensure_table(spec)
        # table and column names come from TableSpec (checked by the callers), values are bound parameters
        sql = f'SELECT * FROM "{spec.name}"' + (f" WHERE {' AND '.join(where)}" if where else "")  # noqa: S608
        sql += f' ORDER BY "{spec.time}", ' + ", ".join(f'"{c}"' for c in spec.key)
        with self._lock:
            cur = self._conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        frame = pd.DataFrame(rows, columns=names)
        for col, kind in spec.columns.items():
            if kind == "ts":
                frame[col] = ns_to_utc(frame[col])
        return spec.conform(frame)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
