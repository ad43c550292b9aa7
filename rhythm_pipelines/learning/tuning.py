"""The auto-tuner: a channel's timeout, retries and circuit breaker from its own call history.

- **Timeout**: ``clamp(TIMEOUT_K × p99.9 latency of its successful calls)``: a margin over the slowest calls that
  still succeed, so a call that will not return is cut early instead of holding a worker.
- **Retries** with a **retry budget** (Finagle's and Envoy's idea): at most ``RETRY_BUDGET`` of requests may be
  retried, however many fail, so retries never multiply load in an outage; **backoff** with full jitter from
  the median latency up to the timeout (AWS's "exponential backoff and jitter").
- **Circuit breaker** (``healing/breaker.py``, resilience4j's model): a failure-rate bar well above the
  channel's usual error rate, slow calls at the timeout, a window of about ``WINDOW_S`` of its traffic and an
  open interval of a quarter of its failure bursts (at most ``OPEN_MAX_S``: three probes are cheap). A request
  the open breaker refuses is not failed at once: it waits for the breaker's next probe while its deadline
  allows (the channel is spared either way).

Each step moves a number at most ``STEP`` times down, and a timeout at most ``TIMEOUT_UP`` times up (a channel
turning slow fails every call the old timeout cuts: waiting costs less), retries by one, from the policy in
force, and says why; policies are versioned files that can be rolled back (:class:`PolicyFile`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from rhythm_pipelines.healing.breaker import BreakerConfig

TIMEOUT_K = 1.5
TIMEOUT_BOUNDS_S = (0.05, 120.0)
RETRY_BUDGET = 0.2  # retries per request, at most (Envoy's default budget is 20 % of active requests)
WINDOW_S = 10.0
STEP = 2.0  # a tuning step moves a number at most x2 or /2...
TIMEOUT_UP = 4.0  # ...but a timeout up to x4
OPEN_MAX_S = 5.0  # a breaker stays open at most this long before it probes again
MIN_CALLS = 50  # fewer calls in the history: keep the policy in force


@dataclass(frozen=True)
class Policy:
    """What a client of one channel does: per attempt ``timeout_s``; up to ``retries`` more attempts within a
    ``retry_budget`` share of requests (None: unlimited), waiting a full-jitter backoff between them; a breaker
    (None: none) or a LiteLLM-style cooldown (``cooldown``: allowed fails, per seconds, cool-down seconds)."""

    timeout_s: float
    retries: int
    retry_budget: float | None
    backoff_base_s: float
    backoff_cap_s: float
    jitter: bool
    breaker: BreakerConfig | None
    cooldown: tuple[int, float, float] | None = None
    name: str = "tuned"
    wait_for_breaker: bool = False  # a request the breaker refuses waits for its next probe (within its deadline)
    last_try_waits: bool = False  # an attempt no retry can follow waits out the request's deadline, not the timeout

    def to_dict(self) -> dict:
        d = asdict(self)
        d["breaker"] = asdict(self.breaker) if self.breaker else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Policy:
        """From a policy file's entry; keys this version does not know are left out (a file from a newer one)."""
        known = {f.name for f in fields(cls)}
        b = d.get("breaker")
        breaker = (
            BreakerConfig(**{k: v for k, v in b.items() if k in {f.name for f in fields(BreakerConfig)}}) if b else None
        )
        return cls(**{**{k: v for k, v in d.items() if k in known}, "breaker": breaker,
                      "cooldown": tuple(d["cooldown"]) if d.get("cooldown") else None})  # fmt: skip


# resilience4j's defaults: TimeLimiter 1 s; Retry 3 attempts, 500 ms apart; CircuitBreaker 50 % of a 100-call
# window (100 calls at least), slow calls at 60 s (100 %), open 60 s, 10 calls half-open
RESILIENCE4J = Policy(1.0, 2, None, 0.5, 0.5, False, BreakerConfig(100, 100, 0.5, 60_000.0, 1.0, 60.0, 10),
                      name="resilience4j defaults")  # fmt: skip
# LiteLLM's router defaults: 600 s timeout, 2 retries at once, no breaker; its cooldown (60 s after 3 fails in a
# minute) never takes the only deployment of a model group out, so one channel is never cooled down
LITELLM = Policy(600.0, 2, None, 0.0, 0.0, False, None, None, name="LiteLLM defaults")


