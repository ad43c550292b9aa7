"""Spend forecasts: the rest of the day, week and month, with intervals, from the hourly spend.

Spend is summed per hour (the calls' logged cost, else the catalog's) and forecast by the project's
forecasters (``forecasting.models``) with a daily season (and a weekly one from two weeks of history): the
mean and the 80/95 % intervals of the hours still to come, summed, plus what is already spent. The
interval of a sum of hours is taken as the sum of the hours' interval half-widths (errors of neighbouring
hours move together: the conservative choice).

``walk_forward`` measures it the way it is used: at each midnight of the log, with only the hours before
it, the next day's spend (``daily``) and the next seven days' (``weekly``), against what was spent, beside
the simple rules a user would try first: the same hours of the last day, and of the same day last week.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MODEL = "mstl"  # daily + weekly seasons where there is the history for them, else ETS on the daily season
RULES = ("last_day", "last_week")
LEVELS = (80, 95)
BACKTEST_DAYS = 7  # a whole week: a weekday-weekend rhythm shows in it


def hourly_spend(calls: pd.DataFrame, catalog, by: str | None = None) -> pd.DataFrame | pd.Series:
    """Spend per hour (a Series), or per hour and ``by`` (channel, region: a frame with one column each);
    hours with no call count as 0 between the first and the last."""
    priced = catalog.price_calls(calls)
    cost = pd.to_numeric(priced["cost"], errors="coerce").fillna(0.0)
    hour = priced["ts"].dt.floor("h")
    if by is None:
        s = cost.groupby(hour).sum()
        return s.reindex(pd.date_range(s.index.min(), s.index.max(), freq="h"), fill_value=0.0)
    frame = cost.groupby([hour, priced[by]]).sum().unstack(fill_value=0.0)
    return frame.reindex(pd.date_range(frame.index.min(), frame.index.max(), freq="h"), fill_value=0.0)


def _seasons(n: int) -> list[int]:
    return [24, 168] if n >= 2 * 168 else [24]


def _rule(y: np.ndarray, hours: int, name: str) -> np.ndarray:
    """The simple rules: the same hours of the last day (``last_day``) or of the same day last week."""
    lag = 24 if name == "last_day" else 168
    return np.resize(y[-lag:][:hours], hours)  # the lagged hours, repeated when the horizon is longer


def _model(y: np.ndarray, hours: int, name: str) -> np.ndarray:
    from rhythm_pipelines.forecasting.models import SeriesModel

    if name in RULES:
        return _rule(y, hours, name)
    seasons = _seasons(len(y))
    fitted = SeriesModel(name if name != "mstl" or len(seasons) > 1 else "ets", seasons).fit(y)
    return np.maximum(fitted.forecast(hours, LEVELS).mean, 0.0)


def candidates(n: int) -> list[str]:
    """The methods a history of ``n`` hours allows: the same day last week needs 8 days (one to test it)."""
    return ["last_day", *(["last_week"] if n >= 8 * 24 else []), MODEL]


def backtest_errors(y: np.ndarray, name: str, days: int = BACKTEST_DAYS) -> np.ndarray:
    """Relative errors of ``name``'s next-day totals at each of the last ``days`` midnights of ``y``."""
    errors = []
    for k in range(days, 0, -1):
        cut = len(y) - 24 * k
        if cut < 48 or (name == "last_week" and cut < 168):
            continue
        actual = y[cut : cut + 24].sum()
        if actual > 0:
            errors.append((_model(y[:cut], 24, name).sum() - actual) / actual)
    return np.asarray(errors)


def forecast_hours(history: pd.Series, hours: int, model: str = "auto") -> pd.DataFrame:
    """The next ``hours`` of spend after ``history`` (hourly): mean and 80/95 % intervals, never below 0.

    ``auto`` picks, from the history alone, the method whose next-day totals erred least over its last
    ``BACKTEST_DAYS`` days (``candidates``); the interval is that method's backtest error quantiles, relative,
    applied to the forecast (no interval under four days of history)."""
    y = history.to_numpy(dtype="float64")
    index = pd.date_range(history.index[-1] + pd.Timedelta(hours=1), periods=hours, freq="h")
    if len(y) < 48:  # under two days: the last day again (or the mean), with no interval to speak of
        mean = _rule(y, hours, "last_day") if len(y) >= 24 else np.full(hours, y.mean() if len(y) else 0.0)
        return pd.DataFrame({"mean": mean, **{f"{b}_{lv}": mean for lv in LEVELS for b in ("lo", "hi")}}, index=index)
    errors = {name: backtest_errors(y, name) for name in candidates(len(y))} if model == "auto" else {}
    tested = {k: v for k, v in errors.items() if len(v)}
    fallback = MODEL if model == "auto" else model
    chosen = min(tested, key=lambda k: (np.abs(tested[k]).mean(), k)) if tested else fallback
    mean = np.maximum(_model(y, hours, chosen), 0.0)
    out = {"mean": mean}
    spread = np.abs(tested.get(chosen, np.zeros(0)))
    for lv in LEVELS:
        q = float(np.quantile(spread, lv / 100)) if len(spread) >= 3 else 0.0
        out[f"lo_{lv}"], out[f"hi_{lv}"] = mean * max(1 - q, 0.0), mean * (1 + q)
    frame = pd.DataFrame(out, index=index)
    frame.attrs["method"] = chosen
    return frame


