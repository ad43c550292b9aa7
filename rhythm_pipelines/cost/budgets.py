"""Budgets (daily, weekly, monthly; global, per channel, per region), spend to date, the projected
end-of-period spend, and the alerts they raise: once per budget, period and threshold (a stable id).

The projection is spend so far plus the forecast of the period's remaining hours (``projection: forecast``,
the default: ``cost/forecast.py`` on the budget's own hourly spend of the last ``FORECAST_DAYS``, so a quiet
night is not projected as a busy afternoon), or the trailing rate of the last ``projection_window_h`` hours
carried to the end of the period (``projection: trailing``, the rule before forecasts existed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.yaml_lines import ConfigError, Reader, config_text

PERIODS = ("daily", "weekly", "monthly")
PROJECTIONS = ("forecast", "trailing")
FORECAST_DAYS = 15  # hourly spend the forecast learns from: a week of backtest and a week before it


class BudgetError(ConfigError):
    """A budgets file that cannot be used: ``origin:line: path: reason``."""


@dataclass(frozen=True)
class Budget:
    name: str
    period: str
    amount: float
    channel: str | None = None
    region: str | None = None

    @property
    def scope(self) -> str:
        parts = [f"channel {self.channel}" if self.channel else "", f"region {self.region}" if self.region else ""]
        return ", ".join(p for p in parts if p) or "all channels"

    def select(self, spend: pd.DataFrame) -> pd.DataFrame:
        """The rows of a (ts, channel, region, cost) frame this budget covers."""
        keep = pd.Series(True, index=spend.index)
        if self.channel:
            keep &= spend["channel"] == self.channel
        if self.region:
            keep &= spend["region"] == self.region
        return spend[keep]


@dataclass(frozen=True)
class BudgetSet:
    budgets: tuple[Budget, ...]
    thresholds: tuple[float, ...] = (0.85, 0.95, 1.0)
    projection_window_h: float = 24.0
    projection: str = "forecast"


def period_bounds(period: str, ts: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The [start, end) of the period containing ``ts`` (UTC; weeks start on Monday)."""
    day = pd.Timestamp(ts).tz_convert("UTC").floor("D")
    if period == "daily":
        return day, day + pd.Timedelta(days=1)
    if period == "weekly":
        start = day - pd.Timedelta(days=day.dayofweek)
        return start, start + pd.Timedelta(days=7)
    if period == "monthly":
        start = day.replace(day=1)
        return start, start + pd.DateOffset(months=1)
    raise ValueError(f"unknown period {period!r}; known: {', '.join(PERIODS)}")


def period_key(period: str, start: pd.Timestamp) -> str:
    if period == "daily":
        return start.strftime("%Y-%m-%d")
    if period == "weekly":
        iso = start.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return start.strftime("%Y-%m")


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    key: str
    start: pd.Timestamp
    end: pd.Timestamp
    spent: float
    projected: float

    @property
    def used(self) -> float:
        return self.spent / self.budget.amount if self.budget.amount else float("inf")

    @property
    def projected_used(self) -> float:
        return self.projected / self.budget.amount if self.budget.amount else float("inf")


@dataclass(frozen=True)
class BudgetAlert:
    alert_id: str  # budget|period key|threshold: raised once
    status: BudgetStatus
    threshold: str  # "85%", "95%", "100%" or "projected"

    @property
    def text(self) -> str:
        s, b = self.status, self.status.budget
        head = f"budget {b.name} ({b.period}, {b.scope}) {s.key}: "
        if self.threshold == "projected":
            return head + f"projected ${s.projected:,.2f} overruns ${b.amount:,.2f} (spent ${s.spent:,.2f} so far)"
        return head + f"spent ${s.spent:,.2f} = {s.used:.0%} of ${b.amount:,.2f} (crossed {self.threshold})"

    def payload(self) -> dict:
        s, b = self.status, self.status.budget
        return {
            "alert_id": self.alert_id,
            "kind": "budget",
            "budget": b.name,
            "period": b.period,
            "period_key": s.key,
            "scope": b.scope,
            "threshold": self.threshold,
            "amount": b.amount,
            "spent": round(s.spent, 4),
            "projected": round(s.projected, 4),
        }


