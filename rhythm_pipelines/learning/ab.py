"""Online A/B of a channel's default and tuned policies: a hash split of its requests, and a sequential test.

The test is the mixture sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis and Walsh,
"Peeking at A/B tests" (KDD 2017), on the two arms' failure rates: a normal mixture (standard deviation
``tau``) over the difference. It is read per time bin: each bin's difference of the arms' failure rates is one
observation, with the bins' own spread as its variance. A request's outcome is not independent of its arm's
last ones (a breaker open, a budget spent), so a per-request Bernoulli test stops A/A tests at will; bins pair
the arms in time, so a channel's regime shifts fall out of the difference too. Its p-value
stays valid however often it is read, so the experiment may be looked at after every request and stops the
first time ``p < alpha``. The difference's always-valid interval is given beside it, not intersected over
time: a channel's regimes shift, so the difference need not be constant. The test watches from ``min_bins``
bins (and ``min_n`` requests) on: the running minimum of the p-value starts there. A verdict is about the
traffic seen so far.
No well-kept library implements it (the PyPI ones are months old), so it is written here in a few lines and
checked against A/A simulations in the tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rhythm_pipelines.learning.resilient import ResilientClient
from rhythm_pipelines.learning.tuning import tune

ARMS = ("default", "tuned")
ALPHA = 0.05
TAU = 0.1  # prior sd of the failure-rate difference: effects of a few points to a few tens are worth finding
MIN_PER_ARM = 50  # no verdict before each arm has this many requests
BIN_S = 10.0  # the test reads the arms' difference per 10-s bin: an arm's failures come in bursts (its breaker,
# its retry budget), so single requests are not independent; bins of time are, near enough, and pair the arms
MIN_BINS = 10


def arm_of(request_id: str, share: float = 0.5, salt: str = "") -> str:
    """The request's arm: ``tuned`` for a ``share`` of request ids, by hash (stable, not by turn)."""
    h = int.from_bytes(hashlib.sha256(f"{salt}|{request_id}".encode()).digest()[:8], "big") / 2.0**64
    return "tuned" if h < share else "default"


@dataclass
class Verdict:
    """The test as read at its stop (or at the last request when it has not stopped)."""

    requests: dict[str, int]
    failed: dict[str, int]
    diff: float | None  # tuned minus default failure rate
    ci: tuple[float, float] | None  # its always-valid (1 - alpha) confidence sequence
    p: float  # always-valid p-value
    stopped: bool
    at: pd.Timestamp | float | None  # when it stopped (seconds when the outcomes' ts are seconds)
    path: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)  # per request: n, diff, lo, hi, p

    @property
    def rates(self) -> dict[str, float | None]:
        return {a: (self.failed[a] / self.requests[a] if self.requests[a] else None) for a in ARMS}

    @property
    def winner(self) -> str | None:
        if not self.stopped or self.diff is None:
            return None
        return "tuned" if self.diff < 0 else "default"

    def describe(self) -> str:
        r = self.rates
        head = ", ".join(f"{a} {self.failed[a]}/{self.requests[a]} failed" for a in ARMS)
        if self.stopped:
            return (f"stopped: the {self.winner} policy fails less ({head}; difference {self.diff:+.3f}, "
                    f"{self.ci[0]:+.3f} to {self.ci[1]:+.3f}, p = {self.p:.3g})")  # fmt: skip
        if None in r.values():
            return f"running: {head}"
        return f"running, no significant difference yet ({head}; p = {self.p:.3g})"


