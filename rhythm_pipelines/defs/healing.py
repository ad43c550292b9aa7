"""Self-healing in Dagster: sensors that detect events and launch ``healing_job``, the follow-up sensor, and
the ``healing_log`` and daily ``healing_report`` assets. The loop itself is ``rhythm_pipelines.healing.engine``.

- ``health_sensor`` (every ``$RHYTHM_HEALTH_INTERVAL_S``, 10 s): host metrics, channel calls, anomaly alerts,
  this host's processes and temp roots → events → one run per new event (``run_key`` = event id).
- ``healing_run_failure_sensor``: on each failed run, the job's failures in the window
  (task_failure_pattern) and failures sharing a failing upstream asset (cascade_failure).
- ``healing_followups_sensor``: launches the follow-ups playbooks scheduled, when due.
Runs carry ``rhythm/target`` so the run queue applies one healing run per target at a time.
"""

import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd

from rhythm_pipelines.dashboard.kpis import kpis
from rhythm_pipelines.dashboard.report_html import html_page, kpi_markdown
from rhythm_pipelines.defs.metadata import dashboard_link, md_table, num, plot_incidents
from rhythm_pipelines.defs.partitions import daily_so_far_partitions
from rhythm_pipelines.defs.reexecution import REEXEC_TAG, ROOT_RUN_TAG, submit_reexecution
from rhythm_pipelines.defs.resources import HealingResource, LandingZone, MetricsStoreResource, sampler_host
from rhythm_pipelines.healing import pause
from rhythm_pipelines.healing.actions import Actuator
from rhythm_pipelines.healing.detectors import cascade_failure, task_failure_pattern
from rhythm_pipelines.healing.engine import SUPPRESSED, UNRESOLVED, Healer
from rhythm_pipelines.healing.events import PREVENTION_KIND, HealthEvent
from rhythm_pipelines.healing.evidence import LocalEvidence
from rhythm_pipelines.healing.playbooks import Step
from rhythm_pipelines.healing.probe import LocalProbe
from rhythm_pipelines.healing.processes import instance_roles, snapshot
from rhythm_pipelines.healing.report import day_report, open_incidents, replayed
from rhythm_pipelines.healing.safety import Guard, protected_pids
from rhythm_pipelines.healing.tracker import EpisodeTracker
from rhythm_pipelines.healing.watch import HOST_METRICS, Observation, calls_lookback, detect_all, lookback
from rhythm_pipelines.learning.prevention import with_prevention
from rhythm_pipelines.metrics.provenance import sampler_key, without_claims

HEALTH_INTERVAL_S = int(os.environ.get("RHYTHM_HEALTH_INTERVAL_S", "10"))
HEALING_GROUP = "healing"
TARGET_TAG = "rhythm/target"  # dagster.yaml limits runs to one per value of this tag
CANCELED_BY_TAG = "rhythm/canceled_by"  # a queued low-priority run healing's pause canceled (the event)
OUTCOME_TAG = "rhythm/outcome"  # set when the run ends: resolved, unresolved, suppressed, dry_run...
LOG_LOOKBACK = pd.Timedelta("1h")


class EventConfig(dg.Config):
    kind: str
    source: str
    start: str
    metric: str = ""
    value: float | None = None
    detail_json: str = "{}"

    @classmethod
    def of(cls, event: HealthEvent) -> dict:
        cfg = event.to_config()
        return {
            **{k: cfg[k] for k in ("kind", "source", "start", "metric", "value")},
            "detail_json": json.dumps(cfg["detail"]),
        }

    def event(self) -> HealthEvent:
        return HealthEvent.from_config(
            {**self.model_dump(exclude={"detail_json"}), "detail": json.loads(self.detail_json)}
        )


class HealConfig(dg.Config):
    event: EventConfig
    follow_up_action: str = ""  # set by the follow-up sensor: run this one step of the event's playbook
    follow_up_params_json: str = "{}"