@dataclass
class Tuning:
    policy: Policy
    reasons: list[str] = field(default_factory=list)
    calls: int = 0


def _bounded(new: float, old: float | None, lo: float, hi: float, up: float = STEP) -> float:
    new = min(max(new, lo), hi)
    if old is None or old <= 0:
        return new
    return min(max(new, old / STEP), old * up)


def _bursts_s(failed: np.ndarray, ts: np.ndarray) -> list[float]:
    """How long runs of mostly failing calls lasted (seconds), from a 5-call rolling failure share."""
    if len(failed) < 5:
        return []
    share = pd.Series(failed.astype(float)).rolling(5, min_periods=5).mean().to_numpy() >= 0.8
    out, start = [], None
    for i, bad in enumerate(share):
        if bad and start is None:
            start = ts[i]
        elif not bad and start is not None:
            out.append((ts[i] - start) / np.timedelta64(1, "s"))
            start = None
    return out


def tune(calls: pd.DataFrame, previous: Policy | None = None) -> Tuning:
    """A policy from ``calls`` (``ts``, ``latency_ms``, ``status``: ok / error / timeout), moved at most one step
    from ``previous``. Fewer than ``MIN_CALLS`` calls: ``previous`` (or resilience4j's defaults) unchanged."""
    base = previous or replace(RESILIENCE4J, name="tuned")
    if len(calls) < MIN_CALLS:
        return Tuning(base, [f"{len(calls)} calls: fewer than {MIN_CALLS}, the policy in force stays"], len(calls))
    calls = calls.sort_values("ts")
    ok = calls["status"] == "ok"
    lat = calls.loc[ok, "latency_ms"].to_numpy(dtype=float) / 1000
    failed = (~ok).to_numpy()
    ts = pd.to_datetime(calls["ts"], utc=True).to_numpy()
    span = max((ts[-1] - ts[0]) / np.timedelta64(1, "s"), 1.0)
    rate = len(calls) / span  # calls per second
    err = float(failed.mean())
    reasons = []
    if len(lat) >= 10:
        p50, p999 = (float(np.quantile(lat, q)) for q in (0.5, 0.999))
    else:  # nothing succeeds: keep the latency-based settings
        p50, p999 = base.backoff_base_s, base.timeout_s / TIMEOUT_K
        reasons.append(f"only {len(lat)} successful calls: latency-based settings kept")
    old = previous
    target = TIMEOUT_K * p999
    if old is not None and len(lat) >= 10:
        # successes are censored at the timeout: when attempts time out while many successes come close to it,
        # the channel's real tail is beyond it (slow, not down), whatever the successes' p99.9 says
        timed_out = float((calls["status"] == "timeout").mean())
        pressing = float((lat >= 0.7 * old.timeout_s).mean())
        if timed_out >= 0.01 and pressing >= 0.05:
            target = max(target, old.timeout_s * TIMEOUT_UP)
            reasons.append(f"{timed_out:.0%} of attempts timed out and {pressing:.0%} of successes took over 70 % of "
                           f"the timeout: the channel is slower than it")  # fmt: skip
    timeout = _bounded(target, old.timeout_s if old else None, *TIMEOUT_BOUNDS_S, up=TIMEOUT_UP)
    backoff = _bounded(p50, old.backoff_base_s if old else None, 0.01, timeout)
    bursts = _bursts_s(failed, ts)
    # short opens with a few probes: cheap for a channel that is down, quick to notice it is back
    open_s = _bounded(float(np.median(bursts)) / 4 if bursts else 5.0,
                      old.breaker.open_s if old and old.breaker else None, 1.0, OPEN_MAX_S)  # fmt: skip
    window = int(min(max(round(rate * WINDOW_S), 10), 200))
    fail_bar = float(min(max(3 * err, 0.25), 0.6)) if err < 0.3 else 0.5  # in an outage: the usual bar
    # slowness alone never opens it (slow_rate 1): the timeout handles a slow channel, and a breaker open on a
    # channel that still answers fails the requests it could serve
    breaker = BreakerConfig(window, max(5, window // 2), fail_bar, timeout * 1000, 1.0, open_s, 3)
    retries = 2 if err < 0.5 else 1
    if old is not None:
        retries = min(max(retries, old.retries - 1), old.retries + 1)
    policy = Policy(timeout, retries, RETRY_BUDGET, backoff, timeout, True, breaker, None, "tuned", True, True)
    if old is None or not math.isclose(policy.timeout_s, old.timeout_s, rel_tol=0.05):
        was = f" (was {old.timeout_s:.3g} s; a step moves it /{STEP:g} to x{TIMEOUT_UP:g} at most)" if old else ""
        reasons.append(f"timeout {policy.timeout_s:.3g} s = {TIMEOUT_K} x p99.9 latency {p999:.3g} s{was}")
    if old is None or old.breaker is None or abs(fail_bar - old.breaker.failure_rate) > 0.02:
        reasons.append(f"breaker opens at {fail_bar:.0%} failures of {window} calls (error rate {err:.1%}); "
                       f"open {open_s:.3g} s (failure bursts {np.median(bursts) if bursts else 0:.3g} s)")  # fmt: skip
    if old is None or retries != old.retries:
        reasons.append(f"{retries} retr{'y' if retries == 1 else 'ies'} within a {RETRY_BUDGET:.0%} retry budget, "
                       f"full-jitter backoff from {backoff:.3g} s")  # fmt: skip
    return Tuning(policy, reasons, len(calls))


def tune_channels(
    calls: pd.DataFrame, before: dict[str, Policy]
) -> tuple[dict[str, Policy], dict[str, list[str]], dict[str, int]]:
    """Each ``channel@region`` of a call log (``channel``, ``region``, ``ts``, ``latency_ms``, ``status``) tuned
    from its own calls, a step from the policy in force: (policies in force after, reasons of the changed ones,
    calls read per channel)."""
    current, reasons, counts = dict(before), {}, {}
    if calls.empty:
        return current, reasons, counts
    calls = calls.assign(source=calls["channel"] + "@" + calls["region"])
    for source, g in calls.groupby("source", sort=True):
        t = tune(g[["ts", "latency_ms", "status"]], before.get(source))
        counts[source] = t.calls
        if t.policy != before.get(source):
            current[source], reasons[source] = t.policy, t.reasons
    return current, reasons, counts


class PolicyFile:
    """Versioned policy files: ``v0001.json``… each holds every channel's policy and the reasons of its changes;
    ``current`` names the one in force. A rollback writes a new version equal to an old one, so the history
    only grows."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @classmethod
    def at_home(cls) -> PolicyFile:
        """The policies in force on this machine: ``$RHYTHM_HOME/policies``."""
        from rhythm_pipelines.home import rhythm_home

        return cls(rhythm_home() / "policies")

    def versions(self) -> list[int]:
        return sorted(int(p.stem[1:]) for p in self.root.glob("v[0-9][0-9][0-9][0-9].json"))

    def current(self) -> int | None:
        p = self.root / "current"
        return int(p.read_text().strip()) if p.exists() else None

    def read(self, version: int | None = None) -> dict:
        v = version if version is not None else self.current()
        if v is None:
            return {"version": 0, "channels": {}, "reasons": {}}
        path = self.root / f"v{v:04d}.json"
        if not path.exists():
            raise ValueError(f"{self.root}: no policy version {v} (have {', '.join(map(str, self.versions()))})")
        return json.loads(path.read_text())

    def policies(self, version: int | None = None) -> dict[str, Policy]:
        return {k: Policy.from_dict(v) for k, v in self.read(version)["channels"].items()}

    def write(self, channels: dict[str, Policy], reasons: dict[str, list[str]], note: str = "") -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        v = (self.versions() or [0])[-1] + 1
        doc = {"version": v, "created": pd.Timestamp.now(tz="UTC").isoformat(), "note": note,
               "previous": self.current(), "channels": {k: p.to_dict() for k, p in sorted(channels.items())},
               "reasons": reasons}  # fmt: skip
        tmp = self.root / f".v{v:04d}.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, self.root / f"v{v:04d}.json")
        self._point(v)
        return v

    def rollback(self, to: int) -> int:
        """A new version equal to version ``to``; returns the new version."""
        old = self.read(to)
        return self.write(self.policies(to), {k: [f"rolled back to version {to}"] for k in old["channels"]},
                          note=f"rollback to v{to}")  # fmt: skip

    def _point(self, v: int) -> None:
        tmp = self.root / ".current.tmp"
        tmp.write_text(f"{v}\n")
        os.replace(tmp, self.root / "current")
