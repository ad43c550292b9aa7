"""Failure patterns on a simulated fleet with recurring causes: the clusters and their ids are the same on every
re-learning and survive a day more of history, a cascade's dependents are traced to their root, and the
recurring causes get precursors that fire ahead of their breaches on the learning days."""

from __future__ import annotations

import pandas as pd
import pytest

from rhythm_pipelines.learning import incidents as incs
from rhythm_pipelines.learning import patterns as pats
from rhythm_pipelines.learning.precursors import Precursor, fire, occurrences, tod_gate
from rhythm_pipelines.learning.signals import Signals
from rhythm_pipelines.simulate.fleet import SimConfig, simulate

START = pd.Timestamp("2026-01-05", tz="UTC")  # a Monday


@pytest.fixture(scope="module")
def fleet():
    sim = simulate(SimConfig(days=9, seed=21, recurring=True, incidents_per_day=2, start=START,
                             warmup_fraction=0.02))  # fmt: skip
    signals = Signals.build(sim.metrics, sim.calls, sim.incidents["metric"].unique())
    return sim, signals, incs.from_labels(sim.incidents, signals)


def learned(fleet, days: float) -> pats.Model:
    _, signals, inc = fleet
    until = START + pd.Timedelta(days=days)
    return pats.learn(inc[inc["start"] < until], signals, until)


def test_relearning_gives_the_same_patterns_and_a_day_more_keeps_their_ids(fleet):
    a, b = learned(fleet, 7), learned(fleet, 7)
    assert [(p.pattern_id, p.members, p.precursor) for p in a.patterns] == [
        (p.pattern_id, p.members, p.precursor) for p in b.patterns
    ]
    later = {p.pattern_id: p for p in learned(fleet, 8).recurring()}
    for p in a.recurring():
        if p.occurrences >= 3:  # an established pattern keeps its id and its members
            assert p.pattern_id in later, (p.kind, p.root)
            assert set(p.members) <= set(later[p.pattern_id].members)


def test_each_recurring_cause_is_one_pattern_with_its_root_and_fix(fleet):
    sim, _, inc = fleet
    model = learned(fleet, 7)
    by_cause = sim.incidents.assign(kind=inc["kind"].to_numpy()).groupby("cause")
    roots = {c: g["root"].iloc[0] for c, g in by_cause if c}
    found = {(p.kind, p.root): p for p in model.recurring()}
    leak = found[("memory_leak", roots["leak_oom"])]
    batch = found[("cascade_failure", roots["batch_cascade"])]
    limit = found[("circuit_breaker_open", roots["rate_limit"])]
    assert leak.fix == "terminate_process" and batch.fix == "pause_low_priority" and limit.fix == "reroute_channel"
    assert len(batch.sources) > 1  # the db host and its dependents: one root cause
    assert 8 * 60 < leak.recurrence_min < 12 * 60  # the leak comes back every ~10 h
    for p in (leak, batch, limit):
        assert p.precursor is not None and p.precursor.recall >= 0.5 and p.precursor.unneeded <= 0.05, p.row()
    assert batch.precursor.weekdays_only and batch.precursor.tod is not None  # a weekday-morning batch


def test_a_dependents_root_is_the_incident_that_led_it(fleet):
    sim, _, inc = fleet
    model = learned(fleet, 7)
    roots = model.lineage.roots(inc)
    dependents = (inc["cause"] == "batch_cascade") & (inc["host"] != inc["root"])
    assert dependents.sum() >= 10
    assert (roots[dependents] == inc.loc[dependents, "root"]).mean() >= 0.9
    alone = inc["cause"] == "leak_oom"
    assert (roots[alone] == inc.loc[alone, "host"]).all()


def test_a_rule_fires_once_per_horizon_and_not_while_quiet():
    cond = pd.Series([False] * 5 + [True] * 30 + [False] * 5 + [True] * 10).to_numpy()
    assert fire(cond, 10) == [5, 15, 25, 40]
    assert fire(cond, 10, a=20, last=18) == [28, 40]
    idx = pd.date_range("2026-01-05", periods=len(cond), freq="min", tz="UTC")
    sig = Signals(pd.DataFrame({("h", "m"): cond.astype(float) * 10}, index=idx))
    rule = Precursor("h", "m", "level", 5.0, 10)
    quiet = pd.Series(range(len(cond))).between(0, 30).to_numpy()
    assert rule.firings(sig, 0, len(cond), quiet)[0] >= 31


def test_a_time_of_day_gate_needs_most_occurrences_in_one_band():
    mornings = [START + pd.Timedelta(days=d, hours=9, minutes=m) for d, m in ((0, 0), (1, 5), (2, -4), (3, 2))]
    (a, b), weekdays = tod_gate(mornings, 30)
    assert a < 9 * 60 - 30 and 9 * 60 + 5 < b < 10 * 60 and weekdays
    scattered = [START + pd.Timedelta(hours=h) for h in (1, 7, 13, 19, 26)]
    assert tod_gate(scattered, 30) == (None, False)
    cascade = [START + pd.Timedelta(minutes=m) for m in (0, 3, 5, 6)]  # one occurrence, four incidents
    assert len(occurrences(cascade)) == 1 and tod_gate(cascade, 30) == (None, False)
