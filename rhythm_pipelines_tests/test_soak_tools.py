"""The soak's own judgement (tools/soak.py): cron ticks it expects, and the leak rule it applies to RSS."""

import importlib.util
from pathlib import Path

import pandas as pd

spec = importlib.util.spec_from_file_location("soak", Path(__file__).resolve().parents[1] / "tools" / "soak.py")
soak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soak)

T = pd.Timestamp("2026-11-30 13:10", tz="UTC")  # a Monday


def test_expected_ticks_follow_the_schedules_crons():
    assert soak.cron_matches("10 * * * *", T) and not soak.cron_matches("5 * * * *", T)
    assert soak.cron_matches("0 1 * * 1", pd.Timestamp("2026-11-30 01:00", tz="UTC"))  # Mondays at 01:00
    assert not soak.cron_matches("0 1 * * 1", pd.Timestamp("2026-12-01 01:00", tz="UTC"))
    assert soak.cron_matches("15 1 1 * *", pd.Timestamp("2026-12-01 01:15", tz="UTC"))
    assert len(soak.expected_ticks("*/15 * * * *", T, T + pd.Timedelta("2h"))) == 8


def test_the_soak_finds_growth_that_does_not_level_off_and_spares_a_plateau():
    ts = pd.date_range(T, periods=120, freq="min")
    hours = (ts - T).total_seconds() / 3600
    warm = pd.DataFrame({"ts": ts, "pid": 1, "role": "code server",
                         "rss": 3e8 + 3e7 * (1 - 2.0 ** (-(hours * 12)))})  # warms up, then flat  # fmt: skip
    leak = pd.DataFrame({"ts": ts, "pid": 2, "role": "daemon", "rss": 3e8 * (1 + 0.05 * hours)})  # +5 %/h, steadily
    found = soak.leaks(pd.concat([warm, leak]), 7200)
    assert [f["pid"] for f in found] == [2]
