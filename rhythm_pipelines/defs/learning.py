"""Learning from failures: the ``failure_patterns`` asset and the ``recurrence_prevention`` sensor.

``failure_patterns`` clusters what healing and Dagster recorded (healing events, failed runs with their error
templates) into patterns with their root cause, the fix that worked, how often they recur and, where the
stored metrics show one, a precursor. ``recurrence_prevention`` watches those precursors every minute and,
when one fires, launches ``healing_job`` with a ``recurrence_risk`` event: the pattern's fix through the
healing engine and its rails. Domain logic: ``rhythm_pipelines/learning/``.
"""

import json
import os

import dagster as dg
import pandas as pd

from rhythm_pipelines.defs.healing import healing_job, run_request
from rhythm_pipelines.defs.metadata import md_table, num, plot_ab, plot_timelines
from rhythm_pipelines.defs.resources import MetricsStoreResource
from rhythm_pipelines.learning import ab
from rhythm_pipelines.learning import incidents as incs
from rhythm_pipelines.learning import labels as pattern_labels
from rhythm_pipelines.learning.live import STALE, due, horizon, learn_recorded, root_fixes
from rhythm_pipelines.learning.patterns import Pattern, acts
from rhythm_pipelines.learning.prevention import prevention_event
from rhythm_pipelines.learning.signals import CHANNEL_PRECURSORS, HOST_PRECURSORS, RISES_MIN, Signals
from rhythm_pipelines.learning.tuning import PolicyFile, tune_channels

LEARNING_GROUP = "learning"
PREVENT_INTERVAL_S = int(os.environ.get("RHYTHM_PREVENT_INTERVAL_S", "60"))
SNAPSHOT_LOOKBACK = pd.Timedelta(hours=3)  # the sensor acts on the newest snapshot only when it is this fresh
NO_PATTERN = "(none)"  # a snapshot that learned nothing: it still replaces the one before


class FailurePatternsConfig(dg.Config):
    lookback_days: float = 28.0  # learn on this much history
    labels_file: str = ""  # operator labels (default: $RHYTHM_PATTERN_LABELS, else $RHYTHM_HOME/pattern_labels.yaml)


@dg.asset(
    group_name=LEARNING_GROUP,
    kinds={"sqlite"},
    description="Failure patterns: healing events and failed runs (error text mined into templates with Drain) "
    "clustered by root cause (the first cause in lineage and time order), each with the fix that worked, its "
    "recurrence and, where the metrics before its incidents show one, a precursor that recurrence_prevention "
    "watches. Operator labels ($RHYTHM_HOME/pattern_labels.yaml) name patterns or stop their prevention; a "
    "prevention its breach followed anyway lowers its pattern's confidence. Each run writes a snapshot.",
)
def failure_patterns(
    context: dg.AssetExecutionContext, config: FailurePatternsConfig, store: MetricsStoreResource
) -> dg.MaterializeResult:
    now = pd.Timestamp.now(tz="UTC").floor("s")
    since = now - pd.Timedelta(days=config.lookback_days)
    labels = pattern_labels.load(config.labels_file or None)  # a bad file fails here, naming file and line
    with store.open() as s:
        log = s.read_table("healing_log", since, now + pd.Timedelta(seconds=1))
        runs = s.read_table("runs", since, now + pd.Timedelta(seconds=1))
        preventions = s.read_table("preventions", since, now + pd.Timedelta(seconds=1))
        inc = incs.recorded(log, runs)
        roots = sorted(set(inc["host"]) | set(inc["source"]))
        metrics = (
            s.read_metrics(since, now, sources=roots, metrics=[*HOST_PRECURSORS, *CHANNEL_PRECURSORS])
            if roots
            else pd.DataFrame()
        )
        context.log.info(f"{len(inc)} incident(s) since {since:%Y-%m-%d %H:%M}, {len(metrics)} metric points")
        learned = learn_recorded(log, runs, metrics, now, labels, preventions)
        rows = pd.DataFrame([{**p.row(), "ts": now} for p in learned.model.patterns])
        if rows.empty:
            rows = pd.DataFrame([{"ts": now, "pattern_id": NO_PATTERN, "kind": "", "members": "[]"}])
        s.write_table("failure_patterns", rows)
    pats = learned.model.patterns
    recurring = learned.model.recurring()
    table = pd.DataFrame(
        [
            {
                "pattern": p.pattern_id,
                "label": p.label,
                "kind": p.kind,
                "count": p.count,
                "last seen": p.last_seen.strftime("%Y-%m-%d %H:%M"),
                "root cause": p.root,
                "fix that worked": p.fix,
                "recurs every": f"{p.recurrence_min / 60:.1f} h" if p.recurrence_min else "–",
                "precursor": p.precursor.describe() if p.precursor else "–",
                "lead": f"{p.precursor.lead_min:.0f} min" if p.precursor else "–",
                "confidence": num(p.confidence, 2),
                "template": "`" + p.template[:60].replace("`", "'") + "`",  # a code span: <NUM> is not HTML
            }
            for p in sorted(recurring, key=lambda p: (-p.count, p.pattern_id))
        ]
    )
    meta = {
        "incidents": len(learned.incidents),
        "patterns": len(pats),
        "recurring": len(recurring),
        "watched": len(learned.model.watching()),
        "preventions_missed": dg.MetadataValue.json(learned.misses),
        "preventions_helped": dg.MetadataValue.json(learned.helped),
        "labels": len(labels),
        "pattern_table": md_table(table, 30),
    }
    if recurring:
        meta["timeline"] = plot_timelines(recurring, learned.incidents, "incidents per recurring pattern")
    return dg.MaterializeResult(metadata=meta)


