"""The ``rhythm`` command line: a second face over the same domain code as the Dagster assets."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOURLY_FMT = "%Y-%m-%d-%H:%M"


def _home() -> Path:
    from rhythm_pipelines.home import rhythm_home

    return rhythm_home()


def _default_store() -> str:
    from rhythm_pipelines.home import store_url

    return store_url()


def cmd_simulate(args: argparse.Namespace) -> int:
    import pandas as pd

    from rhythm_pipelines.simulate import SimConfig, simulate

    cfg = SimConfig(
        hosts=args.hosts,
        channels=args.channels,
        regions=args.regions,
        days=args.days,
        step=args.step,
        seed=args.seed,
        start=pd.Timestamp(args.start) if args.start else None,
        calls_per_minute=args.calls_per_minute,
        incidents_per_day=args.incidents_per_day,
        recurring=args.recurring,
    )
    sim = simulate(cfg)
    paths = sim.write(args.out)
    summary = {
        "metrics_rows": len(sim.metrics),
        "calls": len(sim.calls),
        "incidents": len(sim.incidents),
        "start": str(sim.metrics["ts"].min()),
        "end": str(sim.metrics["ts"].max()),
        "files": {k: str(v) for k, v in paths.items()},
        "incident_kinds": sim.incidents["kind"].value_counts().to_dict(),
    }
    print(json.dumps(summary, indent=2))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from rhythm_pipelines.metrics.host import HostSampler, points_frame
    from rhythm_pipelines.metrics.landing import append_spool
    from rhythm_pipelines.metrics.store import open_store

    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sampler = HostSampler(host=args.host or socket.gethostname())
    n = 0
    with open_store(args.store) as store:
        while not stop and (args.count is None or n < args.count):
            t0 = time.monotonic()
            frame = points_frame(sampler.sample())
            store.write_metrics(frame)
            if args.landing:
                append_spool(Path(args.landing), sampler.host, frame)
            n += 1
            print(f"{frame['ts'].max().isoformat()} {sampler.host}: {len(frame)} points", flush=True)
            while not stop and (args.count is None or n < args.count) and time.monotonic() - t0 < args.interval:
                time.sleep(min(0.2, args.interval))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    import pandas as pd

    from rhythm_pipelines.metrics.ingest import build_rollups, ingest_call_logs, ingest_metric_files
    from rhythm_pipelines.metrics.store import open_store, utc

    start, end = utc(args.start).floor("h"), utc(args.end).ceil("h")
    landing = Path(args.landing)
    with open_store(args.store) as store:
        m = ingest_metric_files(store, landing / "metrics", start, end)
        c = ingest_call_logs(store, landing / "calls", start, end)
        r = build_rollups(store, start, end)
    for e in m.quarantined + c.quarantined:
        print(f"quarantined: {e.as_error()}", file=sys.stderr)
    print(
        json.dumps(
            {
                "window": [str(start), str(end)],
                "metric_points": m.rows,
                "calls": c.rows,
                "quarantined": len(m.quarantined) + len(c.quarantined),
                "rollups": len(r),
                "hours": int((end - start) / pd.Timedelta("1h")),
            }
        )
    )
    return 0


def cmd_demo_seed(args: argparse.Namespace) -> int:
    """Simulate a demo fleet into the landing zone once, then materialize its hours in one Dagster run."""
    import pandas as pd

    from rhythm_pipelines.home import landing_dir
    from rhythm_pipelines.simulate import SimConfig, simulate
    from rhythm_pipelines.simulate.live import write_hour_files

    landing = landing_dir()
    marker = landing / "incidents" / f"sim-{args.seed}.csv"
    if marker.exists() and not args.force:
        print(f"demo data already in {landing} (use --force to regenerate)")
        return 0
    end = pd.Timestamp.now(tz="UTC").floor("h")
    # recurring causes (a leak, a weekday batch, a rate limit): what failure_patterns learns
    sim = simulate(SimConfig(days=args.days, seed=args.seed, start=end - pd.Timedelta(days=args.days), recurring=True))
    for old in (landing / "metrics" / "demo", landing / "calls" / "demo"):
        shutil.rmtree(old, ignore_errors=True)  # --force: a fresh demo, not a second one appended to the first
    write_hour_files(sim, landing)  # hour files: each hourly ingestion reads only its own hour
    marker.parent.mkdir(parents=True, exist_ok=True)
    sim.incidents.assign(
        start=sim.incidents["start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        end=sim.incidents["end"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ).to_csv(marker, index=False)
    print(
        f"simulated {len(sim.metrics):,} metric points, {len(sim.calls):,} calls, "
        f"{len(sim.incidents)} incidents into {landing}"
    )
    first, last = end - pd.Timedelta(days=args.days), end - pd.Timedelta(hours=1)
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "rhythm_pipelines.definitions",
        "--select",
        "raw_metrics,channel_calls,hourly_rollups,anomaly_scores,anomaly_events",
        "--partition-range",
        f"{first.strftime(HOURLY_FMT)}...{last.strftime(HOURLY_FMT)}",
    ]
    yesterday = (end - pd.Timedelta(hours=1)).floor("D") - pd.Timedelta(days=1)
    base = cmd[: cmd.index("--select")]
    train = [*base, "--select", "forecaster_models", "--partition", f"{yesterday:%Y-%m-%d}"]
    live = [*base, "--select", "latency_forecasts,cpu_forecasts,memory_forecasts"]
    costs = [
        *base,
        "--select",
        "channel_costs,cost_pareto_frontier,routing_plan,cost_report_daily",
        "--partition",
        f"{yesterday:%Y-%m-%d}",
    ]
    patterns = [*base, "--select", "failure_patterns,tuned_policies,ab_tests"]
    # an online A/B on a loopback channel that starts flapping: the tuned policy against resilience4j's defaults
    ab_run = [sys.executable, "-m", "rhythm_pipelines.cli", "learn", "ab", "--fault-server", "normal:10,flapping:60",
              "--default", "resilience4j", "--rate", "40", "--warmup-s", "8", "--bin-s", "2", "--tau", "0.3",
              "--max-s", "45", "--json"]  # fmt: skip
    today = end.floor("D")
    replay = ["healing", "replay", "--start", f"{first + pd.Timedelta(hours=1):%Y-%m-%dT%H:%M}Z",
              "--end", f"{end:%Y-%m-%dT%H:%M}Z", "--step-s", "120"]  # fmt: skip
    days = [f"{d:%Y-%m-%d}" for d in pd.date_range(first.floor("D"), today, freq="D")]
    whole = days[:-1]  # load_profiles learns whole days (today's partition does not exist yet)

    log = _home() / "demo-seed.log"

    def report() -> int:
        return _materialize_days("healing_report_job", days, log)

    if args.no_materialize:
        for c in (cmd, train, live, costs):
            print("then:" if c is not cmd else "backfill with:", " ".join(c))
        print("then: rhythm", " ".join(replay))
        print(f"then: healing_report for {', '.join(days)}")
        print("then:", " ".join(ab_run))
        print("then:", " ".join(patterns))
        print(f"then: load_profiles for {', '.join(whole)}")
        return 0
    print(f"Dagster's output goes to {log}; here, one line per step (about 2–3 min in all).", flush=True)
    hours = int((last - first) / pd.Timedelta("1h")) + 1
    steps = [(f"ingest and score the {hours} demo hours in one run", 60, lambda: _quiet(cmd, log))]
    if yesterday >= first.floor("D"):
        steps += [
            (f"train the forecasters on the days up to {yesterday:%Y-%m-%d}", 25, lambda: _quiet(train, log)),
            ("forecast the next 15 min and 1 h", 10, lambda: _quiet(live, log)),
            (f"costs, frontier, routing plan and cost report of {yesterday:%Y-%m-%d}", 20, lambda: _quiet(costs, log)),
        ]
    steps += [
        ("replay the demo's history through healing (dry run: nothing is touched)", 50, lambda: main(replay)),
        (f"healing reports of {days[0]} … {days[-1]}", 10, report),
        (
            "A/B a tuned channel policy against resilience4j's defaults on a loopback channel",
            40,
            lambda: _quiet(ab_run, log),
        ),
        (
            "learn failure patterns; tune each channel's timeout, retries and breaker; read the A/B",
            15,
            lambda: _quiet(patterns, log),
        ),
    ]
    if whole:
        steps.append((f"learn the fleet's rhythm (load_profiles of {whole[0]} … {whole[-1]})", 10,
                      lambda: _materialize_days("load_profiles_job", whole, log)))  # fmt: skip
    for i, (title, expect_s, fn) in enumerate(steps, 1):
        print(f"[{i}/{len(steps)}] {title} (~{expect_s} s)…", flush=True)
        t0 = time.monotonic()
        rc = fn()
        if rc:
            print(f"      failed (exit {rc}) after {time.monotonic() - t0:.0f} s: see {log}", file=sys.stderr)
            return rc
        print(f"      done in {time.monotonic() - t0:.0f} s", flush=True)
    return 0


def _quiet(cmd: list[str], log: Path) -> int:
    """Run one of our own dagster CLI commands with its output appended to ``log``; on failure, its tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603  our own dagster CLI
    if rc:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        print("\n".join(tail), file=sys.stderr)
    return rc


