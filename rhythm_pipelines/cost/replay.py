"""Evaluation by replay: a day's demand (its calls' classes, tokens and times) routed by a policy, each
call's latency and outcome drawn from what its new route actually did in the same hour of that day.

Policies: ``observed`` (the calls as they happened), ``plan`` (the optimiser's shares: a call goes to a
route drawn by its slot and class's shares, or to a route no dearer and no slower than that one when
it has room this minute, as a gateway with weights and spill-over would do), ``cheapest``
(the cheapest allowed route still under its per-minute limits, as LiteLLM's cost-based routing does),
``fastest`` (the lowest mean latency first, under limits) and ``round_robin`` (allowed routes in turn,
skipping full ones). Every policy sees the catalog's per-minute rate limits; a call that finds every
allowed route full goes to its first choice and is counted in ``over_limit_calls``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rhythm_pipelines.cost.catalog import Catalog
from rhythm_pipelines.cost.optimizer import Plan, RoutingProblem

POLICIES = ("observed", "plan", "cheapest", "fastest", "round_robin")


@dataclass(frozen=True)
class Outcome:
    policy: str
    calls: int
    cost_usd: float
    mean_latency_ms: float
    p95_latency_ms: float
    error_rate: float
    over_limit_calls: int
    route_shares: dict[str, float]

    def summary(self) -> dict[str, float]:
        return {
            "cost_usd": round(self.cost_usd, 4),
            "mean_latency_ms": round(self.mean_latency_ms, 1),
            "p95_latency_ms": round(self.p95_latency_ms, 1),
            "error_rate": round(self.error_rate, 5),
            "over_limit_calls": self.over_limit_calls,
        }


class Replay:
    """One day of demand, replayable under any policy over the routes of ``problem``."""

    def __init__(self, day: pd.DataFrame, problem: RoutingProblem, catalog: Catalog, seed: int = 0):
        if day.empty:
            raise ValueError("no calls to replay")
        self.problem, self.catalog, self.seed = problem, catalog, seed
        d = catalog.price_calls(day.sort_values("ts", kind="stable", ignore_index=True))
        d["route"] = d["channel"] + "@" + d["region"]
        ok = d["status"].eq("ok")
        out = pd.to_numeric(d["tokens_out"], errors="coerce").astype("float64")
        typical_out = out.where(ok).groupby(d["cls"]).transform("mean").fillna(0)
        d["demand_out"] = out.where(ok, typical_out).fillna(0)  # a failed call's output is unknown
        d["demand_in"] = pd.to_numeric(d["tokens_in"], errors="coerce").astype("float64").fillna(0)
        self.day = d
        epoch = pd.Timestamp(0, tz="UTC")
        self.minute = ((d["ts"] - epoch) // pd.Timedelta(minutes=1)).to_numpy()  # clock minutes
        hour = d["ts"].dt.floor("h")
        self.hour_codes, self.hours = pd.factorize(hour)
        cls_index = {c: i for i, c in enumerate(problem.classes)}
        unknown = sorted(set(d["cls"]) - set(cls_index))
        if unknown:
            raise ValueError(f"the replayed day has request class(es) the plan never saw: {', '.join(unknown)}")
        self.cls = d["cls"].map(cls_index).to_numpy()
        self.tokens = (d["demand_in"] + d["demand_out"]).to_numpy(dtype=float)
        # outcome pools: the day's calls per route and hour
        route_index = {r: j for j, r in enumerate(problem.routes)}
        self.route_of_call = d["route"].map(route_index).fillna(-1).astype(int).to_numpy()
        self.pools: dict[tuple[int, int], np.ndarray] = {}
        self.day_pools: dict[int, np.ndarray] = {}
        for (j, h), idx in pd.Series(range(len(d))).groupby([self.route_of_call, self.hour_codes]).indices.items():
            if j >= 0:
                self.pools[(int(j), int(h))] = idx
        for j, idx in pd.Series(range(len(d))).groupby(self.route_of_call).indices.items():
            if j >= 0:
                self.day_pools[int(j)] = idx

    # -- routing ----------------------------------------------------------------------------------
    def _route(self, prefs, fallback=None) -> tuple[np.ndarray, int]:
        """Walk the calls in time order; ``prefs(i)`` gives call i's routes in order of preference. A call
        that finds them all full goes to ``fallback(i)`` (default: its first preference), over the limit."""
        p = self.problem
        C = len(p.routes)
        used_calls, used_tokens = np.zeros(C), np.zeros(C)
        current, over = -1, 0
        chosen = np.empty(len(self.cls), dtype=int)
        for i in range(len(self.cls)):
            if self.minute[i] != current:
                current = self.minute[i]
                used_calls[:] = 0
                used_tokens[:] = 0
            order = prefs(i)
            if not len(order):  # a route outside the problem (observed only): not counted
                chosen[i] = -1
                continue
            t = self.tokens[i]
            pick = -1
            for j in order:
                if used_calls[j] + 1 <= p.rpm[j] and used_tokens[j] + t <= p.tpm[j]:
                    pick = j
                    break
            if pick < 0:
                pick, over = (order[0] if fallback is None else fallback(i)), over + 1
            chosen[i] = pick
            used_calls[pick] += 1
            used_tokens[pick] += t
        return chosen, over

    def _allowed_by(self, key: np.ndarray) -> list[np.ndarray]:
        """Per class, its allowed routes sorted by ``key`` (ascending)."""
        p = self.problem
        return [np.array(sorted(np.flatnonzero(p.allowed[k]), key=lambda j: key[k, j])) for k in range(len(p.classes))]

    def _dominating(self, plan: Plan) -> list[list[list[int]]]:
        """Per class and route, the allowed routes no dearer and no slower on average (one strictly), cheapest
        first: a planned call takes one of those when it has room this minute. Each such swap lowers cost and
        mean latency; it may raise the error rate or the tail at the p95 SLO only within the plan's own slack
        under those constraints, so every target the plan was solved for still holds in expectation."""
        p = self.problem
        lat = np.array([x.mean() for x in p.samples])
        expected = plan.expected
        ceiling = plan.constraints.get("max_error_rate")
        err_slack = np.inf if ceiling is None else max(ceiling - expected["error_rate"], 0.0)
        slo = plan.constraints.get("p95_slo_ms")
        tail = p.tail(slo) if slo is not None else np.zeros(len(p.routes))
        mix = np.einsum("sk,skc->c", p.weights, plan.shares)
        tail_slack = np.inf if slo is None else max(0.05 - float(mix @ tail), 0.0)
        out = []
        for k in range(len(p.classes)):
            ok = np.flatnonzero(p.allowed[k])
            per_route = []
            for j in range(len(p.routes)):
                dom = [
                    c
                    for c in ok
                    if c != j
                    and p.cost[k, c] <= p.cost[k, j]
                    and lat[c] <= lat[j]
                    and (p.cost[k, c] < p.cost[k, j] or lat[c] < lat[j])
                    and p.error_rate[c] - p.error_rate[j] <= err_slack
                    and tail[c] - tail[j] <= tail_slack
                ]
                per_route.append(sorted(dom, key=lambda c: (p.cost[k, c], lat[c])))
            out.append(per_route)
        return out

    def assign(self, policy: str, plan: Plan | None = None) -> tuple[np.ndarray, int]:
        p = self.problem
        if policy == "cheapest":
            orders = self._allowed_by(p.cost + 1e-9 * np.arange(len(p.routes))[None, :])
            return self._route(lambda i: orders[self.cls[i]])
        if policy == "fastest":
            overall = np.array([x.mean() for x in p.samples])  # what a latency router has measured
            orders = self._allowed_by(np.broadcast_to(overall, p.allowed.shape) + 1e-9 * p.cost)
            return self._route(lambda i: orders[self.cls[i]])
        if policy == "round_robin":
            orders = self._allowed_by(np.zeros(p.allowed.shape) + np.arange(len(p.routes))[None, :])
            turn = np.zeros(len(p.classes), dtype=int)

            def rotating(i: int) -> np.ndarray:
                k = self.cls[i]
                o = orders[k]
                turn[k] += 1
                return np.roll(o, -(turn[k] - 1))

            return self._route(rotating)
        if policy == "plan":
            if plan is None:
                raise ValueError("the plan policy needs a plan")
            rng = np.random.default_rng([self.seed, 1])
            u = rng.random(len(self.cls))
            slot = p.slot_of(self.day["ts"].dt.hour.to_numpy())
            cum = np.cumsum(plan.shares, axis=2)[slot, self.cls]  # (N, C)
            first = np.minimum((u[:, None] > cum).sum(axis=1), len(p.routes) - 1)
            # a no-dearer, no-slower route with room first, then the drawn one, then (when that is full this
            # minute) the routes by planned share; with everything full, the drawn one, over the limit
            backup = [self._allowed_by(-plan.shares[s]) for s in range(len(p.slots))]
            better = self._dominating(plan)
            return self._route(
                lambda i: [
                    *better[self.cls[i]][first[i]],
                    first[i],
                    *(j for j in backup[slot[i]][self.cls[i]] if j != first[i]),
                ],
                fallback=lambda i: first[i],
            )
        if policy == "observed":
            own = self.route_of_call
            return self._route(lambda i: [own[i]] if own[i] >= 0 else [])
        raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")

    # -- outcomes ---------------------------------------------------------------------------------
    def run(self, policy: str, plan: Plan | None = None) -> Outcome:
        d = self.day
        if policy == "observed":
            routes, over = self.assign("observed")
            latency = d["latency_ms"].to_numpy(dtype=float)
            failed = ~d["status"].eq("ok").to_numpy()
            cost = d["cost"].fillna(0).to_numpy(dtype=float)
            names = d["route"].to_numpy()
        else:
            routes, over = self.assign(policy, plan)
            latency, failed = self._draw(routes)
            cost = np.zeros(len(d))
            out = np.where(failed, 0.0, d["demand_out"].to_numpy(dtype=float))
            for j in np.unique(routes):
                on = routes == j
                channel, region = self.problem.routes[j].split("@", 1)
                cost[on] = self.catalog.price(channel, region).cost(d["demand_in"].to_numpy()[on], out[on])
            names = np.array(self.problem.routes, dtype=object)[routes]
        shares = pd.Series(names).value_counts(normalize=True)
        return Outcome(
            policy=policy,
            calls=len(d),
            cost_usd=float(cost.sum()),
            mean_latency_ms=float(latency.mean()),
            p95_latency_ms=float(np.quantile(latency, 0.95)),
            error_rate=float(failed.mean()),
            over_limit_calls=int(over),
            route_shares={str(k): round(float(v), 6) for k, v in shares.items()},
        )

    def _draw(self, routes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latency and failure of each call on its new route: a call that route served in the same hour
        of the day, else any hour of the day, else the fit period's latency and error rate."""
        rng = np.random.default_rng([self.seed, 2])
        lat_all = self.day["latency_ms"].to_numpy(dtype=float)
        failed_all = ~self.day["status"].eq("ok").to_numpy()
        latency = np.empty(len(routes))
        failed = np.empty(len(routes), dtype=bool)
        keys = pd.Series(range(len(routes))).groupby([routes, self.hour_codes]).indices
        for (j, h), idx in keys.items():
            pool = self.pools.get((int(j), int(h)))
            if pool is None or len(pool) < 3:
                pool = self.day_pools.get(int(j))
            if pool is not None and len(pool):
                pick = pool[rng.integers(0, len(pool), len(idx))]
                latency[idx], failed[idx] = lat_all[pick], failed_all[pick]
            else:
                fit = self.problem.samples[int(j)]
                latency[idx] = fit[rng.integers(0, len(fit), len(idx))]
                failed[idx] = rng.random(len(idx)) < self.problem.error_rate[int(j)]
        return latency, failed


def compare(replay: Replay, plan: Plan) -> dict[str, Outcome]:
    """Every policy over the same day."""
    return {name: replay.run(name, plan if name == "plan" else None) for name in POLICIES}


NOISE = 0.005  # replays draw latencies at random: differences under 0.5% are ties


def dominated_by(outcomes: dict[str, Outcome], name: str = "plan", tolerance: float = NOISE) -> list[str]:
    """The policies better than ``name`` on both cost and mean latency, each by more than ``tolerance``."""
    me = outcomes[name]
    return [
        k
        for k, o in outcomes.items()
        if k != name
        and o.cost_usd < me.cost_usd * (1 - tolerance)
        and o.mean_latency_ms < me.mean_latency_ms * (1 - tolerance)
    ]