def forecast_parts(hourly: pd.Series, hour: pd.Timestamp, end: pd.Timestamp) -> tuple[float, float] | None:
    """From the whole hours before ``hour``: the forecast spend of ``hour`` itself and of the hours after it
    up to ``end`` (they change once an hour: a caller may keep them for the hour); None before a whole hour."""
    from rhythm_pipelines.cost.forecast import forecast_hours

    seen = hourly[hourly.index < hour]
    n = int(np.ceil((end - hour) / pd.Timedelta(hours=1)))
    if seen.empty:
        return None  # spend that began this hour: nothing to forecast from yet (the trailing rate will do)
    if n <= 0:
        return 0.0, 0.0
    mean = forecast_hours(seen, n)["mean"].to_numpy()
    return float(mean[0]), float(mean[1:].sum())


def forecast_rest(parts: tuple[float, float], now: pd.Timestamp) -> float:
    """The spend still to come from ``now``: what is left of the current hour's forecast, and the rest."""
    left = 1.0 - (now - now.floor("h")) / pd.Timedelta(hours=1)
    return parts[0] * left + parts[1]


def hourly_of(spend: pd.DataFrame, now: pd.Timestamp) -> pd.Series:
    """A (ts, cost) frame's hourly sums up to ``now``'s hour, hours with nothing as 0."""
    if spend.empty:
        return pd.Series(dtype="float64")
    s = spend["cost"].groupby(spend["ts"].dt.floor("h")).sum()
    return s.reindex(pd.date_range(s.index.min(), now.floor("h"), freq="h"), fill_value=0.0)


def status(
    budget: Budget,
    spend: pd.DataFrame,
    now: pd.Timestamp,
    projection_window_h: float = 24.0,
    rest: float | None = None,
) -> BudgetStatus:
    """Spend to date in the period containing ``now`` and the projection: spend so far plus ``rest`` (the
    forecast of the period's remaining spend) when given, else plus the rate of the last
    ``projection_window_h`` hours (or of the data there is) over the rest of the period.
    ``spend`` has ``ts, channel, region, cost`` rows (calls or daily totals stamped at their start)."""
    start, end = period_bounds(budget.period, now)
    mine = budget.select(spend)
    ts = mine["ts"]
    spent = float(mine.loc[(ts >= start) & (ts <= now), "cost"].sum())
    if rest is not None:
        return BudgetStatus(budget, period_key(budget.period, start), start, end, spent, spent + rest)
    window = pd.Timedelta(hours=projection_window_h)
    first = ts.min() if len(ts) else now
    if now - first < window:  # less history than the window: the rate of all of it
        span = max(now - first, pd.Timedelta(hours=1))
        recent = float(mine.loc[ts <= now, "cost"].sum())
    else:
        span = window
        recent = float(mine.loc[(ts > now - window) & (ts <= now), "cost"].sum())
    rate = recent / span.total_seconds()
    projected = spent + rate * max((end - now).total_seconds(), 0.0)
    return BudgetStatus(budget, period_key(budget.period, start), start, end, spent, projected)


def alerts(st: BudgetStatus, thresholds: tuple[float, ...]) -> list[BudgetAlert]:
    """Every threshold the status has crossed, and a projected overrun (ids repeat: dedup on them)."""
    out = []
    for t in sorted(thresholds):
        if st.used >= t:
            label = f"{t:.0%}"
            out.append(BudgetAlert(f"budget|{st.budget.name}|{st.key}|{label}", st, label))
    if st.projected_used > 1.0 and st.used < 1.0:
        out.append(BudgetAlert(f"budget|{st.budget.name}|{st.key}|projected", st, "projected"))
    return out