def run_request(
    event: HealthEvent, run_key: str | None = None, follow_up: Step | None = None, job_name: str | None = None
) -> dg.RunRequest:
    """A healing_job run for ``event`` (``job_name``: for a sensor that targets several jobs)."""
    config = {"event": EventConfig.of(event)}
    if follow_up is not None:
        config |= {"follow_up_action": follow_up.action, "follow_up_params_json": json.dumps(follow_up.params)}
    return dg.RunRequest(
        run_key=run_key or event.event_id,
        job_name=job_name,
        run_config={"ops": {"heal_event": {"config": config}}},
        tags={
            TARGET_TAG: event.source[:200],
            "rhythm/event_kind": event.kind,
            "rhythm/follow_up": follow_up.action if follow_up else "",
        },
    )


class DagsterWorkControl:
    """Pausing low-priority work and re-executing failed runs, on a Dagster instance."""

    def __init__(self, instance: dg.DagsterInstance, paused_file, log):
        self.instance, self.paused_file, self.log = instance, paused_file, log

    def pause_low_priority(self, event_id: str) -> tuple[bool, str]:
        held = pause.pause(self.paused_file, event_id, pd.Timestamp.now(tz="UTC"))
        queued = self.instance.get_runs(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED], tags={pause.PRIORITY_TAG: "low"})
        )
        for run in queued:  # tagged first: the predictive scheduler launches its planned runs again after
            self.instance.add_run_tags(run.run_id, {CANCELED_BY_TAG: event_id[:250]})
            self.instance.run_coordinator.cancel_run(run.run_id)
        what = "low-priority schedules and sensors skip their ticks" if held else "already paused by this event"
        return True, f"{what}; {len(queued)} queued low-priority run(s) canceled"

    def resume_low_priority(self, event_id: str) -> tuple[bool, str]:
        released = pause.resume(self.paused_file, event_id)
        others = pause.paused_by(self.paused_file, pd.Timestamp.now(tz="UTC"))
        if not released:
            return False, "this event held no pause"
        return True, "resumed" if not others else f"released; still paused by {', '.join(others)}"

    def rerun_failed(self, run_id: str, attempt: int, submit: bool = True) -> tuple[str, str]:
        """Re-execute from failure as a new run through the queue (``defs/reexecution.py``). A later attempt
        looks at the newest run of the chain first: a success or a run still going ends it there."""
        first = self.instance.get_run_by_id(run_id)
        if first is None:
            return "failed", f"run {run_id} is not in this instance"
        root = first.root_run_id or first.run_id
        chain = self.instance.get_runs(filters=dg.RunsFilter(tags={ROOT_RUN_TAG: root}), limit=20)
        newest = chain[0] if chain else first
        if newest.status == dg.DagsterRunStatus.SUCCESS:
            return "recovered", f"run {newest.run_id} of the chain succeeded"
        if not newest.is_finished:
            return "running", f"run {newest.run_id} is {newest.status.value}"
        if not submit:
            return "failed", f"run {newest.run_id} of the chain ended {newest.status.value}: no attempt left"
        tags = {REEXEC_TAG: run_id, "rhythm/healing_attempt": str(attempt)}
        sub = submit_reexecution(self.instance, newest.run_id, tags)
        return ("submitted" if sub.ok else "failed"), sub.detail


def _job_recovered(instance: dg.DagsterInstance):
    def recovered(key: str, since: pd.Timestamp) -> tuple[bool, str]:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=key, updated_after=since.to_pydatetime()), limit=10)
        if runs:
            ok = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
            return bool(
                ok
            ), f"{len(ok)} successful run(s) of {key} since {since:%H:%M:%S}" if ok else f"{key}: no success yet"
        mat = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
        if mat is not None and mat.timestamp > since.timestamp():
            return True, f"{key} materialized at {pd.Timestamp(mat.timestamp, unit='s', tz='UTC'):%H:%M:%S}"
        return False, f"{key}: no success since {since:%H:%M:%S}"

    return recovered


