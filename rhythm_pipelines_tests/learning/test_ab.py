"""The online A/B of channel policies: a stable hash split, an mSPRT that keeps its level however often it is
read (A/A simulations) and finds a real difference, a split that sends everything to the winner once the test
stops, and ``rhythm learn ab`` against a real fault server writing every request to the store, read back by the
ab_tests asset with the same verdict."""

from __future__ import annotations

import asyncio
import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.cli import build_parser, main
from rhythm_pipelines.defs.learning import ab_tests
from rhythm_pipelines.defs.resources import SQLiteStoreResource
from rhythm_pipelines.learning import ab
from rhythm_pipelines.learning.resilient import ResilientClient
from rhythm_pipelines.learning.tuning import LITELLM


def stream(rate_default: float, rate_tuned: float, n: int, rng) -> pd.DataFrame:
    arm = np.where(rng.random(n) < 0.5, "tuned", "default")
    failed = rng.random(n) < np.where(arm == "tuned", rate_tuned, rate_default)
    return pd.DataFrame({"ts": np.arange(n), "arm": arm, "ok": ~failed})


def test_the_split_is_stable_and_keeps_its_share():
    ids = [f"r{i}" for i in range(20_000)]
    arms = [ab.arm_of(i, 0.3, "exp-1") for i in ids]
    assert arms == [ab.arm_of(i, 0.3, "exp-1") for i in ids]  # the same request, the same arm
    assert abs(arms.count("tuned") / len(arms) - 0.3) < 0.015
    assert arms != [ab.arm_of(i, 0.3, "exp-2") for i in ids]  # another experiment splits anew


@pytest.mark.parametrize("rate", [0.02, 0.2])
def test_an_a_a_test_read_after_every_request_rarely_stops(rate):
    rng = np.random.default_rng(7)
    stops = [ab.test(stream(rate, rate, 3000, rng)).stopped for _ in range(300)]
    assert np.mean(stops) <= 0.06  # the level is 0.05 however often it is read (a fixed test peeked at: > 0.2)


def bursty(rate: float, n: int, rng, burst: int = 10) -> pd.DataFrame:
    """Both arms alike, but each arm's failures come in runs of ~``burst`` (its breaker open, its budget spent)."""
    arm = np.where(rng.random(n) < 0.5, "tuned", "default")
    ok = np.ones(n, bool)
    for a in ("tuned", "default"):
        idx = np.flatnonzero(arm == a)
        state, out = False, []
        for _ in idx:
            state = rng.random() > 1 / burst if state else rng.random() < rate / burst / (1 - rate)
            out.append(not state)
        ok[idx] = out
    return pd.DataFrame({"ts": np.arange(n) / 20.0, "arm": arm, "ok": ok})  # 20 requests a second


def test_an_a_a_test_with_bursts_of_failures_rarely_stops():
    rng = np.random.default_rng(11)
    stops = [ab.test(bursty(0.2, 6000, rng)).stopped for _ in range(150)]
    assert np.mean(stops) <= 0.06  # a per-request Bernoulli test stops nearly all of these


def test_a_real_difference_stops_the_test_for_the_better_arm():
    rng = np.random.default_rng(8)
    verdicts = [ab.test(stream(0.10, 0.05, 4000, rng)) for _ in range(100)]
    stopped = [v for v in verdicts if v.stopped]
    assert len(stopped) >= 90 and all(v.winner == "tuned" for v in stopped)
    v = stopped[0]
    assert v.ci[1] < 0 and v.diff < 0 and v.p < 0.05 and v.at is not None
    assert sum(v.requests.values()) < 4000  # it stopped early, not at the end
    assert "tuned policy fails less" in v.describe()


def test_no_verdict_before_min_n_and_before_each_arm_has_its_minimum():
    rng = np.random.default_rng(9)
    data = stream(0.5, 0.0, 400, rng)
    early = ab.test(data, min_per_arm=10)
    late = ab.test(data, min_per_arm=10, min_n=300)
    assert early.stopped and sum(early.requests.values()) < 300
    assert late.stopped and sum(late.requests.values()) >= 300
    for v in (early, late):  # the verdict is read where it stopped: its interval excludes no difference
        assert v.p < 0.05 and v.ci[1] < 0
    assert not ab.test(data.head(30)).stopped  # fewer than 50 a side


