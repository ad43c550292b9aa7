"""The model zoo over statsforecast, and one fitted series model that updates without a refit.

Season lengths come from the sampling step (a day and a week of steps), kept when the history holds two
of them. Models whose statsforecast implementation cannot take a long season (ETS, ARIMA and Theta above
24 steps) are fitted without one; MSTL carries the daily and weekly seasons for them.

``SeriesModel`` fits one statsforecast model on a history, then follows new observations with the fitted
parameters (statsforecast's ``forward``: the state is re-filtered, nothing is re-estimated), so
forecasting from a loaded model costs a filter pass, never a fit. MSTL's update keeps the fitted seasonal
profile: new points are deseasonalised with it and only its trend model is filtered forward.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

MAX_SHORT_SEASON = 24  # ETS/ARIMA/Theta in statsforecast: seasons above this are impractical (or refused)
LEVELS = (80, 95)
DEFAULT_MODELS = ("naive", "median", "seasonal_naive", "ets", "theta", "arima", "mstl")
MAX_HISTORY = 4032  # points a model keeps to follow new observations (two weeks of 5-minute steps)
FIT_WINDOW = 576  # ETS/ARIMA/Theta estimate their parameters on at most this many latest points (2 days of 5 min)
LOCAL_MODELS = ("ets", "theta", "arima")


def season_lengths(step: pd.Timedelta, n: int) -> list[int]:
    """Daily and weekly season lengths in steps of ``step``, each kept when ``n`` points hold two seasons."""
    out = []
    for period in (pd.Timedelta("1D"), pd.Timedelta("7D")):
        m = period / step
        if m >= 2 and float(m).is_integer() and n >= 2 * m:
            out.append(int(m))
    return out


def infer_step(ds: pd.Series | pd.DatetimeIndex) -> pd.Timedelta:
    """The sampling step: the most common gap between timestamps."""
    gaps = pd.Series(pd.DatetimeIndex(ds)).diff().dropna()
    if gaps.empty:
        raise ValueError("need at least two timestamps to infer the sampling step")
    return pd.Timedelta(gaps.mode().iloc[0])


def step_name(step: pd.Timedelta) -> str:
    """A step as a pandas frequency string: ``5min``, ``h``, ``10s``."""
    return to_offset(pd.Timedelta(step)).freqstr


def parse_step(name: str) -> pd.Timedelta:
    """The inverse of ``step_name``."""
    return pd.Timedelta(to_offset(name))


def _short(seasons: Sequence[int]) -> int:
    """The season ETS/ARIMA/Theta can carry: the daily one when it is short (hourly data), else none."""
    return seasons[0] if seasons and seasons[0] <= MAX_SHORT_SEASON else 1


def _stl_jumps(period: int, s_window: int) -> dict[str, int]:
    """STL's loess jumps at a tenth of each window, as R's ``stl`` does by default (statsmodels uses 1): the
    smooths are evaluated every ``jump`` points and interpolated, ~3x faster at a daily season of 288."""
    trend = 1.5 * period / (1 - 1.5 / s_window)
    return {"trend_jump": math.ceil(trend / 10), "low_pass_jump": math.ceil((period + 1) / 10)}


def make_model(name: str, seasons: Sequence[int]):
    """A fresh statsforecast model of the zoo by name (ARIMA with R's approximation for long series)."""
    from statsforecast.models import MSTL, AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive

    from rhythm_pipelines.forecasting.robust import AutoMedian

    m = _short(seasons)
    factories: dict[str, Callable] = {
        "naive": Naive,
        "median": AutoMedian,
        "seasonal_naive": lambda: SeasonalNaive(season_length=seasons[0] if seasons else 1),
        "ets": lambda: AutoETS(season_length=m),
        "theta": lambda: AutoTheta(season_length=m),
        "arima": lambda: AutoARIMA(season_length=m, approximation=True),
        "mstl": lambda: MSTL(
            season_length=list(seasons),
            trend_forecaster=AutoETS(model="AZN"),
            stl_kwargs=_stl_jumps(min(seasons), 11) if seasons else {},
        ),
    }
    if name not in factories:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(factories)}")
    return factories[name]()


def available(names: Sequence[str], seasons: Sequence[int]) -> list[str]:
    """The models of ``names`` that make sense for these seasons (seasonal ones need a season)."""
    return [n for n in names if seasons or n not in ("seasonal_naive", "mstl")]


@dataclass
class Forecast:
    mean: np.ndarray
    lo: dict[int, np.ndarray]
    hi: dict[int, np.ndarray]


