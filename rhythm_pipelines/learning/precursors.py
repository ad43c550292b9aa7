"""Precursor signatures: what a signal did before a pattern's past breaches, as a rule that fires ahead of them.

A rule is ``feature(series) >= threshold`` (a level, or a rise over 15/60/180 min), optionally only within the
time of day (and on the weekdays) the pattern's breaches keep to. It fires when it holds and it has not fired
within its ``horizon``; a firing is needed when an incident of the pattern's kind on its anchor breaches
within the horizon after it. Learning tries each series the incident can show in, each feature, horizon and
gate, with thresholds taken from the members' own values before their breaches, and keeps the rule that
catches the most members at least ``LEAD_MIN`` minutes ahead while at most ``MAX_UNNEEDED`` of its firings
on the learning days were not needed. A pattern with no such rule has no precursor: it is not prevented.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from rhythm_pipelines.learning.signals import FEATURES, Signals

LEAD_MIN = 2  # minutes: a prevention needs time to act
HORIZONS_MIN = (30, 60, 120, 240)
MAX_UNNEEDED = 0.05
MIN_RECALL = 0.5
MAX_THRESHOLDS = 12
TOD_SPREAD_MIN = 60.0  # most breaches within a band this wide (minutes of day) make a time-of-day gate


@dataclass(frozen=True)
class Precursor:
    source: str
    metric: str
    feature: str
    threshold: float
    horizon_min: int
    tod: tuple[float, float] | None = None  # [from, to) minutes of day (wrapping past midnight)
    weekdays_only: bool = False
    lead_min: float = 0.0  # the median lead before the learning days' breaches
    recall: float = 0.0  # members caught ahead on the learning days
    unneeded: float = 0.0  # firings on the learning days that no breach followed
    fired: int = 0  # firings on the learning days

    def describe(self) -> str:
        what = f"{self.metric} {self.feature} ≥ {self.threshold:.3g} on {self.source}"
        if self.tod:
            a, b = self.tod
            what += f" between {int(a) // 60:02d}:{int(a) % 60:02d} and {int(b) // 60:02d}:{int(b) % 60:02d} UTC"
        return what + (" on weekdays" if self.weekdays_only else "")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Precursor:
        return cls(**{**d, "tod": tuple(d["tod"]) if d.get("tod") else None})

    def gate(self, index: pd.DatetimeIndex) -> np.ndarray:
        ok = np.ones(len(index), dtype=bool)
        if self.tod:
            m = index.hour.to_numpy() * 60 + index.minute.to_numpy()
            a, b = self.tod
            ok &= (m >= a) & (m < b) if a <= b else (m >= a) | (m < b)
        if self.weekdays_only:
            ok &= index.dayofweek.to_numpy() < 5
        return ok

    def condition(self, signals: Signals) -> np.ndarray:
        f = signals.feature(self.source, self.metric, self.feature)
        with np.errstate(invalid="ignore"):
            return (f >= self.threshold) & self.gate(signals.index)

    def firings(self, signals: Signals, a: int, b: int, quiet: np.ndarray | None = None,
                last: int | None = None) -> list[int]:  # fmt: skip
        """Grid positions in [a, b) where the rule fires: never while ``quiet`` (an incident of its pattern is
        open: healing has it), nor within the horizon of ``last``, a firing before ``a``."""
        cond = self.condition(signals)[:b]
        if quiet is not None:
            cond = cond & ~quiet[:b]
        return fire(cond, self.horizon_min, a, last)


def fire(cond: np.ndarray, horizon: int, a: int = 0, last: int | None = None) -> list[int]:
    idx = np.flatnonzero(cond)
    idx = idx[idx >= a]
    out: list[int] = []
    nxt = a if last is None else max(a, last + horizon)
    while True:
        k = int(np.searchsorted(idx, nxt))
        if k >= len(idx):
            return out
        out.append(int(idx[k]))
        nxt = int(idx[k]) + horizon


OCCURRENCE_GAP = pd.Timedelta(minutes=15)


def occurrences(times: list[pd.Timestamp], gap: pd.Timedelta = OCCURRENCE_GAP) -> list[pd.Timestamp]:
    """The first of each run of times closer than ``gap``: a cascade's root and dependents are one occurrence."""
    out: list[pd.Timestamp] = []
    last: pd.Timestamp | None = None
    for t in sorted(times):
        if last is None or t - last > gap:
            out.append(t)
        last = t
    return out


