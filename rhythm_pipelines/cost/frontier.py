"""The cost/latency/error Pareto frontier: of single routes, and of traffic mixes over a budget sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.cost.optimizer import RoutingInfeasible, RoutingProblem, solve


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Mask of the rows no other row dominates (every coordinate <=, one <); lower is better."""
    pts = np.asarray(points, dtype=float)
    keep = np.ones(len(pts), dtype=bool)
    for i in range(len(pts)):
        le = (pts <= pts[i]).all(axis=1)
        lt = (pts < pts[i]).any(axis=1)
        keep[i] = not (le & lt).any()
    return keep


def route_frontier(problem: RoutingProblem) -> pd.DataFrame:
    """Per route: cost per call (for the average request of the classes it may serve), p95 latency, error
    rate, and whether it is on the Pareto frontier of the three."""
    p = problem
    w = p.weights.sum(axis=0)[:, None] * p.allowed  # the classes each route may serve
    cost = (w * p.cost).sum(axis=0) / np.where(w.sum(axis=0) > 0, w.sum(axis=0), 1)
    p95 = np.array([float(np.quantile(s, 0.95)) for s in p.samples])
    frame = pd.DataFrame(
        {
            "route": p.routes,
            "cost_per_call": cost,
            "mean_latency_ms": [float(s.mean()) for s in p.samples],
            "p95_latency_ms": p95,
            "error_rate": p.error_rate,
        }
    )
    frame["pareto"] = non_dominated(frame[["cost_per_call", "p95_latency_ms", "error_rate"]].to_numpy())
    return frame.sort_values("cost_per_call", ignore_index=True)


def budget_curve(problem: RoutingProblem, points: int = 50, **constraints) -> pd.DataFrame:
    """For budgets from the cheapest feasible plan to the fastest plan's cost: the best achievable latency.
    ``constraints`` (p95_slo_ms, max_error_rate) hold at every point."""
    cheapest = solve(problem, objective="cost", **constraints)
    fastest = solve(problem, objective="latency", **constraints)
    lo, hi = cheapest.expected["cost_usd"], fastest.expected["cost_usd"]
    if hi <= lo * (1 + 1e-6):  # the cheapest mix is also the fastest: one point, no trade-off to sweep
        return pd.DataFrame([{"budget_usd": float(lo), **cheapest.expected}])
    rows = []
    for b in np.linspace(lo, hi, points):
        try:
            plan = solve(problem, budget=float(b) * (1 + 1e-9) + 1e-12, objective="latency", **constraints)
        except RoutingInfeasible:
            continue
        rows.append({"budget_usd": float(b), **plan.expected})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    same = out.drop(columns="budget_usd").round(9).duplicated()  # budgets past a plateau buy the same mix
    return out[~same].reset_index(drop=True)


def slo_curve(problem: RoutingProblem, points: int = 25, **constraints) -> pd.DataFrame:
    """The dual: for p95 latency SLOs between the fastest and the cheapest plans' p95, the cheapest mix
    that meets each (infeasible SLOs are left out)."""
    cheapest = solve(problem, objective="cost", **constraints).expected["p95_latency_ms"]
    fastest = solve(problem, objective="latency", **constraints).expected["p95_latency_ms"]
    lo, hi = sorted((fastest, cheapest))
    rows = []
    for y in np.linspace(lo * 0.9, hi, points):
        try:
            plan = solve(problem, p95_slo_ms=float(y), objective="cost", **constraints)
        except RoutingInfeasible:
            continue
        rows.append({"p95_slo_ms": float(y), **plan.expected})
    return pd.DataFrame(rows)
