import numpy as np
import pandas as pd

from rhythm_pipelines.healing.playbooks import default_text, parse
from rhythm_pipelines.healing.replay import REPLAY_PREFIX, replay
from rhythm_pipelines.healing.report import day_report

T0 = pd.Timestamp("2026-11-20 06:00", tz="UTC")


def host_cpu(values, host="sim-01"):
    ts = pd.date_range(T0, periods=len(values), freq="1min")
    return pd.DataFrame({"ts": ts, "source": host, "metric": "cpu_percent", "value": np.asarray(values, float)})


def run(books, points, tmp_path):
    rows = []
    counts = replay(
        books, points, pd.DataFrame(columns=["ts", "channel", "region", "latency_ms", "status"]), pd.DataFrame(),
        T0 + pd.Timedelta(minutes=30), T0 + pd.Timedelta(hours=3), tmp_path, rows.append,
    )  # fmt: skip
    return counts, pd.DataFrame(rows)


def test_a_past_cpu_spike_is_replayed_in_dry_run_and_closed_when_it_cleared(tmp_path):
    cpu = [30.0] * 60 + [97.0] * 20 + [30.0] * 100  # 20 minutes hot from 07:00
    counts, log = run(parse(default_text(), "shipped"), host_cpu(cpu), tmp_path)
    assert counts == {"cpu_spike": 1}
    assert log["run_id"].str.startswith(REPLAY_PREFIX).all()
    steps = list(zip(log["step"], log["outcome"], strict=True))
    assert steps[:2] == [("detect", "received"), ("assess", "critical")]  # 97 % CPU: the critical rule
    assert ("act", "refused") in steps or ("decide", "nothing_allowed") in steps  # sim-01 is not this machine
    clear = log[log["step"] == "clear"]
    assert len(clear) == 1 and clear["ts"].iloc[0] == T0 + pd.Timedelta(minutes=80)  # the last hot minute + 1
    assert not (tmp_path / "reboot_plans").exists() and not list(tmp_path.glob("*.jsonl"))  # nothing written, sent
    report = day_report(log, pd.DataFrame(columns=["job", "status"]), T0.floor("D"), T0.floor("D") + pd.Timedelta("1D"))
    (event,) = report.events.itertuples()
    assert event.replayed and event.closed == T0 + pd.Timedelta(minutes=80)
    _, again = run(parse(default_text(), "shipped"), host_cpu(cpu), tmp_path)
    assert list(again["entry_id"]) == list(log["entry_id"])  # a re-run rewrites the same entries


def test_a_replay_acts_on_nothing_even_when_actions_are_allowed(tmp_path):
    text = default_text().replace("allow_processes: []", "allow_processes: [{cmdline: 'my_worker_7', user: nobody}]")
    counts, log = run(parse(text, "allowing"), host_cpu([30.0] * 60 + [97.0] * 20 + [30.0] * 100), tmp_path)
    acts = log[log["step"] == "act"]
    assert counts == {"cpu_spike": 1} and len(acts)
    assert set(acts["outcome"]) <= {"dry_run", "refused"} and not acts["outcome"].eq("done").any()


def test_a_condition_that_returns_after_the_episode_closed_is_a_second_incident_each_closed(tmp_path):
    cpu = [30.0] * 60 + [97.0] * 20 + [30.0] * 11 + [97.0] * 20 + [30.0] * 69  # back as the first closes
    counts, log = run(parse(default_text(), "shipped"), host_cpu(cpu), tmp_path)
    assert counts == {"cpu_spike": 2}
    clears = log[log["step"] == "clear"].sort_values("ts")
    assert list(clears["ts"]) == [T0 + pd.Timedelta(minutes=80), T0 + pd.Timedelta(minutes=111)]
    assert clears["event_id"].nunique() == 2
