"""A circuit breaker in the manner of resilience4j: closed → open → half-open → closed.

- **closed**: calls flow; the last ``window`` calls form a sliding window. Once it holds at least
  ``min_calls``, the breaker opens when the failure rate reaches ``failure_rate`` or the share of calls
  slower than ``slow_call_ms`` reaches ``slow_rate``.
- **open**: calls are refused for ``open_s`` seconds, then the breaker goes half-open.
- **half-open**: ``probe_calls`` calls are let through; if their failure (or slow) rate is under the
  thresholds the breaker closes with a fresh window, else it opens again.

``replay`` runs a channel's call log through a breaker, which is how the sensor knows whether a channel's
breaker is open now and since when (a stable start for the event).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pandas as pd

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    window: int = 20
    min_calls: int = 10
    failure_rate: float = 0.5
    slow_call_ms: float = 5_000.0
    slow_rate: float = 0.8
    open_s: float = 30.0
    probe_calls: int = 3

    def __post_init__(self) -> None:
        if not (0 < self.failure_rate <= 1 and 0 < self.slow_rate <= 1):
            raise ValueError("failure_rate and slow_rate must be in (0, 1]")
        if self.min_calls < 1 or self.window < self.min_calls or self.probe_calls < 1 or self.open_s < 0:
            raise ValueError("need 1 <= min_calls <= window, probe_calls >= 1 and open_s >= 0")


@dataclass
class Transition:
    ts: pd.Timestamp
    state: str
    failure_rate: float
    slow_rate: float


@dataclass
class CircuitBreaker:
    config: BreakerConfig = field(default_factory=BreakerConfig)
    state: str = CLOSED
    opened_at: pd.Timestamp | None = None  # the last time it opened
    tripped_at: pd.Timestamp | None = None  # when it left closed: an outage's start, however often it re-opens
    transitions: list[Transition] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._calls: deque[tuple[bool, bool]] = deque(maxlen=self.config.window)  # (failed, slow)
        self._probes: list[tuple[bool, bool]] = []

    def rates(self) -> tuple[float, float]:
        calls = self._probes if self.state == HALF_OPEN else self._calls
        if not calls:
            return 0.0, 0.0
        return sum(f for f, _ in calls) / len(calls), sum(s for _, s in calls) / len(calls)

    def _move(self, state: str, ts: pd.Timestamp) -> None:
        failure, slow = self.rates()
        self.state = state
        self.transitions.append(Transition(ts, state, failure, slow))
        if state == OPEN:
            self.opened_at = ts
            self.tripped_at = self.tripped_at or ts
        elif state == CLOSED:
            self.opened_at = self.tripped_at = None
            self._calls.clear()
        if state != HALF_OPEN:
            self._probes = []

    def _tripped(self, failure: float, slow: float) -> bool:
        return failure >= self.config.failure_rate or slow >= self.config.slow_rate

    def allow(self, ts: pd.Timestamp) -> bool:
        """May a call go through at ``ts``? (An open breaker turns half-open once ``open_s`` has passed.)"""
        ts = pd.Timestamp(ts)
        if self.state == OPEN and ts - self.opened_at >= pd.Timedelta(seconds=self.config.open_s):
            self._move(HALF_OPEN, ts)
        if self.state == HALF_OPEN:
            return len(self._probes) < self.config.probe_calls
        return self.state == CLOSED

    def record(self, ts: pd.Timestamp, failed: bool, latency_ms: float = 0.0) -> None:
        """The outcome of a call that was allowed through."""
        ts = pd.Timestamp(ts)
        outcome = (bool(failed), latency_ms >= self.config.slow_call_ms)
        if self.state == HALF_OPEN:
            self._probes.append(outcome)
            if len(self._probes) >= self.config.probe_calls:
                self._move(OPEN if self._tripped(*self.rates()) else CLOSED, ts)
            return
        if self.state == OPEN:
            return  # a call refused by the breaker does not count
        self._calls.append(outcome)
        if len(self._calls) >= self.config.min_calls and self._tripped(*self.rates()):
            self._move(OPEN, ts)


def replay(calls: pd.DataFrame, config: BreakerConfig, now: pd.Timestamp | None = None) -> CircuitBreaker:
    """Run one channel's calls (``ts``, ``status``, ``latency_ms``, sorted by ts) through a breaker.

    Calls made while the breaker would have refused them still happened in the log (the gateway may not
    use our breaker): they are skipped, as the breaker would have refused them. ``now`` lets an open breaker
    turn half-open after the last call.
    """
    breaker = CircuitBreaker(config)
    for ts, status, latency in zip(calls["ts"], calls["status"], calls["latency_ms"], strict=True):
        if breaker.allow(ts):
            breaker.record(ts, status != "ok", float(latency) if pd.notna(latency) else 0.0)
    if now is not None:
        breaker.allow(now)
    return breaker
