"""The Pareto frontier on a hand-checked example, the budget sweep, and replay under rate limits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.cost.frontier import budget_curve, non_dominated, route_frontier
from rhythm_pipelines.cost.optimizer import build_problem, solve
from rhythm_pipelines.cost.replay import Replay, compare, dominated_by
from rhythm_pipelines_tests.cost.conftest import make_calls

SPEC = {"premium": (300, 0.01), "cheap": (450, 0.02), "slow": (1500, 0.0)}
RATES = {("premium", "hard"): 1.0, ("premium", "easy"): 1.0, ("cheap", "easy"): 1.5, ("slow", "easy"): 1.5}


def test_non_dominated_on_a_hand_checked_example():
    points = np.array(
        [
            [1, 5, 0.10],  # cheapest: kept
            [2, 3, 0.10],  # kept
            [3, 3, 0.10],  # dominated by the one above (dearer, same latency and errors)
            [2, 4, 0.05],  # slower than [2, 3] but fewer errors: kept
            [4, 1, 0.20],  # fastest: kept
            [4, 5, 0.20],  # dominated by everything
        ]
    )
    assert non_dominated(points).tolist() == [True, True, False, True, True, False]


def test_route_frontier_marks_the_routes_nothing_beats(catalog):
    p = build_problem(make_calls(SPEC, RATES), catalog)
    f = route_frontier(p).set_index("route")
    # premium: fastest; slow: no errors; cheap: cheapest -> all three on the frontier here
    assert f["pareto"].all()
    spec = {**SPEC, "slow": (1500, 0.05)}  # now slow is dearer, slower and flakier than cheap
    f = route_frontier(build_problem(make_calls(spec, RATES), catalog)).set_index("route")
    assert not f.loc["slow@r1", "pareto"] and f.loc["cheap@r1", "pareto"]


def test_more_budget_never_buys_a_slower_mix(catalog):
    p = build_problem(make_calls(SPEC, RATES), catalog)
    curve = budget_curve(p, points=12)
    assert len(curve) == 12
    assert (curve["cost_usd"] <= curve["budget_usd"] * (1 + 1e-6)).all()
    assert (np.diff(curve["mean_latency_ms"]) <= 1e-6).all()
    assert curve["mean_latency_ms"].iloc[0] > curve["mean_latency_ms"].iloc[-1]
    assert not curve.drop(columns="budget_usd").round(9).duplicated().any()  # no row twice


def test_when_the_cheapest_mix_is_the_fastest_the_sweep_is_one_point(catalog):
    one = {"premium": (300, 0.0)}
    p = build_problem(make_calls(one, {("premium", "hard"): 1.0, ("premium", "easy"): 1.0}), catalog)
    curve = budget_curve(p, points=25)
    assert len(curve) == 1  # not 25 identical rows


def test_replay_keeps_every_policy_under_the_per_minute_limits_and_the_plan_on_the_frontier(catalog):
    calls = make_calls(SPEC, RATES, days=3)
    fit, day = (
        calls[calls["ts"] < calls["ts"].min() + pd.Timedelta(days=2)],
        calls[calls["ts"] >= calls["ts"].min() + pd.Timedelta(days=2)],
    )
    p = build_problem(fit, catalog)
    plan = solve(p, objective="cost", max_mean_latency_ms=float(fit["latency_ms"].mean()))
    replay = Replay(day, p, catalog)
    cheap = p.routes.index("cheap@r1")
    for policy in ("cheapest", "plan"):
        routes, over = replay.assign(policy, plan)
        per_minute = pd.Series(routes == cheap).groupby(replay.minute).sum()
        assert per_minute.max() <= 3 or over > 0
        assert over <= 0.01 * len(routes)
    outcomes = compare(replay, plan)
    observed = outcomes["observed"]
    assert observed.calls == len(day)
    assert observed.cost_usd == np.nansum(catalog.price_calls(day)["cost"])
    assert observed.mean_latency_ms == day["latency_ms"].mean()
    assert outcomes["plan"].cost_usd < observed.cost_usd
    assert dominated_by(outcomes) == []
