"""Small hand-made call logs and catalogs for the cost tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.cost.catalog import parse

DAY = pd.Timestamp("2026-03-02", tz="UTC")  # a Monday

CATALOG = """
version: 1
channels:
  premium: {input_per_1k: 0.01, output_per_1k: 0.03, quality: 2, rate_limits: {requests_per_minute: 1000}}
  cheap:   {input_per_1k: 0.001, output_per_1k: 0.002, quality: 1, rate_limits: {requests_per_minute: 3}}
  slow:    {input_per_1k: 0.002, output_per_1k: 0.004, quality: 1}
classes:
  hard: {min_quality: 2}
  easy: {min_quality: 1}
"""


@pytest.fixture
def catalog():
    return parse(CATALOG, "test-catalog.yaml")


def make_calls(
    spec: dict[str, tuple[float, float]],
    per_minute: dict[tuple[str, str], float],
    days: float = 2.0,
    start: pd.Timestamp = DAY,
    seed: int = 0,
    tokens: tuple[int, int] = (1000, 500),
) -> pd.DataFrame:
    """Calls at a steady rate: ``spec`` = {channel: (median latency ms, error rate)}, ``per_minute`` =
    {(channel, task): calls per minute}; one region ``r1``; fixed token counts; no logged cost."""
    rng = np.random.default_rng(seed)
    minutes = int(days * 1440)
    rows = []
    for (channel, task), rate in per_minute.items():
        med, err = spec[channel]
        n = rng.poisson(rate, minutes)
        minute = np.repeat(np.arange(minutes), n)
        ts = start + pd.to_timedelta(minute * 60 + rng.uniform(0, 60, len(minute)), unit="s")
        failed = rng.random(len(minute)) < err
        rows.append(
            pd.DataFrame(
                {
                    "ts": ts,
                    "channel": channel,
                    "region": "r1",
                    "latency_ms": med * np.exp(rng.normal(0, 0.2, len(minute))),
                    "status": np.where(failed, "error", "ok"),
                    "tokens_in": tokens[0],
                    "tokens_out": np.where(failed, 0, tokens[1]),
                    "cost_usd": np.nan,
                    "task": task,
                }
            )
        )
    return pd.concat(rows, ignore_index=True).sort_values("ts", ignore_index=True)