def test_after_the_stop_every_request_goes_to_the_winner():
    async def send_for(fail_share: float):
        rng = np.random.default_rng(1)

        async def send(rid: str, n: int, timeout: float) -> tuple[str, float]:
            await asyncio.sleep(0.001)
            return ("error" if rng.random() < fail_share else "ok"), 0.001

        return send

    async def go():
        clients = {"default": ResilientClient(LITELLM, await send_for(0.6), seed=1),
                   "tuned": ResilientClient(LITELLM, await send_for(0.0), seed=2)}  # fmt: skip
        split = ab.Split(clients, "exp", bin_s=0.25)
        rows: list[dict] = []
        v = await ab.run(split, rate=400.0, max_s=20.0, every_s=0.25, after_stop_s=1.0, sink=rows.extend)
        return v, pd.DataFrame(rows)

    v, rows = asyncio.run(go())
    assert v.stopped and v.winner == "tuned"
    after = rows[rows["in_test"] == 0]
    assert len(after) > 50 and set(after["arm"]) == {"tuned"}  # the winner only, outside the test
    assert set(rows[rows["in_test"] == 1]["arm"]) == {"default", "tuned"}
    assert ab.test(rows[rows["in_test"] == 1], bin_s=0.25).at == v.at  # the stored rows give the same verdict


def test_rhythm_learn_ab_against_a_fault_server_is_read_back_by_ab_tests(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RHYTHM_HOME", str(tmp_path / "home"))
    db = tmp_path / "metrics.db"
    args = ["learn", "ab", "--fault-server", "normal:8,flapping:60", "--default", "resilience4j", "--rate", "40",
            "--max-s", "45", "--warmup-s", "6", "--bin-s", "2", "--tau", "0.3", "--after-stop-s", "2",
            "--store", f"sqlite:///{db}",
            "--json"]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    store = SQLiteStoreResource(path=str(db))
    with store.open() as s:
        rows = s.read_table("ab_requests")
    assert set(rows["experiment"]) == {out["experiment"]} and set(rows["channel"]) == {"loopback@local"}
    warm = rows[(rows["in_test"] == 0) & (rows["ts"] < rows.loc[rows["in_test"] == 1, "ts"].min())]
    assert len(warm) > 100 and set(warm["arm"]) == {"default"}  # the warm-up: the default arm only
    split = rows[rows["in_test"] == 1]
    assert out["requests"]["default"] + out["requests"]["tuned"] <= len(split)
    result = dg.materialize([ab_tests], resources={"store": store})
    meta = result.asset_materializations_for_node("ab_tests")[0].metadata
    assert meta["experiments"].value == 1 and out["experiment"] in meta["tests"].value
    again = ab.test(
        split,
        float(rows["alpha"].max()),
        float(rows["tau"].max()),
        min_n=int(rows["min_n"].max()),
        bin_s=float(rows["bin_s"].max()),
    )  # the experiment's own settings, as stored
    assert again.stopped == out["stopped"] and again.winner == out["winner"]
    # resilience4j's breaker stays open 60 s on a channel that flaps every 4 s: the tuned arm wins, early
    assert out["stopped"] and out["winner"] == "tuned" and out["ci"][1] < 0 < out["stopped_after_s"] < 45
    assert meta["newest"].value == again.describe() and "data:image/png;base64," in meta["sequential_test"].value


def test_bad_arguments_are_refused_with_their_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("RHYTHM_HOME", str(tmp_path / "home"))
    store = ["--store", f"sqlite:///{tmp_path / 'm.db'}"]
    cases = (
        (["--fault-server", "normal:5", "--share", "1.5"], "--share"),
        (["--fault-server", "normal:5", "--rate", "0"], "--rate"),
        (["--fault-server", "normal:5", "--alpha", "1"], "--alpha"),
        (["--fault-server", "normal:5", "--tau", "0"], "--tau"),
        (["--fault-server", "normal:5", "--warmup-s", "-1"], "--warmup-s"),
        (["--url", "ftp://x"], "--url"),
        ([], "--url"),  # neither a channel nor a fault server
        (["--fault-server", "calm:5"], "'calm:5' is not regime:seconds"),
    )
    for extra, word in cases:
        a = build_parser().parse_args(["learn", "ab", *store, *extra])
        with pytest.raises(ValueError, match=word):
            a.func(a)
    assert not (tmp_path / "m.db").exists()  # refused before anything was written
