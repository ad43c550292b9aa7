"""Budget-constrained routing as a linear programme, solved exactly with HiGHS (scipy).

Variables: the share ``x[s, k, c]`` of request class ``k`` sent to route ``c`` (a channel in a region) in time
slot ``s`` (an hour of the day by default: demand has a daily rhythm and the limits are per minute, so a
mix for quiet hours can use the cheap routes more than one for the peak). Per slot and class the shares
sum to 1; only the pairs the catalog allows exist. Constraints, all linear:

- budget: ``sum N[s, k] cost[k, c] x[s, k, c] <= B`` (N: calls per day);
- rate limits per slot and route, at the slot's busiest observed hour, with ``utilisation`` headroom:
  ``sum_k peak[s, k] x[s, k, c] <= u * rpm_c`` and the same with tokens per call against ``tpm_c``;
- error ceiling on the expected share of failed calls: ``sum w[s, k] err_c x[s, k, c] <= e``;
- a p95 latency SLO, exact for a mixture: p95 <= Y iff ``P(latency > Y) = sum w[s, k] P_c(L > Y) x[s, k, c]
  <= 0.05`` (w: the share of the day's traffic);
- optionally a ceiling on the expected mean latency.

The objective is the expected mean latency (``latency``) or the expected daily cost (``cost``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.cost.catalog import Catalog

GRID_MS = np.unique(np.concatenate([np.arange(0, 2000, 5.0), np.geomspace(2000, 600_000, 600)]))


class RoutingInfeasible(ValueError):
    """No routing meets the constraints; ``min_budget`` is the cheapest feasible daily budget when only
    the budget was too tight."""

    def __init__(self, message: str, min_budget: float | None = None):
        super().__init__(message)
        self.min_budget = min_budget


@dataclass
class RoutingProblem:
    """Demand per time slot (hour of day by default) and class, routes with prices, limits and latency."""

    classes: list[str]
    routes: list[str]  # channel@region
    slots: list[int]  # hours of the day the shares are for ([0] with a single slot: one mix all day)
    calls_per_day: np.ndarray  # (S, K) calls of class k per day in slot s
    peak_per_min: np.ndarray  # (S, K) calls per minute in the slot's busiest observed hour
    tokens_per_call: np.ndarray  # (K,) input + output tokens
    cost: np.ndarray  # (K, C) price per call of class k on route c
    allowed: np.ndarray  # (K, C) bool
    mean_latency: np.ndarray  # (S, C) per slot: a route's mean x the slot's daily-rhythm factor
    error_rate: np.ndarray  # (C,) errors and timeouts
    rpm: np.ndarray  # (C,) inf: no limit
    tpm: np.ndarray  # (C,)
    survival: np.ndarray  # (C, G) P(latency > GRID_MS[g]) per route
    samples: list[np.ndarray] = field(default_factory=list)  # sorted latencies per route (exact tails)
    utilisation: float = 0.9

    @property
    def weights(self) -> np.ndarray:
        """(S, K): each slot and class's share of the day's calls."""
        total = self.calls_per_day.sum()
        return self.calls_per_day / total if total > 0 else self.calls_per_day

    def slot_of(self, hours: np.ndarray) -> np.ndarray:
        return np.asarray(hours) * len(self.slots) // 24

    def tail(self, y_ms: float) -> np.ndarray:
        """P(latency > y) per route."""
        if self.samples:
            return np.array([1 - np.searchsorted(s, y_ms, side="right") / len(s) for s in self.samples])
        return np.array([np.interp(y_ms, GRID_MS, s) for s in self.survival])

    def evaluate(self, shares: np.ndarray) -> dict[str, float]:
        """Expected daily cost, mean and p95 latency and error rate of an (S, K, C) share array."""
        w = self.weights
        mix = np.einsum("sk,skc->c", w, shares)  # the share of all traffic on each route
        return {
            "cost_usd": float(np.einsum("sk,kc,skc->", self.calls_per_day, self.cost, shares)),
            "mean_latency_ms": float(np.einsum("sk,sc,skc->", w, self.mean_latency, shares)),
            "p95_latency_ms": self.mixture_p95(mix),
            "error_rate": float(mix @ self.error_rate),
        }

    def mixture_p95(self, mix: np.ndarray) -> float:
        """The p95 latency of traffic spread over the routes by ``mix``: the smallest observed latency y with
        P(latency > y) <= 5%, from the routes' own samples (the tail the SLO constraint uses)."""
        used = np.flatnonzero(mix > 1e-12)
        if not self.samples or not len(used):
            return float("nan")
        coarse = np.flatnonzero(mix @ self.survival <= 0.05 + 1e-12)  # bracket it on the grid first
        hi = GRID_MS[coarse[0]] if len(coarse) else np.inf
        lo = GRID_MS[coarse[0] - 1] if len(coarse) and coarse[0] > 0 else -np.inf
        ys = np.unique(np.concatenate([s[(s > lo) & (s <= hi)] for s in (self.samples[j] for j in used)]))
        if not len(ys):
            return float(hi)
        tail = np.zeros(len(ys))
        for j in used:
            s = self.samples[j]
            tail += mix[j] * (1 - np.searchsorted(s, ys, side="right") / len(s))
        return float(ys[np.argmax(tail <= 0.05 + 1e-12)])


