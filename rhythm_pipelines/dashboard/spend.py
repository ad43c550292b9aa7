"""Spend per hour, channel and region, kept up to date without re-reading a day of calls every few seconds.

A full build prices what the budgets need (``cost.budgets.spend_records``: the ``channel_costs`` daily
totals for old days, calls for the rest) and sums the calls per hour. Each refresh after that re-reads only
the calls from ``late`` before the newest call it has seen (hourly ingestion lands an hour of calls at once:
they are all newer than that), re-prices those hours and replaces them. Calls written with older timestamps
(a backfill) are picked up by the next full build, every ``rebuild_every``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pandas as pd

from rhythm_pipelines.cost.budgets import spend_records
from rhythm_pipelines.metrics.store import MetricsStore

COLUMNS = ["ts", "channel", "region", "cost"]


def hourly(priced: pd.DataFrame) -> pd.DataFrame:
    """Priced calls (ts, channel, region, cost) summed per hour, channel and region."""
    if priced.empty:
        return pd.DataFrame({"ts": pd.Series(dtype="datetime64[ns, UTC]"), "channel": pd.Series(dtype=object),
                             "region": pd.Series(dtype=object), "cost": pd.Series(dtype="float64")})  # fmt: skip
    out = priced.assign(ts=priced["ts"].dt.floor("h")).groupby(["ts", "channel", "region"], as_index=False)["cost"]
    return out.sum()[COLUMNS]


@dataclass
class SpendLedger:
    catalog: object  # cost.catalog.Catalog
    window_h: float = 24.0  # the budgets' projection window: it needs calls, not daily totals
    late: pd.Timedelta = pd.Timedelta(minutes=15)
    rebuild_every_s: float = 600.0
    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))  # day totals + hours
    since: pd.Timestamp | None = None
    newest: pd.Timestamp | None = None  # the newest call seen
    recent: pd.Timestamp | None = None  # from here on the rows are calls' hours, before it days may be totals
    built_at: float = 0.0
    forecasts: dict = field(default_factory=dict)  # the budgets' spend forecasts of the hour (budgets.forecast_rests)
    builds: int = 0
    updates: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spend(self, store: MetricsStore, since: pd.Timestamp, now: pd.Timestamp) -> pd.DataFrame:
        """ts, channel, region, cost from ``since`` to ``now``: daily totals stamped at their day, hours at
        their hour (see the module docstring)."""
        with self._lock:
            return self._spend(store, since, now)

    def _spend(self, store: MetricsStore, since: pd.Timestamp, now: pd.Timestamp) -> pd.DataFrame:
        stale = time.monotonic() - self.built_at > self.rebuild_every_s
        if self.since is None or since < self.since or stale or self.newest is None or now < self.newest:
            self._build(store, since, now)
        else:
            self._update(store, now)
        return self.rows[(self.rows["ts"] >= since.floor("h")) & (self.rows["ts"] <= now)]

    def _build(self, store: MetricsStore, since: pd.Timestamp, now: pd.Timestamp) -> None:
        records = spend_records(store.read_table, self.catalog, since, now, self.window_h)
        self.rows = hourly(records)  # a day's channel_costs total stays one row, stamped at its midnight
        self.since, self.built_at, self.builds = since, time.monotonic(), self.builds + 1
        self.recent = max(since, min((now - pd.Timedelta(hours=self.window_h)).floor("D"), now.floor("D")))
        calls = records[records["ts"] >= self.recent]  # totals are stamped before it: never taken for a call
        self.newest = calls["ts"].max() if len(calls) else self.recent

    def _update(self, store: MetricsStore, now: pd.Timestamp) -> None:
        start = max((self.newest - self.late).floor("h"), self.recent)  # never into days held as totals
        calls = store.read_table("channel_calls", start, now + pd.Timedelta(microseconds=1))
        fresh = hourly(calls.iloc[0:0].assign(cost=0.0)[COLUMNS])
        if len(calls):
            priced = self.catalog.price_calls(calls)
            fresh = hourly(priced.assign(cost=pd.to_numeric(priced["cost"], errors="coerce").fillna(0.0))[COLUMNS])
        kept = self.rows[self.rows["ts"] < start]
        self.rows = pd.concat([kept, fresh], ignore_index=True) if len(fresh) else kept
        if len(calls):
            self.newest = max(self.newest, calls["ts"].max())
        self.updates += 1
