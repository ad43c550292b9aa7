"""`make soak`: what `make dev` runs, on a fresh home, left running for hours while this machine does other work.

Starts `rhythm demo-seed` and `dagster dev` (with the demo feed, RHYTHM_DEMO=1) on a new DAGSTER_HOME and
RHYTHM_HOME, plus a CPU burner beside them, samples every Dagster process's RSS each minute (a table every 10
minutes) and, at the end, asserts what an operator would want of a product left alone:

- no healing event about the product's own processes, and no reboot plan;
- no failed run;
- every schedule's ticks in the window launched a run within 5 minutes, and those runs succeeded;
- the live forecasts' origins within one grid step of the newest stored data of their series;
- no Dagster process whose RSS grows without levelling off (the product's own leak rule over the soak).

Prints a JSON report (and writes it with --report). Exit 1 when an assertion fails. Our processes only: the
ones this script starts, stopped by their process groups at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def cron_matches(cron: str, t: pd.Timestamp) -> bool:
    """Does a five-field cron string (numbers, *, */n, a,b lists) fire at minute ``t`` (UTC)?"""
    fields = cron.split()
    values = (t.minute, t.hour, t.day, t.month, (t.dayofweek + 1) % 7)  # cron: Sunday is 0

    def ok(spec: str, v: int) -> bool:
        for part in spec.split(","):
            if part == "*" or (part.startswith("*/") and v % int(part[2:]) == 0) or (part.isdigit() and int(part) == v):
                return True
        return False

    return all(ok(s, v) for s, v in zip(fields, values, strict=True))


def expected_ticks(cron: str, start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    return [t for t in pd.date_range(start.ceil("min"), end, freq="min") if cron_matches(cron, t)]


def dagster_tree(root: psutil.Process) -> dict[int, tuple[str, psutil.Process]]:
    """The Dagster processes under ``root`` (ours), by role; run workers come and go and are left out."""
    from rhythm_pipelines.healing.processes import dagster_role

    out = {}
    for p in [root, *root.children(recursive=True)]:
        try:
            role = dagster_role(" ".join(p.cmdline()))
        except psutil.Error:
            continue
        if role and role != "run worker":
            out[p.pid] = (role, p)
    return out


def leaks(samples: pd.DataFrame, seconds: float) -> list[dict]:
    """The product's own leak rule over the soak: growth that does not level off, at 2 %/h or more."""
    from rhythm_pipelines.healing.detectors import DetectorSettings, memory_leak

    s = DetectorSettings(
        leak_window_s=seconds, leak_min_points=12, leak_min_rss_frac_per_h=0.02, leak_p_value=1e-3,
        leak_min_share=0.0, stale_s=600,
    )  # fmt: skip
    points = samples.assign(source="soak/proc/" + samples["pid"].astype(str), metric="proc_rss_bytes")
    found = memory_leak(points.rename(columns={"rss": "value"}), points["ts"].max(), s)
    return [{"pid": int(e.source.rsplit("/", 1)[1]), **{k: round(float(v), 4) for k, v in e.detail.items()}}
            for e in found]  # fmt: skip


def rss_table(samples: pd.DataFrame) -> str:
    rows = []
    for (pid, role), g in samples.groupby(["pid", "role"], sort=True):
        g = g.sort_values("ts")
        last30 = g[g["ts"] >= g["ts"].max() - pd.Timedelta("30min")]
        hours = max((last30["ts"].max() - last30["ts"].min()) / pd.Timedelta("1h"), 1e-9)
        slope = (last30["rss"].iloc[-1] - last30["rss"].iloc[0]) / 2**20 / hours if len(last30) > 1 else 0.0
        rows.append(f"  {role:<14} pid {pid:<7} {g['rss'].iloc[0] / 2**20:7.0f} → {g['rss'].iloc[-1] / 2**20:7.0f} MB"
                    f"   last 30 min {slope:+7.1f} MB/h")  # fmt: skip
    return "\n".join(rows)


