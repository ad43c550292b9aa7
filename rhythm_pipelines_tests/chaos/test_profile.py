import yaml

from rhythm_pipelines.chaos.runner import Sandbox, chaos_playbooks, cpu_bar
from rhythm_pipelines.healing.playbooks import parse


def test_the_cpu_bar_sits_over_the_machines_own_background(tmp_path):
    assert cpu_bar([]) == 80.0 and cpu_bar([20.0] * 60) == 80.0  # a quiet machine: the profile's bar
    busy = [70.0] * 50 + [85.0] * 10  # a dagster dev and a generator beside the suite
    assert cpu_bar(busy) == 95.0 and cpu_bar([60.0] * 60) == 80.0 and cpu_bar([75.0] * 60) == 85.0
    sb = Sandbox(tmp_path)
    text = chaos_playbooks(sb, 87.5)
    assert yaml.safe_load(text)["detectors"]["cpu_percent"] == 87.5
    books = parse(text, "chaos")
    assert books.detectors.cpu_percent == 87.5 and books.detectors.leak_horizon_s == 1200


def test_learning_on_tunes_each_chaos_channel_from_the_warm_up_calls(tmp_path):
    import numpy as np
    import pandas as pd

    from rhythm_pipelines.chaos.runner import tune_chaos_channels
    from rhythm_pipelines.learning.tuning import PolicyFile
    from rhythm_pipelines.metrics.store import open_store

    sb = Sandbox(tmp_path)
    rng = np.random.default_rng(0)
    ts = pd.Timestamp.now(tz="UTC") - pd.to_timedelta(np.sort(rng.uniform(0, 60, 300)), unit="s")
    calls = pd.DataFrame({"ts": ts, "call_id": [f"c{i}" for i in range(300)], "channel": "chaos-a",
                          "region": "local", "latency_ms": 30 * np.exp(rng.normal(0, 0.2, 300)), "status": "ok",
                          "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0})  # fmt: skip
    with open_store(str(sb.store_path)) as store:
        store.write_table("channel_calls", calls)
    said = tune_chaos_channels(sb)
    policy = PolicyFile(sb.rhythm_home / "policies").policies()["chaos-a@local"]
    assert "policy version 1" in said and "chaos-a@local" in said and "300 calls" in said
    p999 = np.quantile(calls["latency_ms"], 0.999) / 1000
    assert policy.timeout_s == max(0.05, 1.5 * p999)  # its own calls' tail, not a default
