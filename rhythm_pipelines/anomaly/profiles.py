"""Metric-aware detection (method ``auto``): what the product knows about a metric chooses how it is judged.

A CSV of unknown meaning (NAB, ``rhythm anomalies detect``) gets the generic ensemble and its record bar.
The metrics this product collects are not unknown, and ``auto`` uses that:

- **channel** metrics (``error_rate``, ``latency_ms_p95``, ``cost_usd`` of a ``channel@region``) are
  judged on the raw calls by the count-aware tests of :mod:`~rhythm_pipelines.anomaly.channels`, when the
  calls are at hand (else as a gauge);
- **gauges** of host load (CPU, load average, memory, swap): only a rise is an incident, and incidents
  recur through the day: the ensemble's channels on the MAD spread under a fixed 6-sigma bar
  (``threshold.FixedBar``), as a record bar would go blind for a day after the first incident;
- **memory** is a gauge that also leaks: :class:`~rhythm_pipelines.anomaly.trend.LeakTest` joins it;
- everything else: the generic ensemble; ``direction`` is ``up`` for metrics where only a rise hurts.

Which profile a metric gets is fixed by its meaning, not fitted to labels; the generic profile's constants are
NAB's leave-one-category-out choice (``anomaly.tuning``) with a longer refractory gap chosen on the
simulator's seeds 0-4 (``GENERIC``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from rhythm_pipelines.anomaly.channels import CHANNEL_TESTS, ChannelTests
from rhythm_pipelines.anomaly.detectors import Ensemble
from rhythm_pipelines.anomaly.series import detect
from rhythm_pipelines.anomaly.threshold import FixedBar, refractory_flags
from rhythm_pipelines.anomaly.trend import LeakTest
from rhythm_pipelines.anomaly.tuning import DEFAULT

AUTO = "auto"
GAUGE_MEMBERS = ("zscore", "level_shift", "jump", "trend")  # a host gauge's incidents are rises, not odd hours
# Known metrics (heartbeat age, zombies, disk) climb for as long as an incident lasts: one alert per 50 points,
# not NAB's 25 (chosen on simulator seeds 0-4: 25 doubled the false alarms there; seeds 5-9 are the held-out ones)
GENERIC = replace(DEFAULT, refractory=50)
GAUGES = frozenset({"cpu_percent", "load1", "mem_percent", "swap_percent"})
LEAKY = frozenset({"mem_percent"})
RISING = frozenset(  # metrics where only a rise is bad news (a CPU dip or a memory drop is not an incident)
    {*GAUGES, *CHANNEL_TESTS, "zombie_count", "heartbeat_age_s", "disk_percent", "errors", "timeouts"}
    | {"latency_ms_mean", "latency_ms_p50", "latency_ms_max", "proc_rss_bytes"}
)


@dataclass(frozen=True)
class Profile:
    kind: str  # channel | gauge | generic
    direction: str = "both"
    leak: bool = False


def profile_for(source: str, metric: str, has_calls: bool = False) -> Profile:
    """How ``auto`` judges ``metric`` of ``source`` (``has_calls``: the channel's raw calls are at hand)."""
    direction = "up" if metric in RISING else "both"
    if metric in CHANNEL_TESTS and "@" in source and has_calls:
        return Profile("channel", "up")
    if metric in GAUGES or metric in CHANNEL_TESTS:
        return Profile("gauge", "up", leak=metric in LEAKY)
    return Profile("generic", direction)


def score_series(
    values: np.ndarray,
    timestamps: pd.DatetimeIndex,
    source: str,
    metric: str,
    calls: pd.DataFrame | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (1 = the bar) and flags of one stored series under its profile; ``calls``: the raw calls of
    a channel source over the same span (columns ts, status, latency_ms, cost_usd), if any."""
    x = np.asarray(values, dtype="float64")
    profile = profile_for(source, metric, calls is not None and len(calls) > 0)
    if profile.kind == "channel":
        scores = ChannelTests().scores(calls, pd.DatetimeIndex(timestamps), metric)
        return scores, refractory_flags(scores, FixedBar().refractory, 0)
    if profile.kind == "generic":
        detector = Ensemble(direction=profile.direction, min_rhythm=GENERIC.min_rhythm)
        threshold = GENERIC.threshold()
    else:
        detector, threshold = Ensemble(direction=profile.direction, spread="mad", members=GAUGE_MEMBERS), FixedBar()
    scores = threshold.scores(*detector.deviations(x, timestamps), detector.spans, timestamps)
    if profile.leak:
        scores = np.maximum(scores, LeakTest().scores(x, timestamps))
    return scores, threshold.flags(scores)


def channel_calls_of(calls: pd.DataFrame | None, source: str) -> pd.DataFrame | None:
    """The calls of one ``channel@region`` source out of a call table (columns channel, region, ...)."""
    if calls is None or calls.empty or "@" not in source:
        return None
    channel, region = source.split("@", 1)
    return calls[(calls["channel"] == channel) & (calls["region"] == region)]


def detect_stored(
    values: np.ndarray,
    timestamps: pd.DatetimeIndex,
    source: str,
    metric: str,
    method: str = AUTO,
    calls: pd.DataFrame | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and flags of a stored series: by its profile (``auto``) or by one named detector for all."""
    if method == AUTO:
        return score_series(values, timestamps, source, metric, channel_calls_of(calls, source))
    return detect(values, method, timestamps)