def burner(duty: float) -> subprocess.Popen:
    code = (
        "import time\n"
        f"d={duty}\n"
        "while True:\n"
        "    t=time.monotonic()\n"
        "    while time.monotonic()-t<0.1*d: pass\n"
        "    time.sleep(0.1*(1-d))\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)  # noqa: S603


def stop_group(p: subprocess.Popen, timeout: float = 30.0) -> None:
    if p.poll() is not None:
        return
    os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--home", default="", help="a fresh directory (default: a new temporary one)")
    ap.add_argument("--port", type=int, default=3100)
    ap.add_argument("--busy-duty", type=float, default=0.6, help="a burner on one core at this duty (0: none)")
    ap.add_argument("--report", default="", help="also write the JSON report here")
    ap.add_argument(
        "--screenshots", default="", help="after the judgement, Chromium screenshots of the key pages into this dir"
    )
    args = ap.parse_args(argv)

    home = Path(args.home or tempfile.mkdtemp(prefix="rhythm-soak-"))
    dagster_home, rhythm_home = home / "dagster_home", home / "rhythm"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "RHYTHM_HOME": str(rhythm_home), "RHYTHM_DEMO": "1"}
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "RHYTHM_HOME", "RHYTHM_DEMO")})
    print(f"soak: home {home}, {args.hours:g} h, burner at {args.busy_duty:.0%} of a core", flush=True)

    t0 = time.monotonic()
    seed = subprocess.run([BIN / "rhythm", "demo-seed"], env=env, cwd=ROOT, check=False)  # noqa: S603
    if seed.returncode:
        print("soak: demo-seed failed", file=sys.stderr)
        return 1
    seed_s = time.monotonic() - t0
    log = open(home / "dagster-dev.log", "ab")  # noqa: SIM115 - closed at the end
    dev = subprocess.Popen(  # noqa: S603  our own dagster CLI, an argument list
        [BIN / "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.port)],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    busy = burner(args.busy_duty) if args.busy_duty > 0 else None
    start = pd.Timestamp.now(tz="UTC")
    end = start + pd.Timedelta(hours=args.hours)
    samples, next_print = [], time.monotonic()
    try:
        root = psutil.Process(dev.pid)
        while pd.Timestamp.now(tz="UTC") < end:
            if dev.poll() is not None:
                print("soak: dagster dev exited", file=sys.stderr)
                break
            now = pd.Timestamp.now(tz="UTC")
            for pid, (role, p) in dagster_tree(root).items():
                with contextlib.suppress(psutil.Error):
                    samples.append({"ts": now, "pid": pid, "role": role, "rss": p.memory_info().rss})
            if time.monotonic() >= next_print and samples:
                frame = pd.DataFrame(samples)
                print(f"soak {(now - start) / pd.Timedelta('1min'):.0f} min: RSS of the Dagster processes\n"
                      + rss_table(frame), flush=True)  # fmt: skip
                next_print += 600
            time.sleep(60)
        report = judge(home, start, pd.Timestamp.now(tz="UTC"), pd.DataFrame(samples), seed_s, args.hours)
        pd.DataFrame(samples).to_csv(home / "rss.csv", index=False)  # every sample, for a second look
        if args.screenshots:  # after the judgement: viewing pages grows the webserver, which is not a leak
            report["screenshots"] = screenshots(Path(args.screenshots), args.port, start)
    finally:
        stop_group(dev)
        if busy is not None:
            stop_group(busy)
        log.close()
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.report:
        Path(args.report).write_text(text)
    return 0 if report["passed"] else 1


def screenshots(out: Path, port: int, start: pd.Timestamp) -> list[str]:
    """Headless Chromium screenshots of the pages an operator opens first (none if Chromium is missing)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("soak: no chromium on PATH: no screenshots", file=sys.stderr)
        return []
    out.mkdir(parents=True, exist_ok=True)
    day = (start - pd.Timedelta("1D")).strftime("%Y-%m-%d")
    base = f"http://127.0.0.1:{port}"
    pages = {
        "runs": "/runs",
        "healing_report": f"/assets/healing_report?view=partitions&partition={day}",
        "hourly_rollups": f"/assets/hourly_rollups?view=partitions&partition={day}-10:00",
        "anomaly_events": f"/assets/anomaly_events?view=partitions&partition={day}-10:00",
        "cost_pareto_frontier": "/assets/cost_pareto_frontier",
        "host_sampler": "/locations/rhythm_pipelines/sensors/host_sampler",
    }
    taken = []
    for name, path in pages.items():
        target = out / f"{name}.png"
        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--window-size=1600,1600",
                 "--virtual-time-budget=25000", f"--screenshot={target}"]  # fmt: skip
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run([chromium, *flags, base + path], capture_output=True, timeout=120, check=False)  # noqa: S603
        if target.exists():
            taken.append(str(target))
    return taken


def judge(
    home: Path, start: pd.Timestamp, end: pd.Timestamp, samples: pd.DataFrame, seed_s: float, hours: float
) -> dict:
    import dagster as dg

    from rhythm_pipelines.definitions import defs
    from rhythm_pipelines.forecasting.models import parse_step
    from rhythm_pipelines.forecasting.targets import TARGETS
    from rhythm_pipelines.healing.report import replayed
    from rhythm_pipelines.metrics.sqlite import SQLiteMetricsStore

    out: dict = {"home": str(home), "start": start, "end": end, "seed_s": round(seed_s, 1)}
    own_pids = set(samples["pid"]) if len(samples) else set()
    with SQLiteMetricsStore(home / "rhythm" / "metrics.db") as store:
        log = store.read_table("healing_log", start - pd.Timedelta("1h"), end + pd.Timedelta("1min"))
        forecasts = store.read_table("forecasts", start, end + pd.Timedelta("2h"))
        real = log[~replayed(log)]
        own = real[(real["outcome"] == "own_process") | real["source"].str.extract(r"/proc/(\d+)$")[0].astype(
            float).isin(own_pids)] if len(real) else real  # fmt: skip
        out["healing_events"] = int(real["event_id"].nunique()) if len(real) else 0
        out["events_on_own_processes"] = sorted(own["source"].unique().tolist()) if len(own) else []
        plans = list((home / "rhythm" / "healing" / "reboot_plans").glob("*.json"))
        out["reboot_plans"] = [p.name for p in plans]
        # forecast origins against the newest stored point of each series when issued
        lag = []
        if len(forecasts):
            newest = forecasts.sort_values("issued").groupby(["source", "metric"]).tail(1)
            for r in newest.itertuples(index=False):
                target = next((t for t in TARGETS.values() if t.metric == r.metric), None)
                if target is None:
                    continue
                step = parse_step(target.step)
                pts = store.read_metrics(pd.Timestamp(r.issued) - pd.Timedelta("3h"), pd.Timestamp(r.issued) + step,
                                         [r.source], [r.metric])  # fmt: skip
                data_end = pts["ts"].max().floor(step) if len(pts) else pd.NaT
                origin = pd.Timestamp(r.issued) - step
                lag.append({"source": r.source, "metric": r.metric, "origin": origin, "data_end": data_end,
                            "steps_behind": (data_end - origin) / step if pd.notna(data_end) else None})  # fmt: skip
        out["forecast_origins"] = lag
        # the interval the host sampler really keeps (documented: at least 10 s)
        host = os.environ.get("RHYTHM_HOST") or __import__("socket").gethostname()
        cpu = store.read_metrics(start, end, [host], ["cpu_percent"])
        gaps = cpu["ts"].sort_values().diff().dt.total_seconds().dropna().to_numpy()
        out["sampler_interval_s"] = (
            {"p50": round(float(np.percentile(gaps, 50)), 1), "p95": round(float(np.percentile(gaps, 95)), 1),
             "max": round(float(gaps.max()), 1), "samples": int(len(cpu))} if len(gaps) else None
        )  # fmt: skip
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(created_after=start.to_pydatetime()))
        failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
        out["runs"] = len(runs)
        out["failed_runs"] = [f"{r.job_name} {r.run_id[:8]} {r.tags.get('rhythm/outcome', '')}" for r in failed]
        late = []
        repo = defs.get_repository_def()
        for sched in repo.schedule_defs:
            ticks = expected_ticks(sched.cron_schedule, start + pd.Timedelta("2min"), end - pd.Timedelta("6min"))
            mine = [r for r in runs if r.tags.get("dagster/schedule_name") == sched.name]
            created = sorted(
                pd.Timestamp(instance.get_run_record_by_id(r.run_id).create_timestamp).tz_convert("UTC") for r in mine
            )
            for t in ticks:
                if not any(t <= c <= t + pd.Timedelta("5min") for c in created):
                    late.append(f"{sched.name} {t:%H:%M}")
            ok = [r for r in mine if r.status == dg.DagsterRunStatus.SUCCESS]
            out.setdefault("schedules", {})[sched.name] = {"expected": len(ticks), "runs": len(mine), "ok": len(ok)}
        out["schedule_ticks_missed"] = late
    seconds = (end - start).total_seconds()
    out["rss_mb"] = (
        {
            f"{role} {pid}": [round(g["rss"].iloc[0] / 2**20, 1), round(g["rss"].iloc[-1] / 2**20, 1)]
            for (pid, role), g in samples.sort_values("ts").groupby(["pid", "role"])
        }
        if len(samples)
        else {}
    )
    out["leaks"] = leaks(samples, seconds) if len(samples) else []
    behind = [x["steps_behind"] for x in out["forecast_origins"] if x["steps_behind"] is not None]
    out["checks"] = {
        "no_events_on_own_processes": not out["events_on_own_processes"],
        "no_reboot_plan": not out["reboot_plans"],
        "no_failed_run": not out["failed_runs"],
        "schedules_on_time": not out["schedule_ticks_missed"],
        "forecast_origins_within_a_step": bool(behind) and max(behind) <= 1.0,
        "no_leaking_dagster_process": not out["leaks"],
        "lasted_as_asked": seconds >= 0.98 * 3600 * hours,
    }
    out["passed"] = all(out["checks"].values())
    out["max_forecast_steps_behind"] = float(np.max(behind)) if behind else None
    return out


if __name__ == "__main__":
    sys.exit(main())