def _as_forecast(res: dict, levels: Sequence[int]) -> Forecast:
    return Forecast(
        np.asarray(res["mean"], dtype="float64"),
        {lv: np.asarray(res[f"lo-{lv}"], dtype="float64") for lv in levels},
        {lv: np.asarray(res[f"hi-{lv}"], dtype="float64") for lv in levels},
    )


class SeriesModel:
    """One zoo model fitted on one series; ``update`` follows new points, ``forecast`` is cheap."""

    def __init__(self, name: str, seasons: Sequence[int], max_history: int = MAX_HISTORY):
        self.name, self.seasons, self.max_history = name, list(seasons), max_history
        self.model = make_model(name, self.seasons)
        self.y = np.zeros(0)
        self.n_seen = 0  # points seen since the fit's first one (aligns MSTL's seasonal profile)
        self.fitted_n = 0

    def fit(self, y: np.ndarray) -> SeriesModel:
        """Estimate on ``y`` (ETS/ARIMA/Theta on its last ``FIT_WINDOW`` points); the state ends at its end."""
        y = np.asarray(y, dtype="float64")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            self.model.fit(y[-FIT_WINDOW:] if self.name in LOCAL_MODELS else y)
        self.y = y[-self.max_history :].copy()
        self.n_seen = self.fitted_n = len(y)
        if self.name == "mstl":
            self._profile = self._seasonal_profile()
        return self

    def update(self, values: np.ndarray) -> SeriesModel:
        """Follow new observations with the fitted parameters (no re-estimation)."""
        values = np.asarray(values, dtype="float64")
        if len(values):
            self.y = np.concatenate([self.y, values])[-self.max_history :]
            self.n_seen += len(values)
        return self

    def forecast(self, h: int, levels: Sequence[int] = LEVELS) -> Forecast:
        """``h`` steps after the last point seen, with ``levels`` % prediction intervals."""
        levels = list(levels)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if self.n_seen == self.fitted_n:
                return _as_forecast(self.model.predict(h=h, level=levels), levels)
            if self.name == "mstl":
                return self._forward_mstl(h, levels)
            return _as_forecast(self.model.forward(y=self.y, h=h, level=levels), levels)

    # -- MSTL: a fixed seasonal profile, the trend model filtered forward ---------------------------------

    def _seasonal_profile(self) -> list[tuple[int, np.ndarray]]:
        """(period, the last period of the seasonal component) for each season, ending at the fit's end."""
        comp = self.model.model_
        cols = [c for c in comp.columns if c.startswith("seasonal")]
        periods = self.model.season_length
        return [(p, comp[c].to_numpy()[-p:].copy()) for p, c in zip(periods, cols, strict=True)]

    def _seasonal(self, positions: np.ndarray) -> np.ndarray:
        """The seasonal part at absolute positions (0 = the fit's first point)."""
        out = np.zeros(len(positions))
        for p, last in self._profile:
            # last[k] belongs to position fitted_n - p + k; so position t maps to (t - fitted_n) mod p
            out += last[(positions - self.fitted_n) % p]
        return out

    def _forward_mstl(self, h: int, levels: list[int]) -> Forecast:
        first = self.n_seen - len(self.y)
        adjusted = self.y - self._seasonal(np.arange(first, self.n_seen))
        res = self.model.trend_forecaster.forward(y=adjusted, h=h, level=levels)
        seas = self._seasonal(np.arange(self.n_seen, self.n_seen + h))
        return _as_forecast({k: np.asarray(v) + seas for k, v in res.items()}, levels)


class EnsembleModel:
    """The mean of several fitted members (their intervals averaged too)."""

    name = "ensemble"

    def __init__(self, members: Sequence[SeriesModel]):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self.members]

    def update(self, values: np.ndarray) -> EnsembleModel:
        for m in self.members:
            m.update(values)
        return self

    def forecast(self, h: int, levels: Sequence[int] = LEVELS) -> Forecast:
        parts = [m.forecast(h, levels) for m in self.members]
        return Forecast(
            np.mean([p.mean for p in parts], axis=0),
            {lv: np.mean([p.lo[lv] for p in parts], axis=0) for lv in levels},
            {lv: np.mean([p.hi[lv] for p in parts], axis=0) for lv in levels},
        )


def naive_forecast(y: np.ndarray, h: int) -> np.ndarray:
    return np.full(h, y[-1])


def seasonal_naive_forecast(y: np.ndarray, h: int, m: int) -> np.ndarray:
    """The value one season before each target step (naive when there is no season or history)."""
    if m <= 1 or len(y) < m:
        return naive_forecast(y, h)
    reps = math.ceil(h / m)
    return np.tile(y[-m:], reps)[:h]


