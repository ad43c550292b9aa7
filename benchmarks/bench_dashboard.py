"""Dashboard benchmark: server time per endpoint and the Overview's first paint in Chromium, on a store the
size of a week of a 50-host fleet.

The store: 7 days × 50 hosts × 20 metrics at a 1-minute step (10 M points), about 1 M channel calls (6
channels × 4 regions), the simulator's incidents with their healing log, hourly runs, anomaly events, served
forecasts, a routing plan, and the daily ``channel_costs`` totals the cost asset keeps for every whole past
day (so budgets read totals, not a month of calls). Built once into ``--db`` and reused.

Each endpoint is asked ``--requests`` times of a real ``rhythm dashboard`` process as it runs (its background
thread recomputing the KPI snapshot every 3 s), "now" fixed at the end of the data; the snapshot's own
computation time is printed cold (the first, which builds the spend ledger) and warm. Chromium then opens
the Overview cold: first contentful paint, the KPI tiles filled, every chart drawn.

Usage: python benchmarks/bench_dashboard.py [--db $TMPDIR/rhythm-bench-dashboard.db] [--requests 5]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rhythm_pipelines.cost import catalog as catalogs  # noqa: E402
from rhythm_pipelines.cost.tracking import channel_costs  # noqa: E402
from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore  # noqa: E402
from rhythm_pipelines.simulate import SimConfig, simulate  # noqa: E402
from rhythm_pipelines.simulate.history import fill  # noqa: E402

START = pd.Timestamp("2026-03-02", tz="UTC")
EXTRA = (  # nine more gauges per host, so each reports 20 metrics (the simulator's 11 plus these)
    "mem_used_bytes", "disk_read_bytes_per_s", "disk_write_bytes_per_s", "load5", "load15",
    "net_sent_bytes_per_s", "open_files", "threads", "ctx_switches_per_s",
)  # fmt: skip
ENDPOINTS = (
    "/",
    "/api/kpis",
    "/api/trend?hours=24",
    "/api/hosts?hours=6",
    "/api/hosts?hours=6&host={first_host}",
    "/api/channels?hours=6",
    "/api/healing?hours=24",
    "/api/cost?hours=24",
    "/api/forecasts?hours=24",
    "/metrics",
)


def build(db: Path, days: float, hosts: int, calls: int) -> pd.Timestamp:
    """Fill ``db`` (see the module docstring); returns the end of its data."""
    t0 = time.perf_counter()
    per_minute = calls / (days * 1440 * 24) / 0.55  # the daily rhythm averages about 55 % of the peak rate
    sim = simulate(SimConfig(hosts=hosts, channels=6, regions=4, days=days, calls_per_minute=per_minute, seed=11,
                             start=START))  # fmt: skip
    rng = np.random.default_rng(11)
    host_names = sorted(s for s in sim.metrics["source"].unique() if "/" not in s)
    ts = pd.date_range(START, periods=int(days * 1440), freq="1min")
    extra = pd.DataFrame(
        {
            "ts": np.tile(ts, len(host_names) * len(EXTRA)),
            "source": np.repeat(np.repeat(host_names, len(EXTRA)), len(ts)),
            "metric": np.tile(np.repeat(EXTRA, len(ts)), len(host_names)),
            "value": np.abs(rng.normal(100, 15, len(ts) * len(host_names) * len(EXTRA))),
            "tags": None,
        }
    )
    with SQLiteMetricsStore(db) as store:
        rows = fill(store, sim, seed=11)
        rows["metrics"] += store.write_metrics(extra)
        catalog = catalogs.load()
        for day in pd.date_range(START, sim.calls["ts"].max().floor("D") - pd.Timedelta(days=1), freq="D"):
            mine = sim.calls[(sim.calls["ts"] >= day) & (sim.calls["ts"] < day + pd.Timedelta(days=1))]
            table = channel_costs(mine.rename(columns={"request_id": "call_id"}), catalog).assign(ts=day)
            rows["channel_costs"] = rows.get("channel_costs", 0) + store.write_table("channel_costs", table)
    print(f"built {db} in {time.perf_counter() - t0:.0f} s: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
    return sim.metrics["ts"].max()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_paint(url: str) -> dict[str, float]:
    """Chromium, cold: first contentful paint, KPI tiles filled, every chart drawn (ms from navigation)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="commit")
        page.wait_for_function(
            "() => (document.getElementById('tile-availability') || {dataset: {}}).dataset.value !== undefined",
            timeout=60_000,
        )
        tiles = page.evaluate("() => performance.now()")
        page.wait_for_function(
            "() => ['budgets', 'trend-health', 'trend-spend'].every(id => (document.getElementById(id).data || [])"
            ".length > 0)",
            timeout=60_000,
        )
        charts = page.evaluate("() => performance.now()")
        fcp = page.evaluate(
            "() => (performance.getEntriesByName('first-contentful-paint')[0] || {startTime: NaN}).startTime"
        )
        browser.close()
    return {"first_contentful_paint_ms": fcp, "kpis_shown_ms": tiles, "charts_drawn_ms": charts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "rhythm-bench-dashboard.db")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    if args.rebuild or not args.db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        end = build(args.db, args.days, args.hosts, args.calls)
    else:
        with SQLiteMetricsStore(args.db) as store:
            end = store.read_table("channel_calls", START, START + pd.Timedelta(days=60))["ts"].max()
    as_of = end.floor("min") - pd.Timedelta(minutes=1)
    print(f"store {args.db}: {args.db.stat().st_size / 1e6:,.0f} MB; now = {as_of}")
    port = free_port()
    home = args.db.parent / "rhythm-bench-home"
    cmd = [sys.executable, "-m", "rhythm_pipelines.cli", "dashboard", "--store", f"sqlite:///{args.db}",
           "--port", str(port), "--as-of", as_of.isoformat()]  # fmt: skip
    env = {**__import__("os").environ, "RHYTHM_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        print(f"server up in {time.perf_counter() - t0:.2f} s")
        while True:  # the first snapshot: it builds the spend ledger
            first = requests.get(base + "/api/kpis", timeout=120).json()
            if first.get("computed_in_s") is not None:
                break
        time.sleep(7)  # two more refreshes of the background thread
        warm = requests.get(base + "/api/kpis", timeout=120).json()
        print(f"KPI snapshot computed in {first['computed_in_s']:.2f} s cold, {warm['computed_in_s']:.2f} s warm")
        first_host = requests.get(base + "/api/hosts?hours=1", timeout=120).json()["hosts"][0]
        rows = []
        for path in (p.format(first_host=first_host) for p in ENDPOINTS):
            times, size = [], 0
            for _ in range(args.requests):
                t = time.perf_counter()
                res = requests.get(base + path, timeout=120)
                times.append(time.perf_counter() - t)
                res.raise_for_status()
                size = len(res.content)
            rows.append({"endpoint": path, "median_ms": round(1000 * statistics.median(times), 1),
                         "max_ms": round(1000 * max(times), 1), "kB": round(size / 1000, 1)})  # fmt: skip
        print(pd.DataFrame(rows).to_string(index=False))
        paints = [first_paint(base + "/") for _ in range(3)]
        print("Overview in Chromium (ms from navigation, 3 cold loads, median): " + ", ".join(
            f"{k} {statistics.median(p[k] for p in paints):.0f}" for k in paints[0]))  # fmt: skip
        print(f"server RSS after: {psutil.Process(server.pid).memory_info().rss / 1e6:.0f} MB")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
