"""Per channel and region: calls, tokens, cost, latency percentiles, error and timeout rates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhythm_pipelines.cost.catalog import Catalog

COST_COLUMNS = [
    "channel",
    "region",
    "calls",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "cost_per_call",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate",
    "timeout_rate",
    "priced_from_catalog",
    "unpriced",
    "cost_mismatches",
]


def channel_costs(calls: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """One row per channel and region. Latency percentiles are over every call, errors and timeouts
    included (what a caller waits); cost is the logged one, else the catalog's."""
    if calls.empty:
        return pd.DataFrame(columns=COST_COLUMNS)
    priced = catalog.price_calls(calls).assign(
        is_error=lambda f: f["status"].eq("error"),
        is_timeout=lambda f: f["status"].eq("timeout"),
        from_catalog=lambda f: f["cost_source"].eq("catalog"),
        unpriced=lambda f: f["cost_source"].eq("unpriced"),
        tin=lambda f: pd.to_numeric(f["tokens_in"], errors="coerce"),
        tout=lambda f: pd.to_numeric(f["tokens_out"], errors="coerce"),
    )
    g = priced.groupby(["channel", "region"], sort=True)
    lat = g["latency_ms"]
    out = pd.DataFrame(
        {
            "calls": g.size(),
            "tokens_in": g["tin"].sum(),
            "tokens_out": g["tout"].sum(),
            "cost_usd": g["cost"].sum(min_count=1),
            "latency_p50_ms": lat.quantile(0.50),
            "latency_p95_ms": lat.quantile(0.95),
            "latency_p99_ms": lat.quantile(0.99),
            "error_rate": g["is_error"].mean(),
            "timeout_rate": g["is_timeout"].mean(),
            "priced_from_catalog": g["from_catalog"].sum(),
            "unpriced": g["unpriced"].sum(),
            "cost_mismatches": g["cost_mismatch"].sum(),
        }
    ).reset_index()
    out["cost_per_call"] = out["cost_usd"] / out["calls"]
    for c in ("calls", "tokens_in", "tokens_out", "priced_from_catalog", "unpriced", "cost_mismatches"):
        out[c] = out[c].astype("int64")
    return out[COST_COLUMNS]


def spend(calls: pd.DataFrame, catalog: Catalog, by: list[str]) -> pd.DataFrame:
    """Cost and calls grouped by ``by`` (e.g. channel, region, cls), most expensive first."""
    priced = catalog.price_calls(calls)
    if priced.empty:
        return pd.DataFrame(columns=[*by, "calls", "cost_usd"])
    g = priced.groupby(by, sort=False)
    out = pd.DataFrame({"calls": g.size(), "cost_usd": g["cost"].sum()}).reset_index()
    return out.sort_values("cost_usd", ascending=False, ignore_index=True)


def total_cost(calls: pd.DataFrame, catalog: Catalog) -> float:
    return float(np.nansum(catalog.price_calls(calls)["cost"])) if len(calls) else 0.0