@dg.op(
    description="Assess the event, run its playbook level by level, verify, escalate or alert; every step is "
    "written to the healing log.",
)
def heal_event(
    context: dg.OpExecutionContext, config: HealConfig, store: MetricsStoreResource, healing: HealingResource
):
    books = healing.books()
    event = config.event.event()
    if event.kind == PREVENTION_KIND:  # a learned pattern's fix, as its kind's playbook spells it
        books = with_prevention(books, event)
    now = pd.Timestamp.now(tz="UTC")
    with store.open() as s:
        history = s.read_table("healing_log", now - max(LOG_LOOKBACK, pd.Timedelta(seconds=books.safety.flap_window_s)))

        def record(entry: dict) -> None:
            s.write_table("healing_log", pd.DataFrame([entry]))
            step = f"{entry['step']} [{entry['level'] or '-'}] {entry['action']}".rstrip()
            context.log.info(f"{step} {entry['outcome']}: {entry['detail']}")

        def alert_end(alert_id: str):
            rows = s.read_table("events", event_id=alert_id)
            return pd.Timestamp(rows["end"].max()) if len(rows) else None

        actuator = Actuator(
            books.safety,
            Guard(books.safety, history),
            sampler_host(),
            healing.state_path,
            healing.notifier(),
            DagsterWorkControl(context.instance, healing.paused_file, context.log),
            books.fallbacks,
            # never this instance's own processes, whatever a selection (top CPU, top memory) would pick
            protected=protected_pids() | frozenset(instance_roles(snapshot(), os.getpid())),
            evidence=LocalEvidence(books.detectors, sampler_host(), temp_roots=books.safety.temp_roots),
        )
        probe = LocalProbe(
            books.detectors,
            sampler_host(),
            actuator.routes_file,
            calls=lambda a, b: s.read_table("channel_calls", a, b),
            job_recovered=_job_recovered(context.instance),
            alert_end=alert_end,
            paused_file=healing.paused_file,
            breakers=tuned_breakers(),
        )
        healer = Healer(books, actuator, probe, record, run_id=context.run_id)
        follow_up = (
            Step(config.follow_up_action, json.loads(config.follow_up_params_json), 0.0)
            if config.follow_up_action
            else None
        )
        result = healer.heal(event, follow_up)
        if event.kind == PREVENTION_KIND and follow_up is None:
            horizon = pd.Timestamp(event.detail["until"]) - event.start
            s.write_table("preventions", pd.DataFrame([{
                "ts": event.start, "event_id": event.event_id, "pattern_id": event.detail.get("pattern", ""),
                "of_kind": event.detail.get("of_kind", ""), "root": event.source,
                "horizon_min": horizon.total_seconds() / 60, "status": result.status, "run_id": context.run_id,
                "trigger": event.detail.get("trigger", "precursor"),
            }]))  # fmt: skip
        if result.followups:
            s.write_table(
                "healing_followups",
                pd.DataFrame(
                    [
                        {
                            "ts": due,
                            "followup_id": f"{event.event_id}|{step.action}|{level}"
                            + (f"|a{step.params['attempt']}" if "attempt" in step.params else ""),
                            "event_id": event.event_id,
                            "action": step.action,
                            "params": json.dumps(step.params),
                            "event": json.dumps(event.to_config()),
                            "status": "pending",
                        }
                        for step, due, level in result.followups
                    ]
                ),
            )
    context.log_event(
        dg.AssetObservation(
            asset_key="healing_log",
            metadata={
                "event_id": event.event_id,
                "kind": event.kind,
                "target": event.source,
                "status": result.status,
                "level": result.level,
                "seconds": round(result.seconds, 2),
                "actions": (
                    md_table(
                        pd.DataFrame(
                            [(a.action, a.target, a.outcome, a.detail) for a in result.actions],
                            columns=["action", "target", "outcome", "detail"],
                        )
                    )
                )
                if result.actions
                else "none",
            },
        )
    )
    context.instance.add_run_tags(context.run_id, {OUTCOME_TAG: result.status})
    if result.status in (UNRESOLVED, SUPPRESSED):
        last = result.entries[-1]["detail"] if result.entries else ""
        raise dg.Failure(
            description=f"{result.status.upper()} at {result.level or 'no level'}: {last}",
            metadata={"event_id": event.event_id, "status": result.status, "level": result.level},
            allow_retries=False,
        )
    return result.status


