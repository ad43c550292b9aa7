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


def test_a_quiet_day_after_daily_totals_is_not_counted_twice(filled, tmp_path):
    """The newest call is days old and older days are held as channel_costs totals: an update must not
    re-read calls of a day already counted as a total."""
    from rhythm_pipelines.cost.budgets import spend_records
    from rhythm_pipelines.cost.tracking import channel_costs

    catalog = catalogs.load()
    with filled.open() as full:
        calls = full.read_table("channel_calls")
    first_day = calls["ts"].min().ceil("D")
    now = calls["ts"].max().ceil("D") + pd.Timedelta(hours=30)  # no call in the last day and more
    with SQLiteMetricsStore(tmp_path / "quiet.db") as store:
        store.write_table("channel_calls", calls)
        for start in pd.date_range(first_day, calls["ts"].max().floor("D"), freq="D"):  # every day a total
            day = calls[(calls["ts"] >= start) & (calls["ts"] < start + pd.Timedelta(days=1))]
            store.write_table("channel_costs", channel_costs(day, catalog).assign(ts=start))
        since = first_day - pd.Timedelta(hours=12)
        truth = spend_records(store.read_table, catalog, since, now)["cost"].sum()
        ledger = SpendLedger(catalog)
        built = ledger.spend(store, since, now)["cost"].sum()
        updated = ledger.spend(store, since, now)["cost"].sum()
    assert ledger.builds == 1 and ledger.updates == 1
    assert built == pytest.approx(truth) and updated == pytest.approx(truth)