def to_send(due: list[BudgetAlert], sent: pd.DataFrame, max_attempts: int = 5) -> list[tuple[BudgetAlert, str]]:
    """The alerts still to send and their run keys, given the ``budget_alerts`` records: a delivered alert is
    done; one whose delivery failed gets a new key per attempt (``id#retryN``) until ``max_attempts``."""
    tried = {
        r.alert_id: (0 if pd.isna(r.delivered) else int(r.delivered), 1 if pd.isna(r.attempts) else int(r.attempts))
        for r in sent.itertuples(index=False)
    }
    out = []
    for a in due:
        delivered, attempts = tried.get(a.alert_id, (0, 0))
        if not delivered and attempts < max_attempts:
            out.append((a, a.alert_id if not attempts else f"{a.alert_id}#retry{attempts}"))
    return out


def attempts_so_far(records: pd.DataFrame) -> int:
    """Delivery attempts already recorded for one alert (its ``budget_alerts`` rows)."""
    return int(records["attempts"].fillna(1).iloc[0]) if len(records) else 0


def load(path: str | Path | None = None) -> BudgetSet:
    """The budgets at ``path``, else ``$RHYTHM_BUDGETS``, else the shipped file."""
    return parse(
        *config_text(path, "RHYTHM_BUDGETS", "rhythm_pipelines.configs", "budgets.yaml", "budgets", BudgetError)
    )


def parse(text: str, origin: str = "<budgets>") -> BudgetSet:
    r = Reader(origin, BudgetError)
    doc = r.mapping(r.load(text), "(top)", ("version", "thresholds", "projection_window_h", "projection", "budgets"))
    if doc.get("version", 1) != 1:
        raise r.fail(doc, "version", f"unsupported version {doc.get('version')!r} (this code reads 1)", "version")
    thresholds = doc.get("thresholds", [0.85, 0.95, 1.0])
    if not isinstance(thresholds, list) or not all(
        isinstance(t, int | float) and not isinstance(t, bool) and t > 0 for t in thresholds
    ):
        raise r.fail(doc, "thresholds", f"expected a list of positive shares, got {thresholds!r}", "thresholds")
    window = r.number(doc, "projection_window_h", "(top)", 24.0)
    projection = doc.get("projection", "forecast")
    if projection not in PROJECTIONS:
        raise r.fail(doc, "projection", f"expected one of {', '.join(PROJECTIONS)}, got {projection!r}", "projection")
    items = doc.get("budgets") or []
    if not isinstance(items, list):
        raise r.fail(doc, "budgets", "expected a list", "budgets")
    budgets, names = [], set()
    for i, item in enumerate(items):
        path = f"budgets[{i}]"
        node = r.mapping(item, path, ("name", "period", "amount", "channel", "region"), doc, "budgets")
        for k in ("name", "period", "amount"):
            if k not in node:
                raise r.fail(node, f"{path}.{k}", "required")
        name = node["name"]
        if not isinstance(name, str) or not name.strip() or "|" in name:
            raise r.fail(node, f"{path}.name", f"expected a name without '|', got {name!r}", "name")
        if name in names:
            raise r.fail(node, f"{path}.name", f"duplicate budget name {name!r}", "name")
        names.add(name)
        if node["period"] not in PERIODS:
            raise r.fail(node, f"{path}.period", f"expected one of {', '.join(PERIODS)}, got {node['period']!r}",
                         "period")  # fmt: skip
        amount = r.number(node, "amount", path)
        if not amount:
            raise r.fail(node, f"{path}.amount", "must be positive", "amount")
        for k in ("channel", "region"):
            if k in node and (not isinstance(node[k], str) or not node[k].strip()):
                raise r.fail(node, f"{path}.{k}", f"expected a name, got {node[k]!r}", k)
        budgets.append(Budget(name, node["period"], amount, node.get("channel"), node.get("region")))
    return BudgetSet(tuple(budgets), tuple(float(t) for t in thresholds), float(window), projection)