@dg.job(
    description="Heal one event: assess its severity, run the playbook, verify, escalate or alert. Launched by the "
    "healing sensors with the event in the run config; one run per target at a time (tag rhythm/target). A run "
    "whose incident ends unresolved (or suppressed as flapping) fails, so it shows red; rhythm/outcome tags it.",
    tags={"rhythm/kind": "healing"},
    executor_def=dg.in_process_executor,  # one op: a step subprocess would only add start-up time to MTTR
)
def healing_job():
    heal_event()


def _observe(store, healing: HealingResource, books, now: pd.Timestamp) -> tuple[Observation, int]:
    """What the sensor reads this tick, and how many points named this host without our sampler's signature
    (left out: only this machine's own sampler speaks for this machine)."""
    s = books.detectors
    host = sampler_host()
    with store.open() as st:
        points = st.read_metrics(now - lookback(s), now + pd.Timedelta(seconds=1), metrics=list(HOST_METRICS))
        calls = st.read_table("channel_calls", now - calls_lookback(s), now + pd.Timedelta(seconds=1))
        alerts = st.read_table("events", now - pd.Timedelta(seconds=s.anomaly_window_s), now + pd.Timedelta(seconds=1))
    points, unsigned = without_claims(points, host, sampler_key())
    procs = snapshot()
    own = instance_roles(procs, os.getpid())
    return Observation(
        host, now, points, calls, alerts, procs, books.safety.temp_roots, own, tuned_breakers()
    ), unsigned


def tuned_breakers() -> dict:
    """channel@region -> the breaker of the tuned policy in force (none before tuned_policies first runs)."""
    from rhythm_pipelines.learning.tuning import PolicyFile

    try:
        policies = PolicyFile.at_home().policies()
    except Exception as exc:  # noqa: BLE001 - a damaged file must not stop healing: the default breaker judges
        dg.get_dagster_logger().warning(f"tuned policies unreadable, default breaker used: {exc}")
        return {}
    return {k: p.breaker for k, p in policies.items() if p.breaker is not None}


@dg.sensor(
    job=healing_job,
    minimum_interval_seconds=HEALTH_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every ~10 s: CPU spikes, memory leaks, slow or failing channels, zombies, hung workers, disk "
    "pressure and anomaly alerts; launches healing_job once per new event (run_key = event id).",
)
def health_sensor(context: dg.SensorEvaluationContext, store: MetricsStoreResource, healing: HealingResource):
    books = healing.books()
    now = pd.Timestamp.now(tz="UTC")
    cursor = json.loads(context.cursor) if context.cursor else {}
    state = cursor.get("state", {})
    observation, unsigned = _observe(store, healing, books, now)
    if unsigned:
        context.log.warning(f"{unsigned} point(s) name this host without its sampler's signature: left out")
    events = detect_all(observation, books.detectors, books.watches, state)
    tracker = EpisodeTracker(clear_after_s=max(3 * HEALTH_INTERVAL_S, 30), state=cursor.get("episodes", {}))
    new = tracker.observe(events, now)
    cursor = json.dumps({"episodes": tracker.state, "state": state}, separators=(",", ":"))
    if not new:
        open_ = ", ".join(tracker.state) or "none"
        note = f"; {unsigned} unsigned point(s) naming this host left out" if unsigned else ""
        return dg.SensorResult(skip_reason=f"no new event ({len(events)} holding; open: {open_}){note}", cursor=cursor)
    return dg.SensorResult(run_requests=[run_request(e) for e in new], cursor=cursor)


