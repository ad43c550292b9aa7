"""A client that calls a channel under a :class:`~rhythm_pipelines.learning.tuning.Policy` (asyncio).

Per request: attempts cut at the policy's timeout, retries while the request's deadline, the retry budget and
the breaker (or LiteLLM-style cooldown) allow, with full-jitter (or fixed) backoff between them. Every attempt
is logged (``ts, latency_ms, status``: the call log the tuner reads); every request's outcome too. With
``retune_s``, the policy is re-tuned from the last ``retune_window_s`` of its own attempts as it goes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pandas as pd

from rhythm_pipelines.healing.breaker import HALF_OPEN, OPEN, CircuitBreaker
from rhythm_pipelines.learning.tuning import Policy, tune

Send = Callable[[str, int, float], Awaitable[tuple[str, float]]]  # (request id, attempt, timeout) -> (status, s)
DEADLINE_S = 10.0  # the caller's patience: a request not answered by then has failed


async def http_send(host: str, port: int, rid: str, n: int, timeout: float) -> tuple[str, float]:
    """One attempt over a fresh HTTP/1.1 connection: ("ok" | "error" | "timeout", seconds taken)."""
    t0 = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET /call?id={rid}&n={n} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            line = await reader.readline()
            status = int(line.split()[1]) if line else 0
        return ("ok" if status == 200 else "error"), time.monotonic() - t0
    except TimeoutError:
        return "timeout", time.monotonic() - t0
    except (OSError, ValueError, IndexError):
        return "error", time.monotonic() - t0
    finally:
        if writer is not None:
            writer.close()


@dataclass
class ResilientClient:
    policy: Policy
    send: Send
    retune_s: float | None = None
    retune_window_s: float = 30.0
    seed: int = 0
    attempts: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    versions: list[tuple[float, Policy, list[str]]] = field(default_factory=list)  # (t, policy, reasons)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - backoff jitter, not a secret
        self._breaker = CircuitBreaker(self.policy.breaker) if self.policy.breaker else None
        self._fails: deque[float] = deque()
        self._cooled_until = 0.0
        self._window: deque[tuple[float, bool]] = deque()  # (t, was a retry) over the last 10 s
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def _ts(self) -> pd.Timestamp:
        return pd.Timestamp(self._t0 + self.now(), unit="s", tz="UTC")

    def _allowed(self) -> bool:
        if self.policy.cooldown and self.now() < self._cooled_until:
            return False
        return self._breaker.allow(self._ts()) if self._breaker else True

    def _reopens_in(self) -> float | None:
        """Seconds to wait before asking the breaker again, when the policy waits for it (else None): until an
        open breaker lets its probes through, or, half-open, about one attempt's time for the probes' verdict."""
        b = self._breaker
        if not (self.policy.wait_for_breaker and b is not None):
            return None
        if b.state == HALF_OPEN:
            return min(self.policy.timeout_s, 0.5)
        if b.state != OPEN or b.opened_at is None:
            return None
        due = b.opened_at + pd.Timedelta(seconds=b.config.open_s)
        return max(0.01, (due - self._ts()).total_seconds())

    def _budget_left(self) -> bool:
        """Would the retry budget grant a retry now?"""
        if self.policy.retry_budget is None:
            return True
        t = self.now()
        while self._window and self._window[0][0] < t - 10.0:
            self._window.popleft()
        firsts = sum(1 for _, retry in self._window if not retry)
        retries = len(self._window) - firsts
        return retries < max(3.0, self.policy.retry_budget * firsts)  # a few retries always (Finagle's reserve)

    def _take_retry(self) -> bool:
        """May this request retry? Taken from the budget at once, so concurrent failures cannot all pass."""
        if not self._budget_left():
            return False
        if self.policy.retry_budget is not None:
            self._window.append((self.now(), True))
        return True

    def _record(self, status: str, seconds: float) -> None:
        self.attempts.append({"ts": self._ts(), "latency_ms": seconds * 1000, "status": status})
        failed = status != "ok"
        if self._breaker:
            self._breaker.record(self._ts(), failed, seconds * 1000)
        if self.policy.cooldown and failed:
            allowed, per_s, cool_s = self.policy.cooldown
            t = self.now()
            self._fails.append(t)
            while self._fails and self._fails[0] < t - per_s:
                self._fails.popleft()
            if len(self._fails) > allowed:
                self._cooled_until = t + cool_s
                self._fails.clear()

    def _backoff(self, attempt: int) -> float:
        p = self.policy
        cap = min(p.backoff_cap_s, p.backoff_base_s * 2**attempt) if p.backoff_cap_s else p.backoff_base_s
        return self._rng.uniform(0, cap) if p.jitter else p.backoff_base_s

    async def call(self, rid: str) -> bool:
        start = self.now()
        ok, n, why = False, 0, ""
        while True:
            if not self._allowed():
                why = "rejected (breaker open)" if self._breaker else "rejected (cooling down)"
                wait = self._reopens_in()
                if wait is None or self.now() - start + wait >= DEADLINE_S:
                    break
                await asyncio.sleep(wait + self._rng.uniform(0, 0.05))  # not sent: no attempt, no load
                continue
            left = DEADLINE_S - (self.now() - start)
            if left <= 0:
                why = "deadline"
                break
            if n == 0:
                self._window.append((self.now(), False))
            last = n >= self.policy.retries or not self._budget_left()
            # the timeout frees the request for a retry; when none can follow, cutting it only loses a slow answer
            timeout = left if self.policy.last_try_waits and last else min(self.policy.timeout_s, left)
            status, secs = await self.send(rid, n, timeout)
            self._record(status, secs)
            n += 1
            if status == "ok":
                ok = True
                break
            why = status
            if n > self.policy.retries or not self._take_retry():
                break
            await asyncio.sleep(min(self._backoff(n), max(0.0, DEADLINE_S - (self.now() - start))))
        self.requests.append({"t": start, "ok": ok, "attempts": n, "seconds": self.now() - start, "why": why})
        return ok

    async def retuning(self) -> None:
        """Re-tune every ``retune_s`` from the last ``retune_window_s`` of attempts (until cancelled)."""
        while True:
            await asyncio.sleep(self.retune_s)
            cut = self._ts() - pd.Timedelta(seconds=self.retune_window_s)
            recent = pd.DataFrame([a for a in self.attempts[-5000:] if a["ts"] >= cut])
            if recent.empty:
                continue
            t = tune(recent, self.policy)
            if t.policy != self.policy:
                self.adopt(t.policy)
                self.versions.append((self.now(), t.policy, t.reasons))

    def adopt(self, policy: Policy) -> None:
        """Put ``policy`` in force (an open breaker stays open for its new interval)."""
        old = self._breaker
        self.policy = policy
        if policy.breaker is None:
            self._breaker = None
        elif old is None or old.config != policy.breaker:
            new = CircuitBreaker(policy.breaker)
            if old is not None and old.state == OPEN:  # an open breaker stays open for its new interval
                new.state, new.opened_at, new.tripped_at = OPEN, old.opened_at, old.tripped_at
            self._breaker = new  # a closed or half-open one starts afresh under its new config