failure_patterns_job = dg.define_asset_job(
    "failure_patterns_job",
    selection=dg.AssetSelection.assets(failure_patterns),
    description="Learn failure patterns from the last 28 days of healing events and failed runs.",
)
failure_patterns_schedule = dg.ScheduleDefinition(
    job=failure_patterns_job,
    cron_schedule="40 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: new incidents join their patterns, and past preventions are judged.",
)


_ALL = pattern_labels.Label()


def latest_patterns(store, now: pd.Timestamp) -> list[Pattern]:
    """The patterns of the newest failure_patterns snapshot, if it is fresher than ``SNAPSHOT_LOOKBACK``."""
    snap = store.read_table("failure_patterns", now - SNAPSHOT_LOOKBACK, now + pd.Timedelta(seconds=1))
    if snap.empty:
        return []
    snap = snap[(snap["ts"] == snap["ts"].max()) & (snap["pattern_id"] != NO_PATTERN)]
    return [Pattern.from_row(r) for r in snap.to_dict("records")]


@dg.sensor(
    jobs=[healing_job],
    minimum_interval_seconds=PREVENT_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: each learned failure pattern's precursor on its fresh metrics; when one holds (and "
    "it has not fired within its horizon, and no incident of it is open), a healing_job run applies the pattern's "
    "fix before the breach as a recurrence_risk event, under healing's rails (run_key = pattern, root, minute). "
    "An incident of a pattern that healing has not closed within 2 min (a cascade's dependent) gets the pattern's "
    "fix at its root the same way.",
)
def recurrence_prevention(context: dg.SensorEvaluationContext, store: MetricsStoreResource) -> dg.SensorResult:
    now = pd.Timestamp.now(tz="UTC")
    fired = json.loads(context.cursor) if context.cursor else {}
    try:  # read every tick: an operator's prevent: false holds at once
        labels = pattern_labels.load()
    except pattern_labels.LabelError as exc:
        return dg.SensorResult(skip_reason=f"nothing prevented until the labels file is fixed: {exc}",
                               cursor=context.cursor)  # fmt: skip
    with store.open() as s:
        allowed = [p for p in latest_patterns(s, now) if (labels.get(p.pattern_id) or _ALL).prevent]
        watched = [p for p in allowed if acts(p)]
        log = (
            s.read_table("healing_log", now - pd.Timedelta(hours=6), now + pd.Timedelta(seconds=1))
            if allowed else pd.DataFrame()
        )  # fmt: skip  (no pattern: nothing to read for)
        open_inc = incs.from_healing_log(log)
        at_root = root_fixes(allowed, open_inc, now, fired)
        if not watched and not at_root:
            return dg.SensorResult(
                skip_reason="no learned pattern with a confident precursor and a fix, and no open incident of one",
                cursor=context.cursor,
            )
        reach = pd.Timedelta(minutes=max(RISES_MIN) + 10)
        sources = sorted({p.precursor.source for p in watched})
        metrics = (
            s.read_metrics(now - reach, now + pd.Timedelta(seconds=1), sources=sources,
                           metrics=sorted({p.precursor.metric for p in watched}))
            if watched else pd.DataFrame()
        )  # fmt: skip
    names = {p.precursor.metric for p in watched}  # a precursor on a metric of its own is read too
    signals = Signals.build(metrics, metric_names=names) if len(metrics) else Signals(pd.DataFrame())
    requests = []
    for p in due(watched, signals, now, fired, open_inc):
        src, metric = p.precursor.source, p.precursor.metric
        event = prevention_event(p, now, float(signals.series(src, metric)[-1]))  # what it read: local evidence
        requests.append(run_request(event, run_key=f"prevent|{event.event_id}", job_name=healing_job.name))
        fired[p.pattern_id] = now.isoformat()
    for p in at_root:
        if p.pattern_id in fired and pd.Timestamp(fired[p.pattern_id]) > now - horizon(p):
            continue  # its precursor fired this tick
        event = prevention_event(p, now, trigger="incident")  # an open incident of it, healing could not close
        requests.append(run_request(event, run_key=f"rootfix|{event.event_id}", job_name=healing_job.name))
        fired[p.pattern_id] = now.isoformat()
    fired = {k: v for k, v in fired.items() if pd.Timestamp(v) > now - pd.Timedelta(days=1)}
    msg = None
    if not requests:
        age = (now - signals.index[-1]) if len(signals.index) else None
        msg = f"{len(watched)} precursor(s) watched, none holds"
        if watched and (age is None or age > STALE):
            seen = "no metrics" if age is None else f"metrics {age.total_seconds() / 60:.0f} min old"
            msg += f" ({seen} for their roots: nothing acts on data older than {STALE.total_seconds() / 60:.0f} min)"
    return dg.SensorResult(run_requests=requests, skip_reason=msg, cursor=json.dumps(fired))