def _seconds(ts: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(ts):
        return ts.to_numpy(dtype=float)
    t = pd.to_datetime(ts, utc=True)
    return ((t - t.min()).dt.total_seconds()).to_numpy(dtype=float)


def test(outcomes: pd.DataFrame, alpha: float = ALPHA, tau: float = TAU, min_per_arm: int = MIN_PER_ARM,
         min_n: int = 0, bin_s: float = BIN_S, min_bins: int = MIN_BINS) -> Verdict:  # fmt: skip
    """The mSPRT over ``outcomes`` (``ts, arm, ok``; ``ts`` a time or seconds), read at the end of each ``bin_s``
    bin; no stop before ``min_bins`` bins with both arms and ``min_n`` requests in all."""
    empty = {a: 0 for a in ARMS}
    if outcomes.empty:
        return Verdict(dict(empty), dict(empty), None, None, 1.0, False, None)
    o = outcomes.sort_values("ts", kind="stable").reset_index(drop=True)
    b = np.floor(_seconds(o["ts"]) / bin_s).astype(int)
    tuned = (o["arm"] == "tuned").to_numpy()
    fail = ~o["ok"].astype(bool).to_numpy()
    frame = pd.DataFrame({"bin": b, "nt": tuned, "nd": ~tuned, "ft": fail & tuned, "fd": fail & ~tuned})
    per = frame.groupby("bin", sort=True).sum()
    last = o.groupby(b)["ts"].max()  # when each bin's verdict is known
    cum = per.cumsum()
    both = ((per["nt"] > 0) & (per["nd"] > 0)).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (per["ft"] / per["nt"] - per["fd"] / per["nd"]).to_numpy()  # each bin: tuned minus default
    d = np.where(both, d, 0.0)
    k = np.cumsum(both)  # bins with both arms so far
    mean = np.cumsum(d) / np.maximum(k, 1)
    sq = np.cumsum(d**2)
    var = np.maximum((sq - k * mean**2) / np.maximum(k - 1, 1), 1e-4)  # the bins' own spread (a floor of 1e-4)
    v = var / np.maximum(k, 1)
    t2 = tau**2
    log_lr = 0.5 * np.log(v / (v + t2)) + t2 * mean**2 / (2 * v * (v + t2))
    half = np.sqrt(2 * v * (v + t2) / t2 * (np.log(1 / alpha) + 0.5 * np.log((v + t2) / v)))
    n = (cum["nt"] + cum["nd"]).to_numpy()
    ready = (k >= max(2, min_bins)) & (cum["nt"].to_numpy() >= min_per_arm) & (cum["nd"].to_numpy() >= min_per_arm)
    ready &= n >= min_n  # the test starts watching here: what came before informs the estimate, never stops it alone
    p = np.minimum.accumulate(np.where(ready, np.minimum(1.0, np.exp(-log_lr)), 1.0))
    lo, hi = np.where(ready, mean - half, -1.0), np.where(ready, mean + half, 1.0)
    path = pd.DataFrame({"ts": last.to_numpy(), "n": n, "diff": mean, "lo": lo, "hi": hi, "p": p, "ready": ready})
    hit = np.flatnonzero(p < alpha)
    i = int(hit[0]) if len(hit) else len(per) - 1
    return Verdict(
        requests={"default": int(cum["nd"].iloc[i]), "tuned": int(cum["nt"].iloc[i])},
        failed={"default": int(cum["fd"].iloc[i]), "tuned": int(cum["ft"].iloc[i])},
        diff=float(mean[i]) if ready[i] else None,
        ci=(float(lo[i]), float(hi[i])) if ready[i] else None,
        p=float(p[i]),
        stopped=bool(len(hit)),
        at=pd.Timestamp(last.iloc[i])
        if len(hit) and not pd.api.types.is_numeric_dtype(o["ts"])
        else (float(last.iloc[i]) if len(hit) else None),
        path=path,
    )


@dataclass
class Experiment:
    name: str
    requests: pd.DataFrame  # its rows of ``ab_requests``
    alpha: float
    verdict: Verdict


def _setting(g: pd.DataFrame, column: str, default: float) -> float:
    """An experiment's own setting as ``rhythm learn ab`` stored it (``default`` for rows without one)."""
    values = g[column].dropna() if column in g else pd.Series(dtype=float)
    return float(values.iloc[-1]) if len(values) else default


def experiments(requests: pd.DataFrame, alpha: float = ALPHA, tau: float = TAU) -> list[Experiment]:
    """Each experiment of ``ab_requests`` rows (oldest first), its test read again on the requests sent while it
    ran, with its own stored level, prior, bin and ``min_n`` (``alpha``, ``tau``: for rows that stored none)."""
    out = []
    if requests.empty:
        return out
    for name, g in sorted(requests.groupby("experiment"), key=lambda kv: kv[1]["ts"].min()):
        level = _setting(g, "alpha", alpha)
        v = test(g[g["in_test"] == 1], level, _setting(g, "tau", tau), min_n=int(_setting(g, "min_n", 0)),
                 bin_s=_setting(g, "bin_s", BIN_S))  # fmt: skip
        out.append(Experiment(str(name), g, level, v))
    return out


@dataclass
class Split:
    """Sends each request to its arm's client until the test stops, then every request to the winner. While
    ``warming`` every request goes to the default arm and none counts in the test (the tuner's first history)."""

    clients: dict[str, ResilientClient]
    experiment: str
    share: float = 0.5
    alpha: float = ALPHA
    tau: float = TAU
    min_n: int = 0  # no verdict before this many requests were split
    bin_s: float = BIN_S
    warming: bool = False
    outcomes: list[dict] = field(default_factory=list)
    verdict: Verdict | None = None

    async def call(self, rid: str) -> bool:
        winner = self.verdict.winner if self.verdict else None
        in_test = not (winner or self.warming)
        arm = "default" if self.warming else winner or arm_of(rid, self.share, self.experiment)
        client = self.clients[arm]
        ok = await client.call(rid)
        done = client.requests[-1]
        self.outcomes.append({
            "ts": pd.Timestamp.now(tz="UTC"), "experiment": self.experiment, "request_id": rid, "arm": arm,
            "in_test": int(in_test), "ok": int(ok), "attempts": done["attempts"], "seconds": done["seconds"],
        })  # fmt: skip
        return ok

    def warmed(self) -> list[str]:
        """End the warm-up: the tuned arm starts from a policy tuned on the default arm's calls (its reasons)."""
        self.warming = False
        tuned, default = self.clients["tuned"], self.clients["default"]
        t = tune(pd.DataFrame(default.attempts), tuned.policy)
        if t.policy != tuned.policy:
            tuned.adopt(t.policy)
        return t.reasons

    def check(self) -> Verdict:
        """Read the test on the requests sent while it ran (a stopped test keeps its verdict)."""
        if self.verdict is None or not self.verdict.stopped:
            frame = pd.DataFrame(self.outcomes)
            if len(frame):
                frame = frame[frame["in_test"] == 1]
            empty = pd.DataFrame(columns=["ts", "arm", "ok"])
            self.verdict = test(frame if len(frame) else empty, self.alpha, self.tau, min_n=self.min_n,
                                bin_s=self.bin_s)  # fmt: skip
        return self.verdict


async def run(
    split: Split,
    rate: float,
    max_s: float,
    seed: int = 0,
    every_s: float = 1.0,
    warmup_s: float = 0.0,
    after_stop_s: float = 0.0,
    sink: Callable[[list[dict]], None] = lambda rows: None,
    progress: Callable[[float, Verdict | None], None] = lambda t, v: None,
) -> Verdict:
    """Poisson requests at ``rate``/s: ``warmup_s`` to the default arm only (the tuned arm is then tuned on them),
    then split until the test stops or ``max_s`` has passed (``after_stop_s`` more once it stopped, all to the
    winner). Every ``every_s`` the test is read and the new outcomes go to ``sink``."""
    rng = np.random.default_rng(seed)
    t0 = time.monotonic()
    split.warming = warmup_s > 0
    tuners = [asyncio.create_task(c.retuning()) for c in split.clients.values() if c.retune_s]
    tasks: list[asyncio.Task] = []
    sent, next_check, stop_at, i = 0, every_s, warmup_s + max_s, 0
    try:
        while (now := time.monotonic() - t0) < stop_at:
            if split.warming and now >= warmup_s:
                split.warmed()
            if now >= next_check:
                v = None if split.warming else split.check()
                sink(split.outcomes[sent:])
                sent = len(split.outcomes)
                progress(now, v)
                next_check += every_s
                if v is not None and v.stopped:
                    stop_at = min(stop_at, now + after_stop_s)
            tasks.append(asyncio.create_task(split.call(f"{split.experiment}-r{i:07d}")))
            i += 1
            await asyncio.sleep(float(rng.exponential(1 / rate)))
        await asyncio.gather(*tasks)
    finally:
        for t in tuners:
            t.cancel()
    v = split.check()
    sink(split.outcomes[sent:])
    return v
