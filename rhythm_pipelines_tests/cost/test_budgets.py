"""Budgets: periods, spend to date and projection, thresholds, one alert per budget, period and threshold."""

from __future__ import annotations

import pandas as pd
import pytest

from rhythm_pipelines.cost.budgets import (
    Budget,
    BudgetError,
    BudgetSet,
    alerts,
    check,
    load,
    parse,
    period_bounds,
    period_key,
    status,
)

NOW = pd.Timestamp("2026-03-04 12:00", tz="UTC")  # a Wednesday, noon


def spend(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ts", "channel", "region", "cost"]).assign(
        ts=lambda f: pd.to_datetime(f["ts"], utc=True)
    )


def test_periods_and_their_keys():
    assert period_bounds("daily", NOW) == (pd.Timestamp("2026-03-04", tz="UTC"), pd.Timestamp("2026-03-05", tz="UTC"))
    start, end = period_bounds("weekly", NOW)
    assert start == pd.Timestamp("2026-03-02", tz="UTC") and end - start == pd.Timedelta(days=7)  # Monday
    start, end = period_bounds("monthly", NOW)
    assert (start, end) == (pd.Timestamp("2026-03-01", tz="UTC"), pd.Timestamp("2026-04-01", tz="UTC"))
    assert period_key("weekly", pd.Timestamp("2026-03-02", tz="UTC")) == "2026-W10"
    assert period_key("monthly", start) == "2026-03"


def test_spend_to_date_and_the_projection_from_the_last_day():
    # $1 an hour for the last 36 hours, on a daily budget of $20
    rows = [(str(NOW - pd.Timedelta(hours=h)), "a", "r1", 1.0) for h in range(36)]
    st = status(Budget("d", "daily", 20.0), spend(rows), NOW)
    assert st.spent == pytest.approx(13.0)  # 00:00 .. 12:00 inclusive
    assert st.projected == pytest.approx(13.0 + 12.0)  # $24 over 24 h -> $1/h for the 12 hours left
    assert [a.threshold for a in alerts(st, (0.85, 0.95, 1.0))] == ["projected"]
    scoped = status(Budget("b", "daily", 20.0, channel="other"), spend(rows), NOW)
    assert scoped.spent == 0 and scoped.projected == 0


def test_each_threshold_alerts_once_per_period_with_a_stable_id():
    rows = [(str(NOW - pd.Timedelta(hours=1)), "a", "r1", 19.5)]
    st = status(Budget("d", "daily", 20.0), spend(rows), NOW)
    first = alerts(st, (0.85, 0.95, 1.0))
    assert [a.threshold for a in first] == ["85%", "95%", "projected"]
    assert [a.alert_id for a in first] == ["budget|d|2026-03-04|85%", "budget|d|2026-03-04|95%",
                                           "budget|d|2026-03-04|projected"]  # fmt: skip
    again = alerts(status(Budget("d", "daily", 20.0), spend(rows), NOW + pd.Timedelta(minutes=5)), (0.85, 0.95, 1.0))
    assert {a.alert_id for a in again} == {a.alert_id for a in first}  # the sensor's run_key dedups these
    tomorrow = NOW + pd.Timedelta(days=1)
    later = alerts(status(Budget("d", "daily", 20.0), spend(rows + [(str(tomorrow), "a", "r1", 25.0)]), tomorrow),
                   (0.85, 0.95, 1.0))  # fmt: skip
    assert [a.alert_id for a in later] == ["budget|d|2026-03-05|85%", "budget|d|2026-03-05|95%",
                                           "budget|d|2026-03-05|100%"]  # fmt: skip
    assert "spent $25.00 = 125% of $20.00" in later[-1].text