@dataclass(frozen=True)
class PeriodForecast:
    period: str
    start: pd.Timestamp
    end: pd.Timestamp
    spent: float  # so far
    mean: float  # spent + the forecast of the rest
    lo_80: float
    hi_80: float
    lo_95: float
    hi_95: float


def period_forecasts(hourly: pd.Series, now: pd.Timestamp, model: str = "auto") -> list[PeriodForecast]:
    """Spend of the day, week and month containing ``now``: spent so far plus the forecast of the rest."""
    from rhythm_pipelines.cost.budgets import period_bounds

    now = pd.Timestamp(now)
    seen = hourly[hourly.index < now.floor("h")]
    ends = {p: period_bounds(p, now) for p in ("daily", "weekly", "monthly")}
    longest = max(int((b - now.floor("h")) / pd.Timedelta(hours=1)) for _, b in ends.values())
    fc = forecast_hours(seen, max(longest, 1), model) if len(seen) else None
    out = []
    for period, (a, b) in ends.items():
        spent = float(hourly[(hourly.index >= a) & (hourly.index < now)].sum())
        rest = fc[(fc.index >= now.floor("h")) & (fc.index < b)] if fc is not None else None
        keys = ("mean", "lo_80", "hi_80", "lo_95", "hi_95")
        sums = {k: float(rest[k].sum()) if rest is not None else 0.0 for k in keys}
        half = {lv: (sums[f"hi_{lv}"] - sums[f"lo_{lv}"]) / 2 for lv in LEVELS}  # the hours' half-widths, added
        out.append(
            PeriodForecast(
                period, a, b, spent, spent + sums["mean"],
                max(spent, spent + sums["mean"] - half[80]), spent + sums["mean"] + half[80],
                max(spent, spent + sums["mean"] - half[95]), spent + sums["mean"] + half[95],
            )
        )  # fmt: skip
    return out


def walk_forward(hourly: pd.Series, model: str = "auto", warmup_days: int = 3) -> pd.DataFrame:
    """At each midnight after ``warmup_days`` whole days: the next day's and next week's spend forecast from
    the hours before it, the seasonal-naive rule's, and what was spent (see the module docstring)."""
    days = pd.date_range(hourly.index.min().ceil("D") + pd.Timedelta(days=warmup_days), hourly.index.max(), freq="D")
    rows = []
    for d in days:
        history = hourly[hourly.index < d]
        for horizon, label in ((24, "daily"), (168, "weekly")):
            end = d + pd.Timedelta(hours=horizon)
            if end > hourly.index.max() + pd.Timedelta(hours=1):
                continue
            actual = float(hourly[(hourly.index >= d) & (hourly.index < end)].sum())
            y = history.to_numpy(dtype="float64")
            fc = forecast_hours(history, horizon, model)
            rules = {r: float(_rule(y, horizon, r).sum()) if len(y) >= (168 if r == "last_week" else 24) else np.nan
                     for r in RULES}  # fmt: skip
            rows.append({"origin": d, "horizon": label, "actual": actual, "forecast": float(fc["mean"].sum()),
                         "method": fc.attrs.get("method", model), **rules})  # fmt: skip
    return pd.DataFrame(rows, columns=["origin", "horizon", "actual", "forecast", "method", *RULES])


def mape(frame: pd.DataFrame, column: str = "forecast") -> dict[str, float | None]:
    """MAPE per horizon (``daily``, ``weekly``) of a ``walk_forward`` frame; None where none was made."""
    out: dict[str, float | None] = {}
    for label in ("daily", "weekly"):
        f = frame[(frame["horizon"] == label) & (frame["actual"] > 0) & frame[column].notna()]
        out[label] = float((np.abs(f[column] - f["actual"]) / f["actual"]).mean()) if len(f) else None
    return out
