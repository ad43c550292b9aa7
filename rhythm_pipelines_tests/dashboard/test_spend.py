"""The spend ledger: incremental hourly sums equal a full recomputation, as calls arrive the way hourly
ingestion lands them."""

from __future__ import annotations

import pandas as pd
import pytest

from rhythm_pipelines.cost import catalog as catalogs
from rhythm_pipelines.dashboard.kpis import kpis
from rhythm_pipelines.dashboard.spend import SpendLedger
from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore


def by_hour(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby([frame["ts"].dt.floor("h"), "channel", "region"])["cost"].sum().round(9)


def test_the_ledger_follows_calls_landing_hour_by_hour_and_equals_a_full_build(filled, tmp_path):
    with filled.open() as full:
        calls = full.read_table("channel_calls")
    catalog = catalogs.load()
    now = filled.as_of
    since = now.floor("D") - pd.Timedelta(days=1)
    ledger = SpendLedger(catalog)
    with SQLiteMetricsStore(tmp_path / "live.db") as store:
        landed = calls[calls["ts"] < now - pd.Timedelta(hours=3)]
        store.write_table("channel_calls", landed)
        ledger.spend(store, since, now)
        for hour in (3, 2, 1):  # each hour lands at once, as the hourly ingestion writes it
            a, b = now - pd.Timedelta(hours=hour), now - pd.Timedelta(hours=hour - 1)
            batch = calls[(calls["ts"] >= a) & (calls["ts"] < b)]
            store.write_table("channel_calls", batch)
            got = ledger.spend(store, since, now)
        assert ledger.builds == 1 and ledger.updates == 3  # no rebuild: only the new hours were read
        fresh = SpendLedger(catalog).spend(store, since, now)
        pd.testing.assert_series_equal(by_hour(got), by_hour(fresh))
        truth = calls[(calls["ts"] >= since) & (calls["ts"] <= now)]
        assert got["cost"].sum() == pytest.approx(truth["cost_usd"].sum())
        # a backfill of an old hour is not seen incrementally; the next full build picks it up
        old = calls[(calls["ts"] >= since) & (calls["ts"] < since + pd.Timedelta(hours=1))].head(5)
        store.write_table("channel_calls", old.assign(call_id=old["call_id"] + "-backfill"))
        assert ledger.spend(store, since, now)["cost"].sum() == pytest.approx(got["cost"].sum())
        ledger.rebuild_every_s = 0
        assert ledger.spend(store, since, now)["cost"].sum() == pytest.approx(
            got["cost"].sum() + old["cost_usd"].sum()
        )


def test_kpis_with_the_ledger_equal_kpis_from_the_calls(filled):
    with filled.open() as store:
        plain = kpis(store, filled.as_of, landing=filled.landing)
        ledger = SpendLedger(catalogs.load())
        fast = kpis(store, filled.as_of, landing=filled.landing, ledger=ledger)
        again = kpis(store, filled.as_of, landing=filled.landing, ledger=ledger)
    assert ledger.builds == 1 and ledger.updates == 1
    for got in (fast, again):
        assert got["spend_today_usd"] == pytest.approx(plain["spend_today_usd"])
        for a, b in zip(got["budgets"], plain["budgets"], strict=True):
            assert a["spent"] == pytest.approx(b["spent"])  # spent to date: exact; projections use hourly sums
            assert a["projected"] == pytest.approx(b["projected"], rel=0.05)
