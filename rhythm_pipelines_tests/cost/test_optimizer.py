"""The routing LP: against brute force on small instances, infeasible budgets, rate limits, the SLO."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from rhythm_pipelines.cost.optimizer import GRID_MS, RoutingInfeasible, RoutingProblem, build_problem, solve
from rhythm_pipelines_tests.cost.conftest import make_calls


def small_problem(seed: int) -> RoutingProblem:
    """2 classes x 3 routes, one slot, random prices, latencies, errors and limits (tight enough to bind)."""
    rng = np.random.default_rng(seed)
    K, C = 2, 3
    samples = [np.sort(rng.lognormal(np.log(rng.uniform(100, 1000)), 0.3, 400)) for _ in range(C)]
    allowed = np.ones((K, C), dtype=bool)
    allowed[0, rng.integers(0, C)] = False  # class 0 may not use one route
    return RoutingProblem(
        classes=["a", "b"],
        routes=[f"r{j}@x" for j in range(C)],
        slots=[0],
        calls_per_day=rng.uniform(500, 2000, (1, K)),
        peak_per_min=rng.uniform(1, 3, (1, K)),
        tokens_per_call=rng.uniform(500, 1500, K),
        cost=rng.uniform(0.001, 0.02, (K, C)),
        allowed=allowed,
        mean_latency=np.array([[s.mean() for s in samples]]),
        error_rate=rng.uniform(0.0, 0.06, C),
        rpm=rng.uniform(1.0, 4.0, C),
        tpm=np.full(C, np.inf),
        survival=np.array([1 - np.searchsorted(s, GRID_MS, side="right") / len(s) for s in samples]),
        samples=samples,
        utilisation=1.0,
    )


def feasible(p: RoutingProblem, x: np.ndarray, budget: float, max_err: float, tol: float = 1e-7) -> bool:
    w = p.weights
    return bool(
        np.allclose(x.sum(axis=2), 1, atol=tol)
        and (x[0][~p.allowed] <= tol).all()
        and ((p.peak_per_min[0] @ x[0]) <= p.rpm + tol).all()
        and (p.calls_per_day[0] @ (p.cost * x[0])).sum() <= budget + tol
        and (w[0] @ (x[0] * p.error_rate)).sum() <= max_err + tol
    )


def simplex(n: int, step: float) -> list[np.ndarray]:
    ticks = int(round(1 / step))
    return [np.array(c) * step for c in itertools.product(range(ticks + 1), repeat=n) if sum(c) == ticks]


@pytest.mark.parametrize("seed", range(6))
def test_the_lp_is_at_least_as_good_as_brute_force_and_feasible(seed):
    p = small_problem(seed)
    cheapest = solve(p, objective="cost").expected["cost_usd"]
    budget, max_err = cheapest * 1.3, 0.05
    try:
        plan = solve(p, budget=budget, max_error_rate=max_err)
    except RoutingInfeasible:
        plan = None
    grid = simplex(3, 0.05)
    best = np.inf
    for a, b in itertools.product(grid, grid):
        x = np.array([[a, b]])
        if feasible(p, x, budget, max_err):
            best = min(best, p.evaluate(x)["mean_latency_ms"])
    if plan is None:
        assert best == np.inf  # brute force finds nothing either
        return
    assert feasible(p, plan.shares, budget, max_err)
    assert plan.expected["mean_latency_ms"] <= best + 1e-6
    assert best - plan.expected["mean_latency_ms"] < 0.1 * best  # and not absurdly far from the grid's best


def test_an_infeasible_budget_names_the_cheapest_feasible_one(catalog):
    calls = make_calls({"premium": (300, 0.0), "cheap": (800, 0.0)}, {("premium", "hard"): 1, ("cheap", "easy"): 2})
    p = build_problem(calls, catalog)
    cheapest = solve(p, objective="cost").expected["cost_usd"]
    with pytest.raises(RoutingInfeasible, match=r"cheapest feasible plan costs \$") as info:
        solve(p, budget=cheapest * 0.5)
    assert info.value.min_budget == pytest.approx(cheapest, rel=1e-6)
    assert solve(p, budget=info.value.min_budget * (1 + 1e-6)).expected["cost_usd"] <= cheapest * (1 + 1e-5)


def test_rate_limits_hold_in_the_plan_and_a_shortfall_is_explained(catalog):
    # easy work at 6/min would all go to `cheap`, which takes 3 requests a minute
    calls = make_calls(
        {"premium": (300, 0.0), "cheap": (400, 0.0), "slow": (2000, 0.0)},
        {("premium", "hard"): 1, ("cheap", "easy"): 3, ("slow", "easy"): 3},
    )
    p = build_problem(calls, catalog, utilisation=0.9)
    plan = solve(p, objective="cost")
    load = plan.load().set_index("route")
    assert load.loc["cheap@r1", "peak_rpm"] <= 0.9 * 3 + 1e-6
    assert load.loc["cheap@r1", "peak_rpm"] == pytest.approx(0.9 * 3, rel=1e-3)  # the cheap route is used up
    easy = p.classes.index("easy")
    assert plan.daily_shares[easy, p.routes.index("slow@r1")] > 0.4
    scarce = replace(catalog.channels["premium"], requests_per_minute=0.5)  # hard work needs ~1/min
    tight = build_problem(calls, replace(catalog, channels={**catalog.channels, "premium": scarce}))
    with pytest.raises(RoutingInfeasible, match="class 'hard' needs more than its allowed routes' limits"):
        solve(tight)


def test_a_p95_slo_holds_for_the_mix_and_an_impossible_one_is_refused(catalog):
    calls = make_calls({"premium": (300, 0.0), "slow": (2000, 0.0)}, {("premium", "hard"): 1, ("slow", "easy"): 2})
    p = build_problem(calls, catalog)
    free = solve(p, objective="cost")
    assert free.expected["p95_latency_ms"] > 1500  # unconstrained, easy work goes to `slow`
    plan = solve(p, p95_slo_ms=1500, objective="cost")
    mix = np.einsum("sk,skc->c", p.weights, plan.shares)
    assert mix @ p.tail(1500) <= 0.05 + 1e-9
    assert plan.expected["cost_usd"] > free.expected["cost_usd"]
    with pytest.raises(RoutingInfeasible, match="no mix meets the latency target"):
        solve(p, p95_slo_ms=50, objective="cost")


def test_hourly_slots_use_cheap_capacity_off_peak(catalog):
    """Demand that peaks for an hour a day: a single mix must fit the peak all day, hourly ones need not."""
    calls = make_calls({"premium": (300, 0.0), "cheap": (400, 0.0)}, {("cheap", "easy"): 1.5, ("premium", "hard"): 1})
    burst = make_calls({"premium": (300, 0.0)}, {("premium", "easy"): 6}, days=1 / 24, seed=3)
    calls = pd_concat(calls, burst.assign(ts=burst["ts"] + np.timedelta64(12, "h")))
    hourly = solve(build_problem(calls, catalog, slots=24), objective="cost").expected["cost_usd"]
    single = solve(build_problem(calls, catalog, slots=1), objective="cost").expected["cost_usd"]
    assert hourly < 0.9 * single


def pd_concat(*frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True).sort_values("ts", ignore_index=True)