def test_check_reads_daily_totals_and_recent_calls_from_the_store(sqlite_store, catalog):
    day = pd.Timestamp("2026-03-02", tz="UTC")
    sqlite_store.write_table(  # Monday, summarised by the channel_costs asset
        "channel_costs",
        pd.DataFrame([{"ts": day, "channel": "premium", "region": "r1", "calls": 10, "cost_usd": 30.0}]),
    )
    calls = pd.DataFrame(  # Tuesday afternoon onwards: priced from the catalog ($0.04 each)
        {
            "ts": pd.date_range(pd.Timestamp("2026-03-03 12:00", tz="UTC"), NOW, freq="15min", inclusive="left"),
            "call_id": [f"c{i}" for i in range(96)],
            "channel": "premium",
            "region": "r1",
            "latency_ms": 100.0,
            "status": "ok",
            "tokens_in": 1000,
            "tokens_out": 1000,
        }
    )
    sqlite_store.write_table("channel_calls", calls)
    budgets = BudgetSet((Budget("w", "weekly", 39.0), Budget("m", "monthly", 1000.0)), (0.85, 0.95, 1.0), 24.0,
                        projection="trailing")  # fmt: skip
    statuses, due = check(budgets, sqlite_store.read_table, catalog, NOW)
    week = statuses[0]
    assert week.spent == pytest.approx(30.0 + 96 * 0.04)
    assert week.projected == pytest.approx(week.spent + 0.04 * 95 * 4.5)  # 95 calls in the last 24 h, 4.5 days left
    assert [a.threshold for a in due] == ["85%", "projected"]


def test_the_forecast_projection_knows_the_afternoon_is_busier_than_the_night(sqlite_store, catalog):
    """Calls from 08:00 to 20:00 only: at noon, the rest of the day holds 8 busy hours. The trailing rate
    (the last 24 h's, night and afternoon mixed) misses it by a third; the forecast of the hours gets it."""
    start = pd.Timestamp("2026-03-01", tz="UTC")
    now = start + pd.Timedelta(days=10, hours=12)
    ts = pd.date_range(start, now, freq="15min", inclusive="left")
    ts = ts[(ts.hour >= 8) & (ts.hour < 20)]
    calls = pd.DataFrame({"ts": ts, "call_id": [f"c{i}" for i in range(len(ts))], "channel": "premium", "region": "r1",
                          "latency_ms": 100.0, "status": "ok", "tokens_in": 1000, "tokens_out": 1000})  # fmt: skip
    sqlite_store.write_table("channel_calls", calls)
    spent, rest = 4 * 4 * 0.04, 8 * 4 * 0.04  # 08:00-12:00 done, 12:00-20:00 to come ($0.04 a call)
    by = {}
    for projection in ("forecast", "trailing"):
        budgets = BudgetSet((Budget("d", "daily", 100.0),), (0.85,), 24.0, projection)
        (st,), _ = check(budgets, sqlite_store.read_table, catalog, now)
        assert st.spent == pytest.approx(spent)
        by[projection] = st.projected
    assert by["forecast"] == pytest.approx(spent + rest, rel=0.02)
    # the last 24 h held 47 calls (yesterday after 12:00, this morning): their rate carried over 12 h
    assert by["trailing"] == pytest.approx(spent + 47 * 0.04 * 12 / 24)


def test_the_shipped_budgets_load_and_bad_files_name_line_and_field(tmp_path):
    shipped = load()
    assert {b.period for b in shipped.budgets} == {"daily", "weekly", "monthly"}
    with pytest.raises(BudgetError, match=r"b.yaml:3: budgets\[0\].period: expected one of daily"):
        parse("version: 1\nbudgets:\n  - {name: x, period: hourly, amount: 5}\n", "b.yaml")
    with pytest.raises(BudgetError, match=r"b.yaml:1: projection: expected one of forecast, trailing, got 'guess'"):
        parse("projection: guess\nbudgets: []\n", "b.yaml")
    with pytest.raises(BudgetError, match=r"duplicate budget name 'x'"):
        parse("budgets:\n  - {name: x, period: daily, amount: 5}\n  - {name: x, period: daily, amount: 6}\n")
    with pytest.raises(BudgetError, match=r"budgets\[0\].amount: required"):
        parse("budgets:\n  - {name: x, period: daily}\n")
    with pytest.raises(BudgetError, match="no such budgets file"):
        load(tmp_path / "none.yaml")