class TunedPoliciesConfig(dg.Config):
    lookback_hours: float = 24.0  # tune each channel@region on this much of its call log
    rollback_to: int = 0  # > 0: instead of tuning, put this policy version back in force (as a new version)


@dg.asset(
    group_name=LEARNING_GROUP,
    kinds={"json"},
    description="Per channel@region, from its own call log: the timeout (1.5 x p99.9 latency), retries within a "
    "20 % retry budget with full-jitter backoff, and circuit-breaker thresholds (failure rate, slow calls, window, "
    "open interval). Each change is bounded (a timeout /2 to x4, the rest x2) and says why; the policies are "
    "versioned files under $RHYTHM_HOME/policies that the health sensor's breaker reads. rollback_to=N puts version "
    "N back in force.",
)
def tuned_policies(
    context: dg.AssetExecutionContext, config: TunedPoliciesConfig, store: MetricsStoreResource
) -> dg.MaterializeResult:
    files = PolicyFile.at_home()
    if config.rollback_to:
        version = files.rollback(config.rollback_to)  # an unknown version fails here, naming the ones there are
        context.log.info(f"policy version {config.rollback_to} is back in force as version {version}")
        current, reasons, calls = files.policies(version), files.read(version)["reasons"], {}
    else:
        now = pd.Timestamp.now(tz="UTC")
        with store.open() as s:
            log = s.read_table("channel_calls", now - pd.Timedelta(hours=config.lookback_hours), now)
        current, reasons, calls = tune_channels(log, files.policies())
        version = files.write(current, reasons, note="tuned") if reasons else files.current()
        context.log.info(f"{len(reasons)} channel(s) changed" + (f": version {version}" if reasons else ""))
    table = pd.DataFrame([
        {"channel": k, "calls": calls.get(k), "timeout_s": num(p.timeout_s, 3), "retries": p.retries,
         "retry_budget": p.retry_budget, "breaker_at": num(p.breaker.failure_rate, 2) if p.breaker else None,
         "window": p.breaker.window if p.breaker else None, "open_s": num(p.breaker.open_s, 3) if p.breaker else None,
         "why": "; ".join(reasons.get(k, ["unchanged"]))}
        for k, p in sorted(current.items())
    ])  # fmt: skip
    return dg.MaterializeResult(metadata={
        "version": version or 0,
        "channels": len(current),
        "changed": len(reasons),
        "versions": dg.MetadataValue.json(files.versions()),
        "policy_file": dg.MetadataValue.path(str(files.root / f"v{version:04d}.json")) if version else "none yet",
        "policies": md_table(table, 40),
    })  # fmt: skip


