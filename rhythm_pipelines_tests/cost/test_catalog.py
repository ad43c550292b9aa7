from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rhythm_pipelines.cost.catalog import CatalogError, load, parse


def test_the_shipped_catalog_prices_the_simulators_channels():
    cat = load()
    gpt = cat.price("gpt-4o", "us-east-1")
    assert gpt.cost(1000, 500) == pytest.approx(0.0025 + 0.005)
    assert gpt.requests_per_minute == 500 and gpt.quality == 3
    assert cat.allows("reasoning", "gpt-4o") and not cat.allows("reasoning", "llama-70b")
    assert cat.allows("embed", "embed-small") and not cat.allows("extract", "embed-small")
    assert cat.class_of("no-such-task") == "default" and cat.allows("default", "claude-sonnet")


def test_calls_get_a_catalog_cost_and_disagreeing_logged_costs_are_flagged(catalog):
    calls = pd.DataFrame(
        {
            "ts": pd.Timestamp("2026-03-02", tz="UTC"),
            "channel": ["premium", "premium", "cheap", "unknown"],
            "region": "r1",
            "latency_ms": 100.0,
            "status": "ok",
            "tokens_in": [1000, 1000, 2000, 10],
            "tokens_out": [1000, 1000, 0, 10],
            "cost_usd": [np.nan, 0.05, 0.002, np.nan],  # premium 1k/1k = 0.04: the logged 0.05 is off
            "task": ["hard", "hard", "easy", None],
        }
    )
    priced = catalog.price_calls(calls)
    assert priced["cost"].tolist()[:3] == pytest.approx([0.04, 0.05, 0.002])
    assert priced["cost_source"].tolist() == ["catalog", "logged", "logged", "unpriced"]
    assert priced["cost_mismatch"].tolist() == [False, True, False, False]
    assert priced["cls"].tolist() == ["hard", "hard", "easy", "default"]


def test_regional_prices_override_the_channels():
    cat = parse(
        "channels:\n  a:\n    input_per_1k: 1\n    output_per_1k: 1\n    regions:\n      eu: {input_per_1k: 2}\n"
    )
    assert cat.price("a", "us").cost(1000, 0) == 1 and cat.price("a", "eu").cost(1000, 1000) == 3


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("channels: [a, b", "cat.yaml:1: not valid YAML"),
        ("channels:\n  a: {output_per_1k: 1}\n", "cat.yaml:2: channels.a.input_per_1k: required"),
        ("channels:\n  a: {input_per_1k: -1, output_per_1k: 1}\n", "cat.yaml:2: channels.a.input_per_1k: expected a"),
        ("channels:\n  a: {input_per_1k: 1, output_per_1k: 1, colour: red}\n", "cat.yaml:2: channels.a.colour"),
        (
            "channels:\n  a: {input_per_1k: 1, output_per_1k: 1, rate_limits: {requests_per_minute: 0}}\n",
            "channels.a.rate_limits.requests_per_minute: must be positive",
        ),
        (
            "channels:\n  a: {input_per_1k: 1, output_per_1k: 1}\nclasses:\n  x: {channels: [b]}\n",
            "cat.yaml:4: classes.x.channels: unknown channel 'b'",
        ),
        (
            "channels:\n  a: {input_per_1k: 1, output_per_1k: 1, quality: 1}\nclasses:\n  x: {min_quality: 2}\n",
            "classes.x: no channel in the catalog may serve this class",
        ),
        ("channels: {}\n", "the catalog prices no channel"),
        (
            "channels:\n  a: {input_per_1k: 1, output_per_1k: 1}\nclasses:\n  x: {channels: [{name: a}]}\n",
            "cat.yaml:4: classes.x.channels: expected channel names, got {'name': 'a'}",
        ),
    ],
)
def test_a_bad_catalog_names_the_file_line_and_field(text, where):
    with pytest.raises(CatalogError, match=None) as info:
        parse(text, "cat.yaml")
    assert where in str(info.value)


def test_a_missing_catalog_file_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogError, match="no such price catalog file"):
        load(tmp_path / "nope.yaml")
