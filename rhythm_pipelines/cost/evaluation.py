"""Fit a routing plan on all but the last day of a call log and replay the last day under it and the
other policies: the figures ``rhythm cost optimize`` prints."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from rhythm_pipelines.cost.catalog import Catalog
from rhythm_pipelines.cost.optimizer import Plan, RoutingProblem, build_problem, solve
from rhythm_pipelines.cost.replay import Outcome, Replay, compare, dominated_by

DEFAULT_MAX_ERROR_RATE = 0.05


@dataclass
class Evaluation:
    problem: RoutingProblem
    plan: Plan
    mode: str  # what the plan optimised, in words
    outcomes: dict[str, Outcome]
    fit_window: tuple[pd.Timestamp, pd.Timestamp]
    replay_window: tuple[pd.Timestamp, pd.Timestamp]

    def as_dict(self) -> dict:
        base, plan = self.outcomes["observed"], self.outcomes["plan"]
        return {
            "baseline": base.summary(),
            "plan": {"shares": self.plan.as_dict(), **plan.summary()},
            "policies": {k: self.outcomes[k].summary() for k in ("cheapest", "fastest", "round_robin")},
            "cost_reduction": round((base.cost_usd - plan.cost_usd) / base.cost_usd, 4) if base.cost_usd else None,
            "latency_change": round((plan.mean_latency_ms - base.mean_latency_ms) / base.mean_latency_ms, 4),
            "mode": self.mode,
            "expected": {k: round(v, 4) for k, v in self.plan.expected.items()},
            "dominated_by": dominated_by(self.outcomes),
            "fit": [t.isoformat() for t in self.fit_window],
            "replay": [t.isoformat() for t in self.replay_window],
        }


def split_last_day(calls: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Calls before the last 24 hours of the log, and those 24 hours."""
    if calls.empty:
        raise ValueError("the call log has no calls")
    end = calls["ts"].max()
    cut = end - pd.Timedelta(days=1)
    fit, last = calls[calls["ts"] <= cut], calls[calls["ts"] > cut]
    if fit.empty:
        raise ValueError(
            f"the call log covers {(end - calls['ts'].min()) / pd.Timedelta(hours=1):.1f} h; "
            "fitting on all but the last day needs more than a day"
        )
    return fit, last


def fit_plan(
    problem: RoutingProblem,
    budget: float | None = None,
    p95_slo_ms: float | None = None,
    max_error_rate: float | None = DEFAULT_MAX_ERROR_RATE,
    observed_mean_latency_ms: float | None = None,
) -> tuple[Plan, str]:
    """With a budget: the fastest mix within it (and the SLO). With only an SLO: the cheapest mix meeting
    it. With neither: the cheapest mix no slower on average than the observed allocation."""
    if budget is not None:
        mode = f"lowest mean latency within ${budget:,.2f}/day" + (f", p95 <= {p95_slo_ms:g} ms" if p95_slo_ms else "")
        return solve(problem, budget, p95_slo_ms, max_error_rate, objective="latency"), mode
    if p95_slo_ms is not None:
        plan = solve(problem, None, p95_slo_ms, max_error_rate, objective="cost")
        return plan, f"cheapest with p95 <= {p95_slo_ms:g} ms"
    if observed_mean_latency_ms is None:
        return solve(problem, None, None, max_error_rate, objective="cost"), "cheapest within the rate limits"
    plan = solve(problem, None, None, max_error_rate, observed_mean_latency_ms, objective="cost")
    return plan, f"cheapest with mean latency <= today's {observed_mean_latency_ms:.0f} ms"

def plan_document(day: pd.Timestamp, plan: Plan, mode: str) -> dict:
    """A fitted plan as kept: the JSON document of the reports directory."""
    return {"day": f"{day:%Y-%m-%d}", "mode": mode, "shares": plan.as_dict(), "expected": plan.expected,
            "hourly": plan.hourly().round(6).to_dict("records")}  # fmt: skip


def plan_row(day: pd.Timestamp, doc: dict) -> pd.DataFrame:
    """A plan document as its ``routing_plans`` row (one per day it was fitted on)."""
    return pd.DataFrame(
        [{"ts": day, "plan_id": doc["day"], "mode": doc["mode"], "shares": json.dumps(doc["shares"]),
          "hourly": json.dumps(doc["hourly"]), "expected": json.dumps(doc["expected"])}]
    )  # fmt: skip



def evaluate(
    calls: pd.DataFrame,
    catalog: Catalog,
    budget: float | None = None,
    p95_slo_ms: float | None = None,
    max_error_rate: float | None = DEFAULT_MAX_ERROR_RATE,
    utilisation: float = 0.9,
    slots: int = 24,
    seed: int = 0,
) -> Evaluation:
    fit, last = split_last_day(calls)
    problem = build_problem(fit, catalog, utilisation, slots)
    observed = float(fit["latency_ms"].mean())
    plan, mode = fit_plan(problem, budget, p95_slo_ms, max_error_rate, observed)
    replay = Replay(last, problem, catalog, seed)
    return Evaluation(
        problem,
        plan,
        mode,
        compare(replay, plan),
        (fit["ts"].min(), fit["ts"].max()),
        (last["ts"].min(), last["ts"].max()),
    )