class GuardedModel:
    """A model watched against Naive on its own forecasts: each new point scores every forecast still
    pending on it (the model's value for that step against the last value known when it was issued). If,
    over the last ``window`` points, the model's summed error is above Naive's, Naive is served (with the
    model's intervals moved onto it) until the model wins again. This catches a fitted model that no longer
    fits (a mean it reverts to that is gone) between refits. Forecasts are issued at every point ``update``
    sees.

    A level shift needs a faster answer: there every pending forecast, the model's and Naive's alike, was
    issued before the shift, so the summed errors move together while the model's lead from before the
    shift still counts. The *shock* rule looks at the freshest forecast only: when the model's one-step
    error is over ``shock_ratio`` times Naive's and over ``shock_scale`` times the typical one-step move,
    the series has left the model behind; the record is cleared and Naive is served until ``min_count``
    new points have been scored.
    """

    def __init__(
        self,
        model,
        h: int,
        window: int = 36,
        min_count: int = 12,
        levels: Sequence[int] = LEVELS,
        shock_ratio: float = 3.0,
        shock_scale: float = 4.0,
        widths=None,
    ):
        self.model, self.h, self.window, self.min_count = model, h, window, min_count
        self.widths = widths  # ConformalWidths: intervals from held-out errors instead of the model's own
        self.levels = tuple(levels)
        self.shock_ratio, self.shock_scale = shock_ratio, shock_scale
        self.name = model.name
        self._pending: deque[tuple[int, np.ndarray, float]] = deque()  # (origin, model mean, last value)
        self._errors: deque[tuple[float, float]] = deque(maxlen=window)  # per point: (model, naive) |err| sums
        self._moves: deque[float] = deque(maxlen=window)  # |one-step changes|: the typical move
        self._shocked = False
        self._n = 0
        self._last = math.nan
        self._cache: Forecast | None = None

    @property
    def fallback(self) -> bool:
        """True while Naive is being served instead of the model."""
        if len(self._errors) < self.min_count:
            return self._shocked
        model_err, naive_err = np.sum(self._errors, axis=0)
        return bool(model_err > naive_err)

    def start(self, y: np.ndarray) -> GuardedModel:
        """Begin watching after the fit on ``y``."""
        self._n, self._last = len(y), float(y[-1])
        self._moves.extend(np.abs(np.diff(np.asarray(y[-self.window - 1 :], dtype="float64"))))
        self._issue()
        return self

    def _issue(self) -> None:
        self._cache = self.model.forecast(self.h, self.levels)
        self._pending.append((self._n, self._cache.mean, self._last))

    def _shock(self, v: float) -> bool:
        fresh, naive = abs(v - self._pending[-1][1][0]), abs(v - self._last)
        typical = float(np.mean(self._moves)) if self._moves else 0.0
        return fresh > self.shock_ratio * naive and fresh > self.shock_scale * typical

    def update(self, values: np.ndarray) -> GuardedModel:
        for v in np.asarray(values, dtype="float64"):
            if self._pending and self._shock(v):
                self._errors.clear()
                self._shocked = True
            self.model.update(np.array([v]))
            while self._pending and self._pending[0][0] + self.h <= self._n:
                self._pending.popleft()
            err_model = err_naive = 0.0
            for origin, mean, last in self._pending:  # every pending forecast has a step at this point
                err_model += abs(v - mean[self._n - origin])
                err_naive += abs(v - last)
            self._errors.append((err_model, err_naive))
            if len(self._errors) >= self.min_count:
                self._shocked = False
            self._moves.append(abs(v - self._last))
            self._n += 1
            self._last = float(v)
            self._issue()
        return self

    def forecast(self, h: int | None = None, levels: Sequence[int] | None = None) -> Forecast:
        h = self.h if h is None else h
        levels = self.levels if levels is None else tuple(levels)
        fc = self._cache if (h <= self.h and set(levels) <= set(self.levels)) else self.model.forecast(h, levels)
        fc = Forecast(fc.mean[:h], {lv: fc.lo[lv][:h] for lv in levels}, {lv: fc.hi[lv][:h] for lv in levels})
        widths = getattr(self, "widths", None)  # models pickled before calibration have none
        if widths is not None and all(lv in widths.quantiles for lv in levels):
            half = {lv: widths.half_width(lv, h) for lv in levels}
            fc = Forecast(fc.mean, {lv: fc.mean - half[lv] for lv in levels}, {lv: fc.mean + half[lv] for lv in levels})
        if not self.fallback:
            return fc
        shift = self._last - fc.mean
        return Forecast(
            fc.mean + shift, {lv: fc.lo[lv] + shift for lv in levels}, {lv: fc.hi[lv] + shift for lv in levels}
        )