tuned_policies_job = dg.define_asset_job(
    "tuned_policies_job",
    selection=dg.AssetSelection.assets(tuned_policies),
    description="Tune each channel's timeout, retries and breaker from its last 24 h of calls.",
)
tuned_policies_schedule = dg.ScheduleDefinition(
    job=tuned_policies_job,
    cron_schedule="50 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: a channel whose calls changed gets a new policy version (a bounded step).",
)


class ABTestsConfig(dg.Config):
    lookback_days: float = 7.0  # experiments with requests this recent
    alpha: float = ab.ALPHA  # for experiments that did not store their own
    tau: float = ab.TAU


@dg.asset(
    group_name=LEARNING_GROUP,
    kinds={"sqlite"},
    description="Online A/B tests of each channel's tuned policy against a fixed default (`rhythm learn ab`): the "
    "requests split by id, the failure rate of each arm, and an mSPRT on the arms' difference per time bin "
    "(always-valid p-value, read every bin) that stops when the difference is significant; then every request went "
    "to the winner. Each experiment is read with its own level, prior and bin.",
)
def ab_tests(context: dg.AssetExecutionContext, config: ABTestsConfig, store: MetricsStoreResource
             ) -> dg.MaterializeResult:  # fmt: skip
    if config.lookback_days <= 0:
        raise ValueError(f"ab_tests: lookback_days must be positive (got {config.lookback_days:g})")
    now = pd.Timestamp.now(tz="UTC")
    with store.open() as s:
        req = s.read_table("ab_requests", now - pd.Timedelta(days=config.lookback_days), now + pd.Timedelta(seconds=1))
    rows = []
    experiments = ab.experiments(req, config.alpha, config.tau)
    for e in experiments:
        v, g = e.verdict, e.requests
        rates, winner = v.rates, v.winner
        rows.append({
            "experiment": e.name, "channel": g["channel"].iloc[0], "default arm": g["default_policy"].iloc[0],
            "started": g["ts"].min().strftime("%Y-%m-%d %H:%M"), "requests": len(g),
            "in test": int((g["in_test"] == 1).sum()),
            "default failed": num(rates["default"], 3), "tuned failed": num(rates["tuned"], 3),
            "difference": num(v.diff, 3), "interval": f"{v.ci[0]:+.3f} … {v.ci[1]:+.3f}" if v.ci else "–",
            "p (always valid)": num(v.p, 3),
            "verdict": f"{winner} fails less" if winner else "no significant difference",
            "stopped after": f"{v.requests['default'] + v.requests['tuned']} requests" if v.stopped else "–",
        })  # fmt: skip
    meta: dict = {"experiments": len(rows), "tests": md_table(pd.DataFrame(rows), 20)}
    if experiments:
        newest = experiments[-1]
        meta["newest"] = newest.verdict.describe()
        meta["sequential_test"] = plot_ab(newest.verdict.path, newest.alpha, f"A/B {newest.name}")
        context.log.info(f"{newest.name}: {newest.verdict.describe()}")
    return dg.MaterializeResult(metadata=meta)


ab_tests_job = dg.define_asset_job(
    "ab_tests_job",
    selection=dg.AssetSelection.assets(ab_tests),
    description="Read the online A/B tests of channel policies (their requests in ab_requests).",
)
ab_tests_schedule = dg.ScheduleDefinition(
    job=ab_tests_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 15 min: each running A/B test's sequential verdict.",
)

learning_assets = [failure_patterns, tuned_policies, ab_tests]
learning_jobs = [failure_patterns_job, tuned_policies_job, ab_tests_job]
learning_schedules = [failure_patterns_schedule, tuned_policies_schedule, ab_tests_schedule]
learning_sensors = [recurrence_prevention]