def spend_records(read_table, catalog, start: pd.Timestamp, now: pd.Timestamp, window_h: float = 24.0) -> pd.DataFrame:
    """``ts, channel, region, cost`` from ``start`` to ``now``: the channel_costs table's daily totals for
    days it covers that end before the projection window, priced calls for the rest (so the trailing rate
    is measured on calls, and a day the asset has not run for yet is still counted)."""
    recent = min((now - pd.Timedelta(hours=window_h)).floor("D"), now.floor("D"))
    daily = read_table("channel_costs", start, recent) if start < recent else pd.DataFrame()
    frames = []
    covered: set[pd.Timestamp] = set()
    if len(daily):
        frames.append(daily.rename(columns={"cost_usd": "cost"})[["ts", "channel", "region", "cost"]])
        covered = set(daily["ts"].dt.floor("D"))
    day = start.floor("D")
    while day < now:
        if day not in covered:
            calls = read_table("channel_calls", max(day, start), min(day + pd.Timedelta(days=1), now))
            if len(calls):
                frames.append(catalog.price_calls(calls)[["ts", "channel", "region", "cost"]])
        day += pd.Timedelta(days=1)
    if not frames:
        return pd.DataFrame({"ts": pd.Series([], dtype="datetime64[ns, UTC]"), "channel": [], "region": [],
                             "cost": pd.Series([], dtype=float)})  # fmt: skip
    out = pd.concat(frames, ignore_index=True)
    out["cost"] = pd.to_numeric(out["cost"], errors="coerce").fillna(0.0)
    return out


def forecast_rests(budgets: BudgetSet, read_table, catalog, now: pd.Timestamp, cache: dict) -> dict[str, float | None]:
    """Per budget, the forecast of its period's remaining spend from its hourly spend of the last
    ``FORECAST_DAYS`` (None with no whole hour of calls: the trailing rate projects instead). ``cache`` keeps
    each hour's forecasts: the calls are read and the forecasts fitted once an hour."""
    hour = now.floor("h")
    keys = {
        b.name: f"{b.name}|{hour.isoformat()}|{period_bounds(b.period, now)[1].isoformat()}" for b in budgets.budgets
    }
    for stale in set(cache) - set(keys.values()):
        del cache[stale]
    if any(k not in cache for k in keys.values()):
        calls = read_table("channel_calls", now.floor("D") - pd.Timedelta(days=FORECAST_DAYS), now)
        priced = catalog.price_calls(calls)[["ts", "channel", "region", "cost"]] if len(calls) else None
        for b in budgets.budgets:
            if keys[b.name] in cache:
                continue
            if priced is None:
                cache[keys[b.name]] = None
                continue
            mine = b.select(priced).assign(cost=lambda f: pd.to_numeric(f["cost"], errors="coerce").fillna(0.0))
            parts = forecast_parts(hourly_of(mine, now), hour, period_bounds(b.period, now)[1])
            cache[keys[b.name]] = list(parts) if parts is not None else None
    return {name: forecast_rest(tuple(cache[k]), now) if cache[k] is not None else None for name, k in keys.items()}


def check(
    budgets: BudgetSet, read_table, catalog, now: pd.Timestamp, cache: dict | None = None
) -> tuple[list[BudgetStatus], list[BudgetAlert]]:
    """Every budget's status for the period containing ``now``, and the alerts due (not yet deduped).
    ``cache``: the hour's forecasts (see ``status``); entries of other hours are dropped."""
    if not budgets.budgets:
        return [], []
    start = min(period_bounds(b.period, now)[0] for b in budgets.budgets)
    start = min(start, now - pd.Timedelta(hours=budgets.projection_window_h))
    spend = spend_records(read_table, catalog, start, now, budgets.projection_window_h)
    rests = dict.fromkeys((b.name for b in budgets.budgets), None)
    if budgets.projection == "forecast":
        rests = forecast_rests(budgets, read_table, catalog, now, cache if cache is not None else {})
    statuses = [status(b, spend, now, budgets.projection_window_h, rests[b.name]) for b in budgets.budgets]
    return statuses, [a for s in statuses for a in alerts(s, budgets.thresholds)]
