"""Tuned timeout/retry/breaker policy against fixed defaults, on one request stream and a channel that shifts.

Three loopback fault servers (``rhythm_pipelines/chaos/fault_server.py``, one process each, one epoch) play the
same schedule of regimes (normal, slow, flapping, down, normal; ``--regime-s`` each). One recorded request
stream (Poisson, ``--rate`` per second) is replayed by three clients at once, one per server:

- **resilience4j defaults**: 1 s timeout; 3 attempts 500 ms apart; breaker at 50 % of 100 calls, open 60 s;
- **LiteLLM defaults**: 600 s timeout; 2 immediate retries; no breaker (its cooldown never removes the only
  deployment of a model group);
- **tuned**: first tuned from a recorded minute of the channel's normal traffic, then re-tuned every 2 s from
  its last 30 s of calls (``learning/tuning.py``: timeout 1.5 x p99.9, retries within a 20 % budget with
  full-jitter backoff, breaker from the channel's error rate and failure bursts; each step bounded).

A request fails when it is not answered within 10 s (the caller's patience), however many attempts it made.
Printed: failed requests, retry amplification (attempts per request, a request refused by the breaker counting
none) and re-convergence: after each regime shift, the seconds until the client's failed share in 10-s bins
stays within 0.15 of the best steady share any of the three clients reached in that regime (``never``: it
did not before the next shift); the worst shift into a steady regime (a flapping one swings by design).
``default`` in the JSON is the better of the two defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rhythm_pipelines.chaos.fault_server import REGIMES, answer, parse_schedule, spawn, stop  # noqa: E402
from rhythm_pipelines.learning.resilient import DEADLINE_S, ResilientClient, http_send  # noqa: E402
from rhythm_pipelines.learning.tuning import LITELLM, RESILIENCE4J, tune  # noqa: E402

BIN_S = 10.0
RETUNE_S = 2.0  # the tuned client re-tunes this often from its last 30 s of calls
BAND = 0.15


def recorded_history(seed: int, rate: float, seconds: float = 60.0) -> pd.DataFrame:
    """A minute of the channel's normal calls, as its call log recorded them (no network)."""
    rng = np.random.default_rng(seed + 100)
    n = int(rate * seconds)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    rows = []
    for i in range(n):
        status, wait = answer([("normal", 1e9)], 0.0, seed + 100, f"h{i}", 0)
        rows.append({"ts": t0 + pd.Timedelta(seconds=float(rng.uniform(0, seconds))),
                     "latency_ms": wait * 1000, "status": "ok" if status == 200 else "error"})  # fmt: skip
    return pd.DataFrame(rows)


def shares(requests: pd.DataFrame, schedule: list[tuple[str, float]]) -> list[list[float]]:
    """Per regime, the failed share of requests in each 10-s bin."""
    starts = np.cumsum([0.0] + [s for _, s in schedule])
    out = []
    for k in range(len(schedule)):
        edges = np.arange(starts[k], starts[k + 1] - 1e-9, BIN_S)
        bins = [requests[(requests["t"] >= lo) & (requests["t"] < lo + BIN_S)]["ok"] for lo in edges]
        out.append([float((~b).mean()) if len(b) else 0.0 for b in bins])
    return out


def reconverge(mine: list[list[float]], best: list[float], schedule) -> tuple[float | None, list[float | None]]:
    """After each shift into a steady regime, the seconds until the failed share stays within ``BAND`` of the best
    steady share any client reached there (the median of the best client's second half); None: it never did."""
    out: list[float | None] = []
    for k in range(1, len(schedule)):
        if REGIMES[schedule[k][0]].flap_s:
            continue  # a flapping channel's failed share swings by design: it has nothing to settle to
        share = mine[k]
        ok = [abs(x - best[k]) <= BAND or x < best[k] for x in share]
        settled = next((i for i in range(len(ok)) if all(ok[i:])), None)
        out.append(None if settled is None else round(settled * BIN_S, 1))
    worst = None if any(x is None for x in out) else max(out, default=0.0)
    return worst, out


async def replay(clients: dict[str, ResilientClient], arrivals: np.ndarray, epoch: float) -> None:
    tasks = []
    tuners = [asyncio.create_task(c.retuning()) for c in clients.values() if c.retune_s]
    for i, t in enumerate(arrivals):
        delay = epoch + t - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks += [asyncio.create_task(c.call(f"r{i:06d}")) for c in clients.values()]
    await asyncio.gather(*tasks)
    for tuner in tuners:
        tuner.cancel()