def tod_gate(breaches: list[pd.Timestamp], horizon: int, weekend_seen: bool = True
             ) -> tuple[tuple[float, float] | None, bool]:  # fmt: skip
    """A time-of-day window when most breaches keep to one time of day: the densest ``TOD_SPREAD_MIN``-wide band
    of their minutes of day, if it holds at least half of them (and 3); weekdays only when those all fell on
    weekdays and the learning days held a weekend (else nothing says weekends are spared)."""
    breaches = occurrences(breaches)
    if len(breaches) < 3:
        return None, False
    m = np.array([t.hour * 60 + t.minute for t in breaches], dtype=float)
    near = lambda c: np.abs((m - c + 720) % 1440 - 720) <= TOD_SPREAD_MIN / 2  # noqa: E731
    best = max(m, key=lambda c: (near(c).sum(), -c))
    band = near(best)
    if band.sum() < max(3, 0.5 * len(m)):
        return None, False
    off = (m[band] - best + 720) % 1440 - 720  # minutes from the band's centre
    a, b = best + off.min() - horizon - 10, best + off.max() + 10
    weekdays = weekend_seen and all(t.dayofweek < 5 for t, inside in zip(breaches, band, strict=True) if inside)
    return (float(a % 1440), float(b % 1440)), weekdays


def _evaluate(cond: np.ndarray, horizon: int, members: np.ndarray, targets: np.ndarray, n: int):
    """(recall over members, unneeded share, firings, median lead) of a condition on the learning grid."""
    f = np.asarray(fire(cond[:n], horizon), dtype=int)
    if not len(f):
        return 0.0, 0.0, 0, 0.0
    k = np.searchsorted(targets, f, side="right")  # the first target breach after each firing
    nxt = np.where(k < len(targets), targets[np.minimum(k, len(targets) - 1)], n + 10 * horizon)
    needed = (nxt - f) <= horizon
    j = np.searchsorted(f, members - LEAD_MIN, side="right") - 1  # the last firing at least LEAD_MIN ahead
    caught = (j >= 0) & (members - f[np.maximum(j, 0)] <= horizon)
    leads = (members - f[np.maximum(j, 0)])[caught]
    return float(caught.mean()), float(1 - needed.mean()), len(f), float(np.median(leads)) if len(leads) else 0.0


def quiet_mask(signals: Signals, spans: list[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
    """True over each [breach, end] span: an incident is open there, and healing, not prevention, has it."""
    q = np.zeros(len(signals.index), dtype=bool)
    for a, b in spans:
        q[signals.position(a) : signals.position(b) + 1] = True
    return q


def learn(signals: Signals, anchor: str, metrics: list[str], breaches: list[pd.Timestamp],
          targets: list[pd.Timestamp], until: int, quiet: np.ndarray | None = None) -> Precursor | None:  # fmt: skip
    """The best rule on ``anchor``'s series (``metrics``: the incidents' own) catching ``breaches`` ahead,
    judged on grid positions before ``until`` (the learning days; never firing while ``quiet``), or None."""
    calm = ~quiet[:until] if quiet is not None else np.ones(until, dtype=bool)
    weekend_seen = bool((signals.index[:until].dayofweek >= 5).any())
    if len(occurrences(breaches)) < 2 or until < 60:
        return None
    members = np.array(sorted({signals.position(b) for b in breaches}))
    tgt = np.array(sorted({signals.position(t) for t in targets} | set(members.tolist())))
    series: list[tuple[str, str]] = []
    for m in metrics:
        series += [c for c in signals.candidates(anchor, m) if c not in series]
    best: tuple | None = None
    for src, metric in series:
        for feature in FEATURES:
            f = signals.feature(src, metric, feature)[:until]
            for horizon in HORIZONS_MIN:
                window = [f[max(0, p - horizon) : max(0, p - LEAD_MIN + 1)] for p in members]
                tops = np.array([np.nanmax(w) if len(w) and np.isfinite(w).any() else np.nan for w in window])
                tops = tops[np.isfinite(tops)]
                if len(tops) < max(2, MIN_RECALL * len(members)):
                    continue
                thresholds = np.unique(np.quantile(tops, np.linspace(0, 0.5, MAX_THRESHOLDS)))
                tod, weekdays = tod_gate(breaches, horizon, weekend_seen)
                for gated in (False, True) if tod else (False,):
                    rule = Precursor(src, metric, feature, 0.0, horizon, tod if gated else None, weekdays and gated)
                    gate = rule.gate(signals.index[:until]) & calm
                    for th in thresholds:
                        with np.errstate(invalid="ignore"):
                            cond = (f >= th) & gate
                        recall, unneeded, n, lead = _evaluate(cond, horizon, members, tgt, until)
                        if recall < MIN_RECALL or unneeded > MAX_UNNEEDED:
                            continue
                        score = (
                            round(recall, 3),
                            -unneeded,
                            -horizon,
                            -n,
                        )  # the shortest hold-off that catches as many
                        if best is None or score > best[0]:
                            best = (score, Precursor(src, metric, feature, float(th), horizon, rule.tod,
                                                     rule.weekdays_only, lead, recall, unneeded, n))  # fmt: skip
    return best[1] if best else None