def _failed_assets(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Asset keys of the steps that failed in a run (a step key is its asset key path joined by __)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    return sorted({r.event_log_entry.step_key.replace("__", "/") for r in records if r.event_log_entry.step_key})


@dg.run_failure_sensor(
    name="healing_run_failure_sensor",
    request_job=healing_job,
    monitor_all_code_locations=True,  # also runs executed outside a workspace (CLI, scripts, re-executions)
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=HEALTH_INTERVAL_S,
    description="On each failed run: repeated failures of its job (task_failure_pattern) and failures under "
    "one failing upstream asset (cascade_failure) launch healing_job.",
)
def healing_run_failure_sensor(context: dg.RunFailureSensorContext, healing: HealingResource):
    run = context.dagster_run
    if run.job_name == healing_job.name:
        return dg.SkipReason("a healing run failed: not healed by healing")
    books = healing.books()
    s = books.detectors
    now = pd.Timestamp.now(tz="UTC")
    window = pd.Timedelta(seconds=max(s.failure_window_s, s.cascade_window_s))
    failed = context.instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], updated_after=(now - window).to_pydatetime())
    )
    failed = [r for r in failed if r.job_name != healing_job.name]
    stats = {r.run_id: context.instance.get_run_stats(r.run_id) for r in failed}
    ends = {rid: pd.Timestamp(st.end_time or st.launch_time or 0, unit="s", tz="UTC") for rid, st in stats.items()}
    runs = pd.DataFrame(
        [(r.run_id, r.job_name, "FAILURE", ends[r.run_id]) for r in failed], columns=["run_id", "job", "status", "end"]
    )
    events = [e for e in task_failure_pattern(runs, now, s) if e.source == run.job_name]
    repo = context.repository_def
    if repo is not None:
        graph = repo.asset_graph
        upstream = {
            k.to_user_string(): [p.to_user_string() for p in graph.get(k).parent_keys]
            for k in graph.get_all_asset_keys()
        }
        failures = pd.DataFrame(
            [(key, ends[r.run_id], r.run_id) for r in failed for key in _failed_assets(context.instance, r.run_id)],
            columns=["key", "ts", "run_id"],
        )
        events += cascade_failure(failures, upstream, now, s)
    if not events:
        return dg.SkipReason(f"{run.job_name} failed ({len(runs)} failure(s) in the window): no pattern yet")
    for e in events:
        context.log.info(f"{e.kind} on {e.source}: launching healing_job")
    return [run_request(e) for e in events]


@dg.sensor(
    job=healing_job,
    minimum_interval_seconds=HEALTH_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches the follow-ups playbooks scheduled (resume paused work, re-check) when they fall due.",
)
def healing_followups_sensor(context: dg.SensorEvaluationContext, store: MetricsStoreResource):
    now = pd.Timestamp.now(tz="UTC")
    with store.open() as s:
        due = s.read_table("healing_followups", now - pd.Timedelta(days=1), now, status="pending")
        if due.empty:
            return dg.SkipReason("no follow-up due")
        requests = [
            run_request(
                HealthEvent.from_config(json.loads(row.event)),
                run_key=row.followup_id,
                follow_up=Step(row.action, json.loads(row.params), 0.0),
            )
            for row in due.itertuples(index=False)
        ]
        s.write_table("healing_followups", due.assign(status="launched"))
    return dg.SensorResult(run_requests=requests)