@dataclass
class Plan:
    problem: RoutingProblem
    shares: np.ndarray  # (S, K, C)
    objective: str
    constraints: dict[str, float | None]

    @property
    def expected(self) -> dict[str, float]:
        return self.problem.evaluate(self.shares)

    @property
    def daily_shares(self) -> np.ndarray:
        """(K, C): each class's shares over the whole day (slots weighted by their demand)."""
        n = self.problem.calls_per_day
        total = n.sum(axis=0)
        return np.einsum("sk,skc->kc", n, self.shares) / np.where(total > 0, total, 1)[:, None]

    def table(self, min_share: float = 1e-6) -> pd.DataFrame:
        """class, route, share of the day (only the routes in use)."""
        d = self.daily_shares
        k, c = np.nonzero(d > min_share)
        return pd.DataFrame(
            {"class": [self.problem.classes[i] for i in k], "route": [self.problem.routes[j] for j in c],
             "share": d[k, c]}
        )  # fmt: skip

    def as_dict(self) -> dict[str, dict[str, float]]:
        """{class: {route: share of the day}} for the routes in use."""
        out: dict[str, dict[str, float]] = {}
        for row in self.table().itertuples(index=False):
            out.setdefault(row[0], {})[row[1]] = round(float(row[2]), 6)
        return out

    def hourly(self, min_share: float = 1e-6) -> pd.DataFrame:
        """slot (hour), class, route, share: the full plan."""
        s, k, c = np.nonzero(self.shares > min_share)
        p = self.problem
        return pd.DataFrame(
            {"hour": [p.slots[i] for i in s], "class": [p.classes[i] for i in k], "route": [p.routes[j] for j in c],
             "share": self.shares[s, k, c]}
        )  # fmt: skip

    def load(self) -> pd.DataFrame:
        """Per route: planned calls and tokens per minute in the busiest slot, against the limits."""
        p = self.problem
        rpm = np.einsum("sk,skc->sc", p.peak_per_min, self.shares).max(axis=0)
        tpm = np.einsum("sk,k,skc->sc", p.peak_per_min, p.tokens_per_call, self.shares).max(axis=0)
        return pd.DataFrame(
            {"route": p.routes, "peak_rpm": rpm, "rpm_limit": p.rpm, "peak_tpm": tpm, "tpm_limit": p.tpm}
        )