def _materialize_days(job_name: str, days: list[str], log: Path) -> int:
    """Run a daily-partitioned job for each day, in this process, on $DAGSTER_HOME's instance (one run per day:
    each partition's metadata is that day's; the CLI would need a single-run backfill policy). Dagster's console
    output goes to ``log``."""
    import contextlib
    import warnings

    import dagster as dg

    with log.open("a") as out, contextlib.redirect_stderr(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Dagster's beta/deprecation notices about its own internals
        from rhythm_pipelines.definitions import defs

        job = defs.resolve_job_def(job_name)
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        failed = []
        with dg.DagsterInstance.get() as instance:
            for day in days:
                result = job.execute_in_process(
                    instance=instance, partition_key=day, run_config=quiet, raise_on_error=False
                )
                out.write(f"{job_name} {day}: {'materialized' if result.success else 'FAILED'} ({result.run_id})\n")
                if not result.success:
                    failed.append(day)
    if failed:
        print(f"{job_name} failed for {', '.join(failed)}: see {log}", file=sys.stderr)
    return 1 if failed else 0


def _zoned(path: Path, column: str) -> bool:
    """Does the first timestamp of a CSV column carry a time zone (``Z`` or an offset)?"""
    import pandas as pd

    try:
        first = pd.read_csv(path, usecols=[column], nrows=1, dtype=str)[column].iloc[0]
        return pd.Timestamp(first).tzinfo is not None
    except (ValueError, IndexError, KeyError):
        return False


def cmd_anomalies_detect(args: argparse.Namespace) -> int:
    from rhythm_pipelines.anomaly.series import detect_frame, disorder_note, read_series

    series = read_series(Path(args.input), args.timestamp_col, args.value_col, args.on_disorder)
    note = disorder_note(series, args.input)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    out = detect_frame(series, args.method)
    # keep the input's time zone marker: times with an offset come out in ISO 8601 with theirs (UTC), naive stay naive
    out["timestamp"] = (
        out["timestamp"].map(lambda t: t.isoformat())
        if _zoned(Path(args.input), args.timestamp_col)
        else out["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    out.to_csv(args.output, index=False, float_format="%.6g")
    print(f"{len(out)} rows, {int(out['is_anomaly'].sum())} flagged ({args.method}) -> {args.output}", file=sys.stderr)
    return 0


def _score_line(name: str, s: dict, extra: str = "") -> str:
    return (
        f"{name:34s} {s['tp']:4d} {s['fp']:4d} {s['fn']:4d} {s['precision']:6.3f} {s['recall']:6.3f} {s['f1']:6.3f}"
        + extra
    )


def cmd_anomalies_evaluate(args: argparse.Namespace) -> int:
    from rhythm_pipelines.anomaly.evaluate import nab_report
    from rhythm_pipelines.anomaly.tuning import DEFAULT, GRID, Tuning

    def progress(done: int, total: int, key: str) -> None:
        if done == total or done % 10 == 0:
            print(f"  scored {done}/{total} files ({key})", file=sys.stderr, flush=True)

    started = time.perf_counter()
    print(f"scoring {len(GRID)} settings of {args.method} on every labelled file…", file=sys.stderr, flush=True)
    report: dict = {"method": args.method, "shipped_default": DEFAULT.as_dict()}
    report.update(nab_report(args.data_dir, args.windows, args.method, GRID, progress))
    report["seconds"] = round(time.perf_counter() - started, 1)
    simulated = None
    if args.sim_days > 0:
        import pandas as pd

        from rhythm_pipelines.anomaly.evaluate import score_simulation
        from rhythm_pipelines.simulate import SimConfig, simulate

        sim = simulate(SimConfig(days=args.sim_days, seed=args.sim_seed, start=pd.Timestamp("2026-03-02", tz="UTC")))
        simulated = score_simulation(sim, args.sim_method)[1]
        report["simulator"] = {"days": args.sim_days, "seed": args.sim_seed, "method": args.sim_method}
        report["simulator"].update(simulated.as_dict())
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'':34s} {'tp':>4s} {'fp':>4s} {'fn':>4s} {'prec':>6s} {'rec':>6s} {'f1':>6s}")
    if report["held_out"] is not None:
        print("held out: each category scored with the setting chosen on the others")
        for cat, s in report["by_category"].items():
            ins = report["in_sample_by_category"][cat]["f1"]
            print(_score_line(f"  {cat} ({s['files']} files)", s, f"   (in-sample {ins:.3f})"))
        print(_score_line("HELD-OUT (pooled)", report["held_out"]))
    print(_score_line("IN-SAMPLE (chosen on all)", report["in_sample"]))
    if "chosen" in report:

        def label(choice: dict) -> str:
            setting = Tuning(**{k: v for k, v in choice.items() if k != "rule"})
            return f"{setting.label()} (rule: {choice['rule']})"

        print("chosen per held-out category:")
        for cat, choice in report["chosen"].items():
            print(f"  {cat:32s} {label(choice)}")
        same = "" if report["shipped_default_is_in_sample_choice"] else "  (NOT the shipped default: anomaly/tuning.py)"
        print(f"  {'(all categories)':32s} {label(report['in_sample_choice'])}{same}")
    if simulated is not None:
        name = f"SIMULATOR {args.sim_method} ({args.sim_days:g} d, seed {args.sim_seed})"
        print(_score_line(name, report["simulator"]))
    print(f"({report['seconds']:.0f} s; --json for every file)", file=sys.stderr)
    return 0


def _registry_root() -> str:
    from rhythm_pipelines.forecasting.registry import default_root

    return default_root()


def cmd_forecast_backtest(args: argparse.Namespace) -> int:
    from rhythm_pipelines.anomaly.series import read_series
    from rhythm_pipelines.forecasting.backtest import backtest
    from rhythm_pipelines.forecasting.models import DEFAULT_MODELS, step_name

    series = read_series(Path(args.input), args.timestamp_col, args.value_col, "error")
    series = series[~series["duplicate"]]  # documented rule: a repeated timestamp keeps its first value
    models = tuple(m.strip() for m in args.models.split(",")) if args.models else DEFAULT_MODELS
    from rhythm_pipelines.forecasting.grid import GapError

    try:
        result = backtest(series["timestamp"], series["value"].to_numpy(), args.horizon, args.test_fraction, models)
    except GapError as exc:
        raise GapError(f"{args.input}: {exc}") from exc
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    print(
        f"{args.input}: {result.train_points} training points, {result.origins} origins, horizon {result.horizon} "
        f"x {step_name(result.step)}; selected {result.model}"
        + (f" ({' + '.join(result.members)})" if result.members else "")
    )
    print(f"{'':16s} {'MAE':>12s} {'MAPE':>8s} {'MASE':>8s}")
    for name, m in result.metrics.items():
        print(f"{name:16s} {m['mae']:12.5g} {m['mape']:8.2%} {m['mase']:8.3f}")
    print(
        f"skill vs naive {result.skill():+.1%}; fit with selection {result.fit_s:.2f} s; "
        f"predict p50 {result.predict_ms['p50']:.2f} ms, p99 {result.predict_ms['p99']:.2f} ms; "
        f"guard served naive at {result.fallback_share:.1%} of origins"
    )
    g = result.grid or {}
    if g.get("filled") or g.get("snapped") or g.get("dropped"):
        print(
            f"regular {g['step']} grid: {g['filled']} missing point(s) filled by linear interpolation, "
            f"{g['snapped']} moved to the nearest step, {g['dropped']} sharing a step dropped"
        )
    return 0


def cmd_forecast_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from rhythm_pipelines.forecasting.data import stored_series
    from rhythm_pipelines.forecasting.models import DEFAULT_MODELS
    from rhythm_pipelines.forecasting.registry import ModelRegistry
    from rhythm_pipelines.forecasting.serving import horizon_steps, train_series
    from rhythm_pipelines.metrics.store import open_store

    end = pd.Timestamp(args.end, tz="UTC") if args.end else pd.Timestamp.now(tz="UTC")
    with open_store(args.store) as store:
        y = stored_series(store, args.source, args.metric, end - pd.Timedelta(args.window), end, args.step)
    if y.empty:
        raise ValueError(f"no points of {args.source} {args.metric} in {args.store} before {end}")
    h = horizon_steps(args.horizon, pd.Timedelta(args.step))
    models = tuple(m.strip() for m in args.models.split(",")) if args.models else DEFAULT_MODELS
    trained = train_series(y.index, y.to_numpy(), h, models, args.source, args.metric)
    mv = ModelRegistry(args.registry).save(args.source, args.metric, trained.model, trained.meta)
    print(
        f"{args.source} {args.metric}: {trained.meta['model']} on {len(y)} points "
        f"({trained.meta['train_start']} .. {trained.meta['train_end']}), version {mv.version} in {args.registry}"
    )
    return 0


def cmd_forecast_predict(args: argparse.Namespace) -> int:
    """Forecast from the newest stored data, as the live assets do: the model catches up on the points stored
    since its training; the forecast says its origin and is refused when that is older than the horizon."""
    import pandas as pd

    from rhythm_pipelines.forecasting.data import stored_series
    from rhythm_pipelines.forecasting.models import parse_step
    from rhythm_pipelines.forecasting.registry import ModelRegistry
    from rhythm_pipelines.forecasting.serving import Forecaster, horizon_steps
    from rhythm_pipelines.metrics.store import open_store, utc

    forecaster = Forecaster(ModelRegistry(args.registry))
    try:
        mv = forecaster.load(args.source, args.metric)
    except LookupError as exc:
        raise ValueError(str(exc)) from None
    step = parse_step(mv.meta["step"])
    at = utc(args.at) if args.at else pd.Timestamp.now(tz="UTC")
    last = pd.Timestamp(mv.meta["last_ts"])
    caught_up = 0
    if args.store:
        with open_store(args.store) as store:
            how = mv.meta.get("aggregate", "mean")
            s = stored_series(store, args.source, args.metric, last - 12 * step, at.floor(step), step, how)
        if len(s):
            caught_up = forecaster.update(args.source, args.metric, s.index, s.to_numpy())
    steps = horizon_steps(args.horizon, step)
    info = forecaster.info(args.source, args.metric)
    origin = pd.Timestamp(info["last_seen"])
    behind = at - (origin + step)
    if behind > steps * step:
        raise ValueError(
            f"{args.source} {args.metric}: the newest data is from {origin:%Y-%m-%d %H:%M} UTC, "
            f"{behind / pd.Timedelta('1min'):.0f} min before {at:%Y-%m-%d %H:%M} UTC, more than the "
            f"{args.horizon} horizon: its forecast would be in the past. Ingest fresh data, or pass "
            f"--at {origin + step:%Y-%m-%dT%H:%M}Z to forecast from the data's end"
        )
    frame = forecaster.predict(args.source, args.metric, steps)
    if args.json:
        out = {
            "source": args.source,
            "metric": args.metric,
            "model": info["model"],
            "version": info["version"],
            "origin": origin.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "behind_s": max(0.0, behind.total_seconds()),
            "caught_up_points": caught_up,
            "forecast": frame.assign(ds=frame["ds"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_dict("records"),
        }
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{args.source} {args.metric}: {info['model']} (version {info['version']}, trained to {info['train_end']}); "
        f"origin {origin:%Y-%m-%d %H:%M} UTC ({caught_up} newer point(s) from the store)"
    )
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rhythm",
        description="rhythm: the command line of rhythm_pipelines, over the same domain code as the Dagster assets "
        "(the UI: make dev). Each command has its own --help.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="simulate a fleet and channels with labelled incidents")
    s.add_argument("--out", "-o", required=True, help="output directory (metrics/, calls/, incidents/)")
    s.add_argument("--hosts", type=int, default=6)
    s.add_argument("--channels", type=int, default=4)
    s.add_argument("--regions", type=int, default=2)
    s.add_argument("--days", type=float, default=3.0)
    s.add_argument("--step", default="1min", help="metric sampling step (pandas offset, e.g. 1min, 10s)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--start", default=None, help="UTC start (default: DAYS ending at the current hour)")
    s.add_argument("--calls-per-minute", type=float, default=3.0)
    s.add_argument("--incidents-per-day", type=float, default=6.0)
    s.add_argument(
        "--recurring", action="store_true", help="add causes that recur with jitter (leak, weekday batch, rate limit)"
    )
    s.set_defaults(func=cmd_simulate)

    a = sub.add_parser("agent", help="sample this host every INTERVAL seconds into a store")
    a.add_argument("--store", default=_default_store(), help="sqlite:///path.db or influx://host:8086?bucket=B")
    a.add_argument("--interval", type=float, default=10.0)
    a.add_argument("--landing", default=None, help="also append samples to this landing zone's spool")
    a.add_argument("--host", default=None, help="host name to report (default: this machine's)")
    a.add_argument("--count", type=int, default=None, help="stop after this many samples")
    a.set_defaults(func=cmd_agent)

    i = sub.add_parser("ingest", help="ingest landing files for a window (what the hourly assets do)")
    i.add_argument("--store", default=_default_store())
    i.add_argument("--landing", default=str(_home() / "landing"))
    i.add_argument("--start", required=True)
    i.add_argument("--end", required=True)
    i.set_defaults(func=cmd_ingest)

    from rhythm_pipelines.anomaly.detectors import DETECTORS

    method_help = f"{', '.join(DETECTORS)}, or members joined by + (an ensemble of them); default ensemble"
    an = sub.add_parser("anomalies", help="anomaly detection on CSV series").add_subparsers(
        dest="action", required=True
    )
    det = an.add_parser("detect", help="score a CSV series: timestamp,value,score,is_anomaly per input row")
    det.add_argument("input")
    det.add_argument("-o", "--output", required=True)
    det.add_argument("--timestamp-col", default="timestamp")
    det.add_argument("--value-col", default="value")
    det.add_argument("--method", default="ensemble", help=method_help)
    det.add_argument(
        "--on-disorder",
        choices=["warn", "drop", "error"],
        default="warn",
        help="rows whose timestamp steps back: warn and score in time order (default), drop them, or refuse the file",
    )
    det.set_defaults(func=cmd_anomalies_detect)
    ev = an.add_parser(
        "evaluate",
        help="window precision/recall/F1 against labelled windows (NAB format): held out by category beside in-sample",
    )
    ev.add_argument("--data-dir", required=True)
    ev.add_argument("--windows", required=True)
    ev.add_argument("--method", default="ensemble", help=method_help)
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--sim-days", type=float, default=3.0, help="also score a simulated fleet's incidents (0: skip)")
    ev.add_argument("--sim-seed", type=int, default=0)
    ev.add_argument(
        "--sim-method",
        default="auto",
        help="method on the simulator (default auto: each metric by its profile, channels on raw calls)",
    )
    ev.set_defaults(func=cmd_anomalies_evaluate)

    fc = sub.add_parser("forecast", help="forecasting: backtest a CSV series, train and predict from the registry")
    fa = fc.add_subparsers(dest="action", required=True)
    models_help = "comma-separated zoo models (default: naive,seasonal_naive,ets,theta,arima,mstl + their ensemble)"
    bt = fa.add_parser("backtest", help="walk-forward backtest of a CSV series against Naive and SeasonalNaive")
    bt.add_argument("input")
    bt.add_argument("--timestamp-col", default="timestamp")
    bt.add_argument("--value-col", default="value")
    bt.add_argument("--horizon", type=int, default=12, help="steps ahead (default 12: an hour of 5-minute steps)")
    bt.add_argument("--test-fraction", type=float, default=0.2)
    bt.add_argument("--models", default="", help=models_help)
    bt.add_argument("--json", action="store_true")
    bt.set_defaults(func=cmd_forecast_backtest)
    tr = fa.add_parser("train", help="select, fit and register a model of one stored series")
    tr.add_argument("--source", required=True)
    tr.add_argument("--metric", required=True)
    tr.add_argument("--store", default=_default_store())
    tr.add_argument("--registry", default=_registry_root(), help="a directory or s3://bucket/prefix")
    tr.add_argument("--window", default="7D", help="training window before --end (default 7D)")
    tr.add_argument("--end", default=None, help="UTC end of the window (default: now)")
    tr.add_argument("--step", default="5min", help="the regular grid the series is averaged onto")
    tr.add_argument("--horizon", default="1h", help="a duration (1h, 15min) or a number of steps")
    tr.add_argument("--models", default="", help=models_help)
    tr.set_defaults(func=cmd_forecast_train)
    pr = fa.add_parser("predict", help="forecast a registered series from its latest model")
    pr.add_argument("--source", required=True)
    pr.add_argument("--metric", required=True)
    pr.add_argument("--horizon", default="1h", help="a duration (1h, 15min) or a number of steps")
    pr.add_argument("--registry", default=_registry_root(), help="a directory or s3://bucket/prefix")
    pr.add_argument("--store", default=_default_store(), help="catch up on the points stored since training")
    pr.add_argument("--at", default=None, help="forecast as of this UTC time (default: now)")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_forecast_predict)

    ch = sub.add_parser("chaos", help="chaos: real incidents in a sandbox against a real Dagster daemon")
    cr = ch.add_subparsers(dest="action", required=True).add_parser(
        "run", help="run chaos scenarios and measure detection, auto-resolution, MTTR and safety"
    )
    cr.add_argument("--scenarios", default="", help="comma-separated (default: all of them, in order)")
    cr.add_argument("--json", action="store_true", help="print the report as one JSON object")
    cr.add_argument("--keep", action="store_true", help="keep the sandbox directory (logs, store, DAGSTER_HOME)")
    cr.add_argument("--learning", action="store_true",
                    help="after the warm-up, tune each chaos channel's timeout and breaker from its calls")  # fmt: skip
    cr.set_defaults(func=cmd_chaos_run)

    hv = sub.add_parser("healing", help="self-healing playbooks").add_subparsers(dest="action", required=True)
    va = hv.add_parser("validate", help="check a playbook file (default: $RHYTHM_PLAYBOOKS or the shipped one)")
    va.add_argument("file", nargs="?")
    va.set_defaults(func=cmd_healing_validate)
    rp = hv.add_parser(
        "replay",
        help="replay stored history through the detectors and playbooks in dry run (nothing is touched)",
        description="Walks the stored metrics, calls and anomaly alerts of a window tick by tick with the health "
        "detectors, hands each new event to the healing engine in dry run with alerts that are never sent, and "
        "writes what it would have decided to the healing_log table (run ids start with 'replay:'). Re-running a "
        "window rewrites the same entries.",
    )
    rp.add_argument("--start", required=True, help="ISO time (UTC if no offset)")
    rp.add_argument("--end", required=True, help="ISO time (UTC if no offset)")
    rp.add_argument("--step-s", type=float, default=60.0, help="seconds between ticks (default 60)")
    rp.add_argument("--store", default=_default_store())
    rp.add_argument("--playbooks", default=None, help="playbook file (default: $RHYTHM_PLAYBOOKS or the shipped one)")
    rp.set_defaults(func=cmd_healing_replay)

    co = sub.add_parser("cost", help="cost: routing plans and their replay").add_subparsers(
        dest="action", required=True
    )
    op = co.add_parser(
        "optimize",
        help="fit a routing plan on all but the last day of a gateway log; replay the last day under it",
        description="Fits on all but the last 24 h of the log and replays those 24 h under the plan, the observed "
        "allocation, cheapest-within-limits, lowest-latency-first and round-robin. With a budget: the fastest mix "
        "within it; with only a latency SLO: the cheapest mix meeting it; with neither: the cheapest mix no slower "
        "on average than today.",
    )
    op.add_argument("--calls", required=True, help="a gateway call log (JSONL or CSV)")
    op.add_argument("--catalog", help="a price catalog (default: $RHYTHM_PRICE_CATALOG or the shipped one)")
    op.add_argument("--budget-usd-per-day", type=float, help="minimise latency within this daily spend")
    op.add_argument("--latency-slo-ms", type=float, help="p95 latency every plan must meet")
    op.add_argument("--max-error-rate", type=float, default=0.05, help="expected error rate ceiling (default 0.05)")
    op.add_argument("--slots", type=int, default=24, help="mixes per day: 24 (hourly, default) ... 1 (one mix)")
    op.add_argument("--skip-bad-rows", action="store_true", help="report bad rows and go on without them")
    op.add_argument("--json", action="store_true", help="print one JSON object")
    op.set_defaults(func=cmd_cost_optimize)
    cf = co.add_parser(
        "forecast",
        help="walk-forward accuracy of the spend forecast on a gateway log (next day, next week)",
        description="At each midnight of the log, with only the hours before it, forecast the next day's and the "
        "next 7 days' spend (the method chosen by a week of backtest: the same hours of the last day, of the same "
        "day last week, or MSTL) and compare with what was spent; the two simple rules beside it.",
    )
    cf.add_argument("--calls", required=True, help="a gateway call log (JSONL or CSV)")
    cf.add_argument("--catalog", help="a price catalog (default: $RHYTHM_PRICE_CATALOG or the shipped one)")
    cf.add_argument("--skip-bad-rows", action="store_true", help="report bad rows and go on without them")
    cf.add_argument("--json", action="store_true", help='print {"daily_mape", "weekly_mape", ...}')
    cf.set_defaults(func=cmd_cost_forecast)

    le = sub.add_parser("learn", help="learning from failures: patterns, prevention, root causes").add_subparsers(
        dest="action", required=True
    )
    lv = le.add_parser(
        "evaluate",
        help="learn failure patterns on the first days, score prevention and root causes on the rest",
        description="Learns failure patterns (clusters, precursors, fixes, lineage) on the first --train-days of a "
        "fresh simulation with recurring causes (--seed) or of a directory in the simulator's layout (--data: "
        "metrics/*.csv, calls/*.jsonl, incidents/*.csv with start,end,source,metric,kind,root), then watches the "
        "remaining days minute by minute: each precursor firing goes through the healing engine in dry run. "
        "Prints the recurrence prevention rate, the share of unneeded preventive actions, root-cause top-1 "
        "accuracy and the number of recurring patterns learned.",
    )
    src = lv.add_mutually_exclusive_group(required=True)
    src.add_argument("--seed", type=int, help="simulate 14 days with recurring causes from this seed")
    src.add_argument("--data", help="a directory in the simulator's output layout")
    lv.add_argument("--train-days", type=float, default=7.0, help="learn on the first N days (default 7)")
    lv.add_argument("--json", action="store_true", help='print {"recurrence_prevention", "unneeded_actions", ...}')
    lv.set_defaults(func=cmd_learn_evaluate)

    la = le.add_parser(
        "ab",
        help="an online A/B of a channel's tuned policy against a default, stopped by a sequential test",
        description="Calls a channel (--url, or a loopback --fault-server playing a schedule of regimes) with Poisson "
        "requests, split by request id between a fixed default policy and the tuned one (re-tuned every 2 s from "
        "its own calls, first from a warm-up sent with the default). An mSPRT on the two failure rates is read "
        "every second and stops the test when the difference is significant; then every request goes to the "
        "winner. Each request is written to the store's ab_requests table (the ab_tests asset shows them).",
    )
    target = la.add_mutually_exclusive_group()
    target.add_argument("--url", help="the channel, http://HOST:PORT (GET /call?id=...&n=...)")
    target.add_argument("--fault-server", help="start a loopback channel playing regime:seconds,... instead")
    la.add_argument("--channel", default="loopback@local", help="its channel@region (default loopback@local)")
    la.add_argument("--default", choices=("litellm", "resilience4j"), default="litellm",
                    help="the default arm's fixed policy (default litellm)")  # fmt: skip
    la.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    la.add_argument("--max-s", type=float, default=300.0, help="stop the test after this long (default 300)")
    la.add_argument("--warmup-s", type=float, default=20.0, help="default-only calls to tune from first (20)")
    la.add_argument("--bin-s", type=float, default=10.0,
                    help="seconds per bin the test reads the arms by; 10 bins at least (10)")  # fmt: skip
    la.add_argument("--after-stop-s", type=float, default=0.0, help="keep sending to the winner this long")
    la.add_argument("--share", type=float, default=0.5, help="the tuned arm's share of requests (default 0.5)")
    la.add_argument("--alpha", type=float, default=0.05, help="the test's level (default 0.05)")
    la.add_argument("--tau", type=float, default=0.05, help="prior sd of the failure-rate difference (0.05)")
    la.add_argument("--seed", type=int, default=0)
    la.add_argument("--store", default=None, help="store URL (default: the one $RHYTHM_STORE names)")
    la.add_argument("--json", action="store_true", help='print {"stopped", "winner", "p", "diff", "ci", ...}')
    la.set_defaults(func=cmd_learn_ab)

    d = sub.add_parser("demo-seed", help="seed the demo fleet for `make dev` (once)")
    d.add_argument("--days", type=float, default=3.0)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--force", action="store_true")
    d.add_argument("--no-materialize", action="store_true", help="only write the files; print the backfill")
    d.set_defaults(func=cmd_demo_seed)

    db = sub.add_parser(
        "dashboard",
        help="the operator's live dashboard and Prometheus /metrics, over the store",
        description="Serve the live dashboard (Overview, Hosts, Healing), /api/kpis and /metrics from the store. "
        "Run counts per job come from the Dagster instance of $DAGSTER_HOME when it is set.",
    )
    db.add_argument("--host", default="127.0.0.1")
    db.add_argument("--port", type=int, default=3001)
    db.add_argument("--store", default=None, help="store URL (default: the one $RHYTHM_STORE names, as Dagster's)")
    db.add_argument("--dagster-url", default="http://127.0.0.1:3000", help="where links into the Dagster UI go")
    db.add_argument("--refresh", type=float, default=5.0, help="seconds between the page's updates")
    db.add_argument(
        "--cache-seconds", type=float, default=3.0, help="the KPI snapshot is recomputed at most this often"
    )
    db.add_argument(
        "--as-of", default=None, help="show the fleet as of this UTC time (a post-mortem; default: now, live)"
    )
    db.set_defaults(func=cmd_dashboard)
    return p


def cmd_dashboard(args: argparse.Namespace) -> int:
    import uvicorn

    from rhythm_pipelines.dashboard.app import create_app
    from rhythm_pipelines.home import healing_dir, landing_dir, store_url
    from rhythm_pipelines.metrics.store import open_store, utc

    url = args.store or store_url()
    store = open_store(url)
    landing = landing_dir()
    runs = None
    if os.environ.get("DAGSTER_HOME"):
        import dagster as dg

        from rhythm_pipelines.dashboard.dagster_runs import run_counts

        runs = run_counts(dg.DagsterInstance.get)
    clock = None
    if args.as_of:
        try:
            as_of = utc(args.as_of)
        except ValueError as exc:
            raise ValueError(f"--as-of {args.as_of!r}: not a time (e.g. 2026-03-04T13:30Z): {exc}") from None
        clock = lambda: as_of  # noqa: E731
    from rhythm_pipelines.dashboard.app import Sources
    from rhythm_pipelines.forecasting.registry import ModelRegistry, default_root
    from rhythm_pipelines.healing.playbooks import load as load_playbooks

    sources = Sources(
        routes_file=healing_dir() / "routes.json",
        breaker=load_playbooks(os.environ.get("RHYTHM_PLAYBOOKS") or None).detectors.breaker,
        registry=ModelRegistry(default_root()),  # the signing key, if any, from $RHYTHM_MODEL_HMAC_KEY
    )
    app = create_app(store, args.dagster_url, landing, refresh_s=args.refresh, cache_s=args.cache_seconds,
                     clock=clock, dagster_runs=runs, sources=sources)  # fmt: skip
    print(f"rhythm dashboard on http://{args.host}:{args.port} (store {url}; Ctrl-C stops it)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _call_log(args: argparse.Namespace):
    """The calls of ``--calls``; None (after saying why, row by row) when bad rows stop the command."""
    from rhythm_pipelines.metrics.calls import read_call_log

    path = Path(args.calls)
    if not path.is_file():
        raise ValueError(f"{path}: no such call log")
    calls, bad = read_call_log(path)
    if bad:
        for e in bad[:5]:
            print(f"rhythm: {'warning' if args.skip_bad_rows else 'error'}: {e.as_error()}", file=sys.stderr)
        if not args.skip_bad_rows:
            more = f" ({len(bad) - 5} more)" if len(bad) > 5 else ""
            print(f"rhythm: {len(bad)} bad row(s){more}; fix them or pass --skip-bad-rows", file=sys.stderr)
            return None
        print(f"rhythm: going on without {len(bad)} bad row(s)", file=sys.stderr)
    return calls


def cmd_cost_forecast(args: argparse.Namespace) -> int:
    from rhythm_pipelines.cost import catalog as catalogs
    from rhythm_pipelines.cost.forecast import RULES, hourly_spend, mape, walk_forward

    calls = _call_log(args)
    if calls is None:
        return 2
    if calls.empty:
        raise ValueError(f"{args.calls}: no call to forecast")
    hourly = hourly_spend(calls, catalogs.load(args.catalog))
    frame = walk_forward(hourly)
    if frame.empty:
        raise ValueError(f"{args.calls}: {len(hourly)} hours of calls; the walk-forward needs 4 whole days or more")
    got = mape(frame)
    common = frame[frame[list(RULES)].notna().all(axis=1)]
    report = {
        "daily_mape": got["daily"],
        "weekly_mape": got["weekly"],
        "baselines": {rule: mape(frame, rule) for rule in RULES},
        # where every rule could be made (the same day last week needs a week of history): like with like
        "common_origins": {m: mape(common, m) for m in ("forecast", *RULES)},
        "origins": {h: int((frame["horizon"] == h).sum()) for h in ("daily", "weekly")},
        "methods_chosen": frame["method"].value_counts().to_dict(),
        "hours": len(hourly),
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f} %"

    print(f"walk-forward over {len(hourly)} hours: at each midnight, the next day's and the next 7 days' spend")
    print(f"  forecast (method chosen by backtest): daily MAPE {pct(got['daily'])}, weekly {pct(got['weekly'])}")
    for rule, m in report["baselines"].items():
        print(f"  rule {rule:9s}: daily MAPE {pct(m['daily'])}, weekly {pct(m['weekly'])}")
    c = report["common_origins"]
    print(f"  where every rule could be made ({len(common)} forecasts): " + ", ".join(
        f"{m} daily {pct(v['daily'])} weekly {pct(v['weekly'])}" for m, v in c.items()))  # fmt: skip
    return 0


def cmd_cost_optimize(args: argparse.Namespace) -> int:
    from rhythm_pipelines.cost import catalog as catalogs
    from rhythm_pipelines.cost.evaluation import evaluate

    catalog = catalogs.load(args.catalog)
    calls = _call_log(args)
    if calls is None:
        return 2
    if args.budget_usd_per_day is not None and args.budget_usd_per_day <= 0:
        raise ValueError("--budget-usd-per-day must be positive")
    ev = evaluate(calls, catalog, args.budget_usd_per_day, args.latency_slo_ms, args.max_error_rate, slots=args.slots)
    report = ev.as_dict()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"plan: {report['mode']}  (fit {report['fit'][0][:16]} .. {report['fit'][1][:16]}, replay the last day)")
    print(f"{'policy':12s} {'cost $':>10s} {'mean ms':>9s} {'p95 ms':>9s} {'errors':>8s} {'over limit':>10s}")
    rows = {"observed": report["baseline"], "plan": report["plan"], **report["policies"]}
    for name, r in rows.items():
        print(
            f"{name:12s} {r['cost_usd']:10.2f} {r['mean_latency_ms']:9.1f} {r['p95_latency_ms']:9.1f} "
            f"{r['error_rate']:8.2%} {r['over_limit_calls']:10d}"
        )
    if report["cost_reduction"] is not None:
        print(f"cost {-report['cost_reduction']:+.1%}, mean latency {report['latency_change']:+.1%} against observed")
    else:
        print("the observed calls cost nothing: no cost reduction to report (are they priced in the catalog?)")
    for cls, shares in report["plan"]["shares"].items():
        print(f"  {cls}: " + ", ".join(f"{r} {v:.0%}" for r, v in sorted(shares.items(), key=lambda x: -x[1])))
    if report["dominated_by"]:
        print(f"note: {', '.join(report['dominated_by'])} did better on both cost and latency on the replayed day")
    return 0


def cmd_chaos_run(args: argparse.Namespace) -> int:
    from rhythm_pipelines.chaos.runner import main_json, print_table, run_chaos

    names = [n.strip() for n in args.scenarios.split(",") if n.strip()] or None
    progress = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    report = run_chaos(names, progress=progress, keep=args.keep, learning=args.learning)
    print(main_json(report) if args.json else print_table(report))
    return 0


def cmd_healing_validate(args: argparse.Namespace) -> int:
    from rhythm_pipelines.healing.playbooks import PlaybookError, load

    try:
        books = load(args.file)
    except PlaybookError as exc:
        print(f"rhythm: error: {exc}", file=sys.stderr)
        return 2
    levels = sum(len(pb.levels) for pb in books.playbooks.values())
    print(
        f"{books.origin}: valid: {len(books.playbooks)} playbooks, {levels} levels; "
        f"{len(books.safety.processes)} process rule(s), dry run {'on' if books.safety.dry_run else 'off'}"
    )
    return 0


def cmd_healing_replay(args: argparse.Namespace) -> int:
    import pandas as pd

    from rhythm_pipelines.healing.playbooks import load
    from rhythm_pipelines.healing.replay import replay
    from rhythm_pipelines.healing.watch import HOST_METRICS, calls_lookback, lookback
    from rhythm_pipelines.metrics.store import open_store, utc

    try:
        start, end = utc(pd.Timestamp(args.start)), utc(pd.Timestamp(args.end))
    except ValueError as exc:
        raise ValueError(f"--start/--end: expected ISO times like 2026-11-30T09:00Z ({exc})") from None
    if end <= start:
        raise ValueError(f"--end {end} is not after --start {start}")
    books = load(args.playbooks)
    s = books.detectors
    with open_store(args.store) as store:
        points = store.read_metrics(start - lookback(s), end, metrics=list(HOST_METRICS))
        calls = store.read_table("channel_calls", start - calls_lookback(s), end)
        alerts = store.read_table("events", start - pd.Timedelta(seconds=s.anomaly_window_s), end)
        rows: list[dict] = []
        t0 = time.monotonic()
        counts = replay(
            books, points, calls, alerts, start, end, _home() / "healing" / "replay", rows.append, args.step_s
        )
        if rows:
            store.write_table("healing_log", pd.DataFrame(rows))
    total = sum(counts.values())
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "none"
    print(f"replayed {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC in {time.monotonic() - t0:.0f} s: "
          f"{total} event(s) ({kinds}), {len(rows)} log entries written")  # fmt: skip
    return 0


def cmd_learn_evaluate(args: argparse.Namespace) -> int:
    from rhythm_pipelines.learning import evaluate as ev

    if args.train_days <= 0:
        raise ValueError(f"--train-days: must be positive (got {args.train_days:g})")
    t0 = time.monotonic()
    data = ev.simulated(args.seed) if args.data is None else ev.read_dir(args.data)
    report = ev.evaluate(data, args.train_days)
    if args.json:
        print(ev.to_json(report))
        return 0
    d = report["detail"]

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{x:.1%}"

    print(f"{data.origin}: learned on the first {args.train_days:g} days ({d['train_incidents']} incidents), "
          f"scored the rest ({d['test_incidents']}) in {time.monotonic() - t0:.0f} s")  # fmt: skip
    print(f"  recurring patterns learned: {report['patterns']} ({d['watching_patterns']} with a precursor)")
    print(f"  recurrence prevention: {pct(report['recurrence_prevention'])} ({d['prevented']} of {d['recurrences']}, "
          f"{d['prevented_ahead_of_onset']} before the incident began); seen once or more: "
          f"{pct(d['seen_once_or_more']['rate'])}")  # fmt: skip
    print(f"  unneeded preventive actions: {pct(report['unneeded_actions'])} ({d['unneeded']} of {d['preventions']}); "
          f"held back by the rails: {d['held_by_rails']}")  # fmt: skip
    print(f"  root cause top-1: {pct(report['root_cause_top1'])} (every incident its own host's: "
          f"{pct(d['root_cause_top1_baseline'])})")  # fmt: skip
    for p in d["precursors"]:
        print(f"  - {p['kind']} on {p['root']} ({p['members']} incidents): {p['rule']}, lead {p['lead_min']:.0f} min")
    return 0


def cmd_learn_ab(args: argparse.Namespace) -> int:
    import asyncio
    from urllib.parse import urlparse

    import pandas as pd

    from rhythm_pipelines.chaos import fault_server as fs
    from rhythm_pipelines.learning import ab
    from rhythm_pipelines.learning.resilient import ResilientClient, http_send
    from rhythm_pipelines.learning.tuning import LITELLM, RESILIENCE4J, PolicyFile
    from rhythm_pipelines.metrics.store import open_store

    for name in ("rate", "max_s", "tau", "bin_s"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')}: must be positive (got {getattr(args, name):g})")
    for name in ("warmup_s", "after_stop_s"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')}: must not be negative (got {getattr(args, name):g})")
    for name, what in (("share", "the tuned arm's share"), ("alpha", "the test's level")):
        if not 0 < getattr(args, name) < 1:
            raise ValueError(f"--{name}: {what} must be between 0 and 1 (got {getattr(args, name):g})")
    if (args.url is None) == (args.fault_server is None):
        raise ValueError("give one of --url (a channel to call) or --fault-server SCHEDULE (a loopback one)")
    default = {"litellm": LITELLM, "resilience4j": RESILIENCE4J}[args.default]
    where = {"host": "127.0.0.1", "port": 0}
    if args.fault_server is not None:
        fs.parse_schedule(args.fault_server)  # a bad schedule fails here, naming the part
    else:
        u = urlparse(args.url)
        if u.scheme != "http" or not u.hostname or not u.port:
            raise ValueError(f"--url: expected http://HOST:PORT (got {args.url!r})")
        where.update(host=u.hostname, port=u.port)
    first = PolicyFile.at_home().policies().get(args.channel, default)

    async def send(rid: str, n: int, timeout: float) -> tuple[str, float]:
        return await http_send(where["host"], where["port"], rid, n, timeout)

    clients = {
        "default": ResilientClient(default, send, seed=args.seed),
        "tuned": ResilientClient(first, send, retune_s=2.0, seed=args.seed + 1),
    }
    start = pd.Timestamp.now(tz="UTC")
    experiment = f"{args.channel}/{start:%Y%m%dT%H%M%SZ}"
    split = ab.Split(clients, experiment, share=args.share, alpha=args.alpha, tau=args.tau, bin_s=args.bin_s)
    extra = {"channel": args.channel, "default_policy": default.name, "min_n": split.min_n, "alpha": args.alpha,
             "tau": args.tau, "bin_s": args.bin_s, "share": args.share}  # fmt: skip
    say = (lambda *a, **k: None) if args.json else print
    origin = "the policy in force" if first is not default else "the defaults"
    say(f"experiment {experiment}: {args.default} defaults against the tuned policy (from {origin}, then tuned "
        f"on a {args.warmup_s:g} s warm-up), {args.rate:g} requests/s, {args.share:.0%} to tuned; no verdict "
        f"before {ab.MIN_BINS} bins of {args.bin_s:g} s", flush=True)  # fmt: skip
    with open_store(args.store or _default_store()) as store:

        def sink(rows: list[dict]) -> None:
            if rows:
                store.write_table("ab_requests", pd.DataFrame(rows).assign(**extra))

        def progress(t: float, v: ab.Verdict | None) -> None:
            if v is not None and int(t) % 5 == 0:
                say(f"  {t:5.0f} s  {v.describe()}", flush=True)

        proc = None
        try:
            if args.fault_server is not None:
                proc, where["port"] = fs.spawn(args.fault_server, args.seed)
            start = pd.Timestamp.now(tz="UTC")
            v = asyncio.run(ab.run(split, args.rate, args.max_s, args.seed, warmup_s=args.warmup_s,
                                   after_stop_s=args.after_stop_s, sink=sink, progress=progress))  # fmt: skip
        finally:
            if proc is not None:
                fs.stop(proc)
    out = {
        "experiment": experiment, "stopped": v.stopped, "winner": v.winner, "p": v.p, "diff": v.diff,
        "ci": v.ci, "requests": v.requests, "failed": v.failed, "rates": v.rates,
        "stopped_after_s": None if v.at is None else round((v.at - start).total_seconds() - args.warmup_s, 1),
        "retry_amplification": {a: round(sum(r["attempts"] for r in c.requests) / max(1, len(c.requests)), 3)
                                for a, c in clients.items()},
        "tuned_policy": clients["tuned"].policy.to_dict(),
    }  # fmt: skip
    if args.json:
        print(json.dumps(out))
    else:
        print(v.describe())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # validation errors name file, row and field
        print(f"rhythm: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