@dg.asset(
    group_name=HEALING_GROUP,
    kinds={"sqlite"},
    description="The healing log of the last 24 h: every step of every healing run (actions, targets, parameters, "
    "outcomes, timings), including the decisions not to act. Healing runs add observations here as they finish.",
)
def healing_log(context: dg.AssetExecutionContext, store: MetricsStoreResource) -> dg.MaterializeResult:
    now = pd.Timestamp.now(tz="UTC")
    with store.open() as s:
        log = s.read_table("healing_log", now - pd.Timedelta("24h"), now + pd.Timedelta(seconds=1))
    if log.empty:
        return dg.MaterializeResult(metadata={"entries": 0, "log": dg.MetadataValue.md("No healing in the last 24 h.")})
    acts = log[log["step"] == "act"]
    outcome = log[log["step"].isin(["resolve", "alert", "decide"]) | (log["outcome"] == "already_resolved")]
    events = log.drop_duplicates("event_id")
    shown = log.sort_values("ts", ascending=False).head(50)
    return dg.MaterializeResult(
        metadata={
            "entries": len(log),
            "dashboard": dashboard_link("/healing"),
            "events": len(events),
            "actions": len(acts),
            "actions_by_outcome": dg.MetadataValue.json(acts["outcome"].value_counts().to_dict()),
            "events_by_kind": dg.MetadataValue.json(events["kind"].value_counts().to_dict()),
            "resolved": int((outcome["outcome"] == "resolved").sum()),
            "log": md_table(
                shown[["ts", "kind", "source", "level", "step", "action", "target", "outcome", "detail"]], 50
            ),
        }
    )


@dg.asset(
    group_name=HEALING_GROUP,
    partitions_def=daily_so_far_partitions,
    kinds={"sqlite"},
    description="A day of healing: events, actions, MTTR, auto-recovery rate, availability (the share of the day "
    "with no open hard or critical event), the task failure rate from Dagster's run history, and the top "
    "recurring causes, with a timeline of the day's incidents. Today's partition is refreshed hourly; "
    "replayed (dry-run) decisions are counted apart. With the seed's KPIs for the day, and written as a "
    "self-contained HTML file under the healing state directory (reports/).",
)
def healing_report(
    context: dg.AssetExecutionContext, store: MetricsStoreResource, healing: HealingResource, landing: LandingZone
) -> dg.MaterializeResult:
    window = context.partition_time_window
    start, end = pd.Timestamp(window.start).tz_convert("UTC"), pd.Timestamp(window.end).tz_convert("UTC")
    with store.open() as s:
        log = s.read_table("healing_log", start - pd.Timedelta("1h"), end)
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE],
            updated_after=start.to_pydatetime(),
            updated_before=end.to_pydatetime(),
        )
    )
    runs = pd.DataFrame(
        [
            (r.dagster_run.job_name, r.dagster_run.status.value)
            for r in records
            if r.dagster_run.job_name != healing_job.name
        ],
        columns=["job", "status"],
    )
    dry_rows = replayed(log)
    upto = min(end, pd.Timestamp.now(tz="UTC"))  # today's partition: the day so far, not hours still to come
    report = day_report(log[~dry_rows], runs, start, upto)  # the KPIs: real healing only
    dry = day_report(log[dry_rows], runs.iloc[:0], start, upto) if dry_rows.any() else None
    summary = report.summary()
    metadata = {
        "events": summary["events"],
        "replayed_events": len(dry.events) if dry is not None else 0,
        "actions": summary["actions"],
        "mttr_p50_s": num(summary["mttr_s"]["p50"]),
        "mttr_p95_s": num(summary["mttr_s"]["p95"]),
        "auto_recovery_rate": num(summary["auto_recovery_rate"]),
        "availability": num(summary["availability"], 6),
        "task_failure_rate": num(summary["task_failure_rate"]),
        "runs": summary["runs"],
        "top_causes": md_table(report.top_causes()),
        "actions_by_outcome": md_table(report.actions),
    }
    frames = [f for f in (report.events, dry.events if dry is not None else None) if f is not None and len(f)]
    if frames:
        shown = pd.concat(frames, ignore_index=True)
        title = f"healing on {start:%Y-%m-%d}" + (" (incl. dry-run replay of history)" if dry is not None else "")
        metadata["timeline"] = plot_incidents(shown.sort_values("start"), start, upto, title)
        metadata["incidents"] = md_table(
            shown.sort_values("start", ascending=False)[
                ["start", "closed", "kind", "source", "level", "status", "replayed"]
            ],
            40,
        )
    with store.open() as s:
        summary = kpi_markdown(kpis(s, upto, landing=Path(landing.root), window=upto - start, spend=False))
    metadata["kpis"] = dg.MetadataValue.md(summary)
    metadata["dashboard"] = dashboard_link("/healing", hours=round((upto - start) / pd.Timedelta(hours=1), 2))
    day = f"{start:%Y-%m-%d}"
    parts = [f"# Healing report, {day}", "## The seed's KPIs over the day", summary,
             "## Top recurring causes", metadata["top_causes"].value, "## Actions by outcome",
             metadata["actions_by_outcome"].value]  # fmt: skip
    for key, heading in (("incidents", "## Incidents"), ("timeline", "## Timeline")):
        if key in metadata:
            parts += [heading, metadata[key].value]
    path = healing.state_path / "reports" / f"{day}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(f"Healing report, {day}", "\n\n".join(parts), footer="rhythm_pipelines"))
    metadata["html"] = dg.MetadataValue.path(str(path))
    return dg.MaterializeResult(metadata={k: v for k, v in metadata.items() if v is not None})