def build_problem(
    calls: pd.DataFrame,
    catalog: Catalog,
    utilisation: float = 0.9,
    slots: int = 24,
    min_route_calls: int = 20,
) -> RoutingProblem:
    """A routing problem from a call log: class demand per hour-of-day slot (``slots`` of 24, 12, ... 1
    per day), per-route latency and errors, catalog prices and limits. Routes need ``min_route_calls``
    observed calls (their latency is measured, not guessed)."""
    if calls.empty:
        raise RoutingInfeasible("no calls to fit a routing plan on")
    if slots < 1 or 24 % slots:
        raise ValueError(f"slots must divide 24, not {slots}")
    priced = catalog.price_calls(calls)
    route = priced["channel"] + "@" + priced["region"]
    counts = route.value_counts()
    keep = [
        r for r in sorted(counts.index) if counts[r] >= min_route_calls and catalog.price(*r.split("@", 1)) is not None
    ]
    if not keep:
        raise RoutingInfeasible(f"no route has {min_route_calls}+ calls and a price in {catalog.origin}")
    classes = sorted(priced["cls"].unique())
    K, C, S = len(classes), len(keep), slots
    ok = priced["status"].eq("ok")
    tin = pd.to_numeric(priced["tokens_in"], errors="coerce").astype("float64")
    tout = (
        pd.to_numeric(priced["tokens_out"], errors="coerce").astype("float64").where(ok)
    )  # a failed call's output is unknown
    mean_in = tin.groupby(priced["cls"]).mean().reindex(classes).fillna(0).to_numpy()
    mean_out = tout.groupby(priced["cls"]).mean().reindex(classes).fillna(0).to_numpy()
    slot = (priced["ts"].dt.hour * S // 24).to_numpy()
    k_of = pd.Categorical(priced["cls"], categories=classes).codes
    # calls per day in each slot: over the days that slot was seen (a log need not cover whole days)
    seen = pd.Series(priced["ts"].dt.floor("D").to_numpy()).groupby(slot).nunique().reindex(range(S)).fillna(1)
    per_day = np.zeros((S, K))
    np.add.at(per_day, (slot, k_of), 1.0)
    per_day /= seen.to_numpy()[:, None]
    hourly = priced.groupby([slot, k_of, priced["ts"].dt.floor("h")]).size()
    peak = np.zeros((S, K))
    for (s, k), v in hourly.groupby(level=[0, 1]).max().items():
        peak[s, k] = v / 60.0

    failed = ~ok.to_numpy()
    groups = route.groupby(route).indices
    err = np.array([failed[groups[r]].mean() for r in keep])
    cost = np.zeros((K, C))
    allowed = np.zeros((K, C), dtype=bool)
    rpm, tpm = np.full(C, np.inf), np.full(C, np.inf)
    for j, r in enumerate(keep):
        channel, region = r.split("@", 1)
        price = catalog.price(channel, region)
        # priced as if it succeeds: a failed call is usually retried, so a flaky route must not look cheap
        cost[:, j] = price.cost(mean_in, mean_out)
        rpm[j] = price.requests_per_minute or np.inf
        tpm[j] = price.tokens_per_minute or np.inf
        for i, k in enumerate(classes):
            allowed[i, j] = catalog.allows(k, channel, region)
    lat = priced["latency_ms"].to_numpy(dtype=float)
    samples = [np.sort(lat[groups[r]]) for r in keep]
    survival = np.array([1 - np.searchsorted(s, GRID_MS, side="right") / len(s) for s in samples])
    overall = np.array([s.mean() for s in samples])
    # latency per slot = the route's mean x the slot's factor shared by all routes (the daily rhythm):
    # per-route-and-hour means from a day or two are noise and one-off incidents, not a pattern
    on = route.isin(keep).to_numpy()
    ratio = lat[on] / overall[pd.Categorical(route[on], categories=keep).codes]
    factor = pd.Series(ratio).groupby(slot[on]).mean().reindex(range(S)).fillna(1.0).to_numpy()
    mean_latency = factor[:, None] * overall[None, :]
    return RoutingProblem(
        classes=classes,
        routes=keep,
        slots=[s * 24 // S for s in range(S)],
        calls_per_day=per_day,
        peak_per_min=peak,
        tokens_per_call=mean_in + mean_out,
        cost=cost,
        allowed=allowed,
        mean_latency=mean_latency,
        error_rate=err,
        rpm=rpm,
        tpm=tpm,
        survival=survival,
        samples=samples,
        utilisation=utilisation,
    )


def solve(
    problem: RoutingProblem,
    budget: float | None = None,
    p95_slo_ms: float | None = None,
    max_error_rate: float | None = None,
    max_mean_latency_ms: float | None = None,
    objective: str = "latency",
    explain: bool = True,
) -> Plan:
    """The optimal shares; raises RoutingInfeasible with the reason (and the cheapest feasible budget)."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    if objective not in ("latency", "cost"):
        raise ValueError(f"objective must be latency or cost, not {objective!r}")
    p = problem
    S, K, C = len(p.slots), len(p.classes), len(p.routes)
    missing = [k for k in range(K) if not p.allowed[k].any()]
    if missing:
        raise RoutingInfeasible(f"no priced route with observed calls may serve class {p.classes[missing[0]]!r}")
    # a variable per (slot, class, route) the catalog allows, for the slots and classes with demand
    si, ki = np.nonzero(p.calls_per_day > 0)
    if not len(si):
        raise RoutingInfeasible("no demand to route")
    gi = np.repeat(np.arange(len(si)), p.allowed[ki].sum(axis=1))
    ci = np.concatenate([np.flatnonzero(p.allowed[k]) for k in ki])
    vs, vk = si[gi], ki[gi]
    n = len(ci)
    w = p.weights
    daily_cost = p.calls_per_day[vs, vk] * p.cost[vk, ci]
    latency = w[vs, vk] * p.mean_latency[vs, ci]
    rows, cols, vals, rhs = [], [], [], []

    def add(coef: np.ndarray, bounds: np.ndarray, row_of: np.ndarray, var: np.ndarray) -> None:
        rows.append(len(rhs) + row_of)
        cols.append(var)
        vals.append(coef)
        rhs.extend(bounds)

    u = p.utilisation
    for limit, per_call in ((p.rpm, np.ones(K)), (p.tpm, p.tokens_per_call)):
        finite = np.isfinite(limit)
        var = np.flatnonzero(finite[ci])
        if len(var):  # one row per (slot, limited route)
            key = vs[var] * C + ci[var]
            uniq, row_of = np.unique(key, return_inverse=True)
            add(p.peak_per_min[vs[var], vk[var]] * per_call[vk[var]], u * limit[uniq % C], row_of, var)
    everything = np.arange(n)
    one = np.zeros(n, dtype=int)
    if max_error_rate is not None:
        add(w[vs, vk] * p.error_rate[ci], [max_error_rate], one, everything)
    if p95_slo_ms is not None:
        add(w[vs, vk] * p.tail(p95_slo_ms)[ci], [0.05], one, everything)
    if max_mean_latency_ms is not None:
        add(latency, [max_mean_latency_ms], one, everything)
    if budget is not None:
        add(daily_cost, [budget], one, everything)
    a_ub = None
    if rhs:
        a_ub = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(rhs), n))
        a_ub = a_ub.tocsr()
    a_eq = coo_matrix((np.ones(n), (gi, everything)), shape=(len(si), n)).tocsr()
    scale = daily_cost.max() or 1.0
    if objective == "latency":  # ties go to the cheaper mix
        c = latency / max(latency.max(), 1e-12) + 1e-6 * daily_cost / scale
    else:  # ties go to the faster mix
        c = daily_cost / scale + 1e-6 * latency / max(latency.max(), 1e-12)
    res = linprog(c, A_ub=a_ub, b_ub=np.array(rhs) if rhs else None, A_eq=a_eq, b_eq=np.ones(len(si)),
                  bounds=(0, 1), method="highs")  # fmt: skip
    constraints = {"budget": budget, "p95_slo_ms": p95_slo_ms, "max_error_rate": max_error_rate,
                   "max_mean_latency_ms": max_mean_latency_ms}  # fmt: skip
    if res.status == 0:
        shares = np.zeros((S, K, C))
        shares[vs, vk, ci] = np.clip(res.x, 0, 1)
        sums = shares.sum(axis=2, keepdims=True)
        shares = np.where(sums > 0, shares / np.where(sums > 0, sums, 1), 0.0)
        for k in range(K):  # a slot without demand gets the class's day-long mix (it may still see calls)
            empty = p.calls_per_day[:, k] == 0
            if empty.any() and (~empty).any():
                day = np.einsum("s,sc->c", p.calls_per_day[:, k], shares[:, k]) / p.calls_per_day[:, k].sum()
                shares[empty, k] = day
        return Plan(p, shares, objective, constraints)
    if res.status != 2:
        raise RuntimeError(f"HiGHS could not solve the routing problem: {res.message}")
    if not explain:
        raise RoutingInfeasible("infeasible")
    raise _explain(p, budget, p95_slo_ms, max_error_rate, max_mean_latency_ms)


def _explain(p, budget, p95_slo_ms, max_error_rate, max_mean_latency_ms) -> RoutingInfeasible:
    """Why the problem is infeasible: find the smallest set of constraints that already fails."""

    def feasible(**kw) -> Plan | None:
        try:
            return solve(p, objective="cost", explain=False, **kw)
        except RoutingInfeasible:
            return None

    if feasible() is None:
        cap = _capacity_shortfall(p)
        return RoutingInfeasible(
            "the rate limits cannot carry the peak demand"
            + (f": class {cap!r} needs more than its allowed routes' limits" if cap else "")
            + f" (at {p.utilisation:.0%} utilisation)"
        )
    if max_error_rate is not None and feasible(max_error_rate=max_error_rate) is None:
        best = p.weights.sum(axis=0) @ np.array([p.error_rate[p.allowed[k]].min() for k in range(len(p.classes))])
        return RoutingInfeasible(
            f"no mix keeps the error rate under {max_error_rate:.2%} within the rate limits "
            f"(every class on its most reliable route would give {best:.2%})"
        )
    rest = dict(max_error_rate=max_error_rate, p95_slo_ms=p95_slo_ms, max_mean_latency_ms=max_mean_latency_ms)
    cheapest = feasible(**rest)
    if cheapest is None:
        what = [f"p95 <= {p95_slo_ms:g} ms"] if p95_slo_ms is not None else []
        what += [f"mean latency <= {max_mean_latency_ms:g} ms"] if max_mean_latency_ms is not None else []
        also = " and the error ceiling" if max_error_rate is not None else ""
        return RoutingInfeasible(f"no mix meets the latency target ({', '.join(what)}) within the rate limits{also}")
    if budget is None:
        return RoutingInfeasible("HiGHS found the problem infeasible, and no single constraint explains it")
    min_budget = cheapest.expected["cost_usd"]
    return RoutingInfeasible(
        f"a budget of ${budget:,.2f}/day cannot carry the demand; the cheapest feasible plan costs "
        f"${min_budget:,.2f}/day",
        min_budget=min_budget,
    )


def _capacity_shortfall(p: RoutingProblem) -> str | None:
    """A class whose peak alone exceeds what its allowed routes can carry, if any."""
    for k, name in enumerate(p.classes):
        routes = p.allowed[k]
        by_rpm = (p.utilisation * p.rpm[routes]).sum()
        by_tpm = (p.utilisation * p.tpm[routes]).sum() / max(p.tokens_per_call[k], 1e-9)
        if p.peak_per_min[:, k].max() > min(by_rpm, by_tpm):
            return name
    return None