def summary(client: ResilientClient, schedule, best: list[float]) -> dict:
    req = pd.DataFrame(client.requests)
    mine = shares(req, schedule)
    worst, each = reconverge(mine, best, schedule)
    return {
        "failed_requests": int((~req["ok"]).sum()),
        "retry_amplification": round(float(req["attempts"].sum() / len(req)), 3),
        "reconverge_s": worst,
        "requests": len(req),
        "reconverge_by_shift_s": each,
        "failed_share_by_10s": [[round(x, 3) for x in r] for r in mine],
        "failed_by_regime": {
            name: int((~g["ok"]).sum())
            for name, g in req.groupby(
                pd.cut(
                    req["t"],
                    np.cumsum([0.0] + [s for _, s in schedule]),
                    labels=[f"{i}:{n}" for i, (n, _) in enumerate(schedule)],
                ),
                observed=False,
            )
        },  # fmt: skip
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=25.0, help="requests per second (default 25)")
    p.add_argument("--regime-s", type=float, default=60.0, help="seconds per regime (default 60)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--order", default="normal,slow,flapping,down,normal", help="the regimes, in order")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    text = ",".join(f"{r}:{args.regime_s:g}" for r in args.order.split(","))
    schedule = parse_schedule(text)
    total = sum(s for _, s in schedule)
    rng = np.random.default_rng(args.seed)
    arrivals = np.cumsum(rng.exponential(1 / args.rate, int(args.rate * total * 1.2)))
    arrivals = arrivals[arrivals < total]
    first = tune(recorded_history(args.seed, args.rate))
    policies = {"resilience4j": RESILIENCE4J, "litellm": LITELLM, "tuned": first.policy}
    epoch = time.time() + 2.0
    servers = {name: spawn(text, args.seed, epoch) for name in policies}
    try:
        clients = {}
        for name, policy in policies.items():
            port = servers[name][1]

            async def send(rid, n, timeout, port=port):
                return await http_send("127.0.0.1", port, rid, n, timeout)

            clients[name] = ResilientClient(
                policy, send, retune_s=RETUNE_S if name == "tuned" else None, seed=args.seed
            )
        if not args.json:
            print(f"{len(arrivals)} requests over {total:g} s ({text}); three clients at once", flush=True)
        wait = epoch - time.time()
        time.sleep(max(0.0, wait))
        for c in clients.values():
            c._t0 = time.monotonic() - (time.time() - epoch)  # one clock: seconds since the schedule began
        asyncio.run(replay(clients, arrivals, epoch))
    finally:
        for proc, _ in servers.values():
            stop(proc)
    all_shares = {name: shares(pd.DataFrame(c.requests), schedule) for name, c in clients.items()}
    best = [min(float(np.median(sh[k][len(sh[k]) // 2 :])) for sh in all_shares.values()) for k in range(len(schedule))]
    res = {name: summary(c, schedule, best) for name, c in clients.items()}
    default_name = min(("resilience4j", "litellm"), key=lambda n: res[n]["failed_requests"])
    tuned = clients["tuned"]
    out = {
        "default": {k: res[default_name][k] for k in ("failed_requests", "retry_amplification", "reconverge_s")},
        "tuned": {k: res["tuned"][k] for k in ("failed_requests", "retry_amplification", "reconverge_s")},
        "default_is": default_name,
        "fewer_failed_vs_default": round(
            1 - res["tuned"]["failed_requests"] / max(1, res[default_name]["failed_requests"]), 3
        ),  # fmt: skip
        "detail": res,
        "tuned_versions": [
            {
                "t": round(t, 1),
                "timeout_s": round(pol.timeout_s, 3),
                "retries": pol.retries,
                "breaker_failure_rate": pol.breaker.failure_rate if pol.breaker else None,
                "open_s": round(pol.breaker.open_s, 2) if pol.breaker else None,
                "why": why,
            }
            for t, pol, why in tuned.versions
        ],  # fmt: skip
        "first_tuning": first.reasons,
        "setup": {
            "schedule": text,
            "rate": args.rate,
            "requests": len(arrivals),
            "seed": args.seed,
            "deadline_s": DEADLINE_S,
        },  # fmt: skip
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{'policy':14s} {'failed':>7s} {'amplif.':>8s} {'reconv. s':>10s}  failed by regime")
    for name, r in res.items():
        rc = "never" if r["reconverge_s"] is None else f"{r['reconverge_s']:.0f}"
        print(f"{name:14s} {r['failed_requests']:7d} {r['retry_amplification']:8.2f} {rc:>10s}  "
              f"{r['failed_by_regime']}")  # fmt: skip
    print(f"tuned vs the better default ({default_name}): {out['fewer_failed_vs_default']:.0%} fewer failed requests; "
          f"{len(tuned.versions)} policy versions")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