@dg.asset_check(
    asset=healing_log,
    description="Fails while an incident of the last 24 h ended unresolved (or suppressed) and nothing resolved "
    "it since: an unresolved incident is never green. Replayed (dry-run) history is left out.",
)
def incidents_resolved(store: MetricsStoreResource) -> dg.AssetCheckResult:
    now = pd.Timestamp.now(tz="UTC")
    with store.open() as s:
        log = s.read_table("healing_log", now - pd.Timedelta("24h"), now + pd.Timedelta(seconds=1))
    report = day_report(log[~replayed(log)], pd.DataFrame(columns=["job", "status"]), now - pd.Timedelta("24h"), now)
    events = report.events
    open_ = open_incidents(events)
    return dg.AssetCheckResult(
        passed=len(open_) == 0,
        metadata={
            "events_24h": len(events),
            "unresolved": len(open_),
            "open": md_table(
                open_[["start", "kind", "source", "level", "status"]].sort_values("start", ascending=False)
            )
            if len(open_)
            else "none",
        },
    )


healing_log_job = dg.define_asset_job(
    "healing_log_job",
    selection=dg.AssetSelection.assets(healing_log),
    description="The last 24 h of the healing log and its check that no incident is left unresolved.",
)
healing_report_job = dg.define_asset_job(
    "healing_report_job",
    selection=dg.AssetSelection.assets(healing_report),
    description="A day's healing report.",
)


@dg.schedule(
    job=healing_log_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly at :05: the healing log's summary and its unresolved-incident check.",
)
def healing_log_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"healing-log-{context.scheduled_execution_time:%Y-%m-%dT%H}")


@dg.schedule(
    job=healing_report_job,
    cron_schedule="10 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly at :10: today's healing report so far; in the first hour of a day, yesterday's final one too.",
)
def healing_report_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    t = pd.Timestamp(context.scheduled_execution_time).tz_convert("UTC")
    days = [t.floor("D") - pd.Timedelta(days=1)] if t.hour == 0 else []
    return [
        dg.RunRequest(run_key=f"healing-report-{d:%Y-%m-%d}-at-{t:%Y-%m-%dT%H}", partition_key=f"{d:%Y-%m-%d}")
        for d in [*days, t.floor("D")]
    ]


healing_sensors = [health_sensor, healing_run_failure_sensor, healing_followups_sensor]
healing_schedules = [healing_log_schedule, healing_report_schedule]
healing_jobs = [healing_job, healing_log_job, healing_report_job]
