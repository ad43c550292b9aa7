"""Predictive scheduling: the fleet's rhythm learned per day, the plan of the next 24 h, and the sensor that
launches planned runs when they fall due and pre-empts forecast breaches through healing.

A job takes part with tags (``scheduling/tags.py``): ``rhythm/cron`` (its nominal times), ``rhythm/priority``,
``rhythm/deadline``, ``rhythm/cost``, ``rhythm/host``; it is one of the sensor's jobs (``planned_tags``: today
the demo's, with ``RHYTHM_DEMO=1``) and has no schedule of its own. Bad tags stop the code location from
loading, with the job and tag named.
"""

import json
import os
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from rhythm_pipelines.defs.demo import demo_planned_jobs
from rhythm_pipelines.defs.demo import enabled as demo_enabled
from rhythm_pipelines.defs.healing import CANCELED_BY_TAG, healing_job, run_request
from rhythm_pipelines.defs.ingestion import window
from rhythm_pipelines.defs.metadata import md_table, plot_plan, plot_week
from rhythm_pipelines.defs.partitions import daily_partitions
from rhythm_pipelines.defs.resources import HealingResource, MetricsStoreResource, sampler_host
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.pause import paused_by
from rhythm_pipelines.home import rhythm_home
from rhythm_pipelines.scheduling.learn import BEFORE, learn_day, week_heatmap
from rhythm_pipelines.scheduling.live import PlanNow, plan_now, profile_of
from rhythm_pipelines.scheduling.planner import Run, Targets
from rhythm_pipelines.scheduling.tags import parse_tags

SCHEDULING_GROUP = "scheduling"
PLAN_INTERVAL_S = int(os.environ.get("RHYTHM_PLAN_INTERVAL_S", "60"))
PLAN_KEY_TAG = "rhythm/plan_key"  # the planned run's identity (job|nominal time): also its run_key
LIVE = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED)  # fmt: skip

JOB_TAGS = {job.name: parse_tags(job.name, dict(job.tags or {})) for job in demo_planned_jobs}  # fails at load


def planned_tags() -> list:
    """The tags of the jobs planned now (the demo's only with RHYTHM_DEMO=1)."""
    planned = demo_planned_jobs if demo_enabled() else []
    return [JOB_TAGS[j.name] for j in planned if JOB_TAGS.get(j.name) is not None and JOB_TAGS[j.name].cron]


def targets() -> Targets:
    return Targets(float(os.environ.get("RHYTHM_TARGET_CPU", "80")), float(os.environ.get("RHYTHM_TARGET_MEM", "75")))


@dataclass
class History:
    launched: set[str]  # plan keys launched (a run healing's pause canceled does not count: it is planned again)
    running: list[tuple[Run, pd.Timestamp]]  # the planned runs still queued or going, as load from their start
    retries: dict[str, int]  # plan key -> runs of it healing's pause canceled (the next request's run_key suffix)


def _history(instance: dg.DagsterInstance, tags: list, now: pd.Timestamp) -> History:
    out = History(set(), [], {})
    for job in {t.job for t in tags}:
        records = dg.RunsFilter(job_name=job, created_after=(now - pd.Timedelta(days=2)).to_pydatetime())
        for rec in instance.get_run_records(filters=records, limit=1000):
            run_tags = rec.dagster_run.tags
            key = run_tags.get(PLAN_KEY_TAG)
            if not key:
                continue
            if rec.dagster_run.status == dg.DagsterRunStatus.CANCELED and CANCELED_BY_TAG in run_tags:
                out.retries[key] = out.retries.get(key, 0) + 1
                continue
            out.launched.add(key)
            if rec.dagster_run.status in LIVE:
                cost = json.loads(run_tags.get("rhythm/planned_cost", "{}"))
                began = pd.Timestamp(rec.start_time or rec.create_timestamp.timestamp(), unit="s", tz="UTC")
                nominal = pd.Timestamp(key.split("|", 1)[1])
                duration = pd.Timedelta(seconds=cost.get("duration_s", 600))
                host, cpu, mem = run_tags.get("rhythm/host", ""), cost.get("cpu", 0.0), cost.get("mem", 0.0)
                run = Run(job, host, nominal, duration, cpu, mem)
                out.running.append((run, began))
    return out


def _first_planned(tags: list, now: pd.Timestamp, remember: bool) -> dict[str, pd.Timestamp]:
    """When the scheduler first planned each job ($RHYTHM_HOME/state/scheduler_jobs.json; the sensor records)."""
    path = rhythm_home() / "state" / "scheduler_jobs.json"
    try:
        seen = {k: pd.Timestamp(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        seen = {}
    new = {t.job: now for t in tags if t.job not in seen}
    if remember and new:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({k: v.isoformat() for k, v in {**seen, **new}.items()}, indent=1, sort_keys=True))
    return {**seen, **new}


def current_plan(
    instance: dg.DagsterInstance, store, books, now: pd.Timestamp, remember: bool = False
) -> tuple[PlanNow, History]:
    """The plan now (``books``: the healing playbooks, whose latency bar is the channels' SLO)."""
    tags = planned_tags()
    history = _history(instance, tags, now)
    since = _first_planned(tags, now, remember)
    with store.open() as s:
        p = plan_now(s, tags, history.launched, history.running, now, sampler_host(), targets(),
                     books.detectors.latency_p95_ms, since=since)  # fmt: skip
    return p, history


def plan_metadata(p: PlanNow) -> dict:
    table = p.plan.table()
    moved = table[table["moved_min"] != 0] if len(table) else table
    shown = table.drop(columns=["run_key"]) if len(table) else table
    return {
        "planned_runs": dg.MetadataValue.int(len(table)),
        "moved_runs": dg.MetadataValue.int(len(moved)),
        "profile_days": dg.MetadataValue.int(p.profile_days),
        "plan": plot_plan(p.plan, p.plan.targets, f"the next 24 h from {p.now:%Y-%m-%d %H:%M} UTC"),
        "placements": md_table(shown, max_rows=40),
        "moved_and_why": md_table(moved[["job", "host", "nominal", "start", "reason"]] if len(moved) else moved),
        "breaches_to_preempt": md_table(pd.DataFrame([b.__dict__ for b in p.breaches])),
        "costs": md_table(pd.DataFrame([
            {"job": job, "cpu %": c.cost.cpu, "mem %": c.cost.mem, "minutes": c.cost.duration / pd.Timedelta(minutes=1),
             "from": ", ".join(f"{k} {v}" for k, v in c.source.items())}
            for job, c in p.costs.items()
        ])),  # fmt: skip
    }


@dg.asset(
    partitions_def=daily_partitions,
    group_name=SCHEDULING_GROUP,
    description="What the day taught about the fleet's rhythm: per host and hour of the week CPU, memory and runs "
    "started, per channel@region latency and failure rate (mean, p95, spread, count), and per Dagster job its "
    "duration, what it adds to its host's CPU and memory, its success rate and whether it fails more under load. "
    "The planner pools the last 28 days. Re-running a day replaces its rows.",
)
def load_profiles(context: dg.AssetExecutionContext, store: MetricsStoreResource) -> dg.MaterializeResult:
    start, end = window(context)
    hosts_of = {t.job: t.host for t in JOB_TAGS.values() if t is not None and t.host}
    with store.open() as s:
        points = s.read_metrics(start - BEFORE, end, metrics=["cpu_percent", "mem_percent"])
        day = learn_day(points, s.read_table("channel_calls", start, end), s.read_table("runs", start, end), start,
                        hosts_of, sampler_host())  # fmt: skip
        s.write_table("load_profiles", day.profile.assign(ts=start))
        if len(day.jobs):
            s.write_table("job_profiles", day.jobs.assign(ts=start))
        week, days = profile_of(s, end)
    profile, jobs = day.profile, day.jobs
    context.log.info(f"{start:%Y-%m-%d}: {len(profile)} profile rows, {len(jobs)} job rows")
    return dg.MaterializeResult(
        metadata={
            "profile_rows": dg.MetadataValue.int(len(profile)),
            "sources": dg.MetadataValue.int(int(profile["source"].nunique()) if len(profile) else 0),
            "jobs": dg.MetadataValue.int(len(jobs)),
            "week": plot_week(week_heatmap(week), f"the week's CPU rhythm, {days} day(s) pooled to {end:%Y-%m-%d}"),
            "heaviest_hours": md_table(day.heaviest_hours()),
            "jobs_profile": md_table(day.jobs_table()),
        }
    )


@dg.asset(
    group_name=SCHEDULING_GROUP,
    deps=[load_profiles],
    description="The plan in force for the next 24 h: each planned run's slot against each host's forecast load "
    "(the pooled rhythm, anchored to the last 15 min), what was moved and why, and the breaches healing will "
    "pre-empt. The predictive_scheduler sensor re-plans every minute and records a new materialization when a "
    "placement moves; materialize it to see the plan now.",
)
def schedule_plan(
    context: dg.AssetExecutionContext, store: MetricsStoreResource, healing: HealingResource
) -> dg.MaterializeResult:
    p, _ = current_plan(context.instance, store, healing.books(), pd.Timestamp.now(tz="UTC"))
    return dg.MaterializeResult(metadata=plan_metadata(p))


def _breach_event(b) -> HealthEvent:
    detail = {"until": b.until.isoformat(), "bar": b.bar, "forecast": b.value, "raised_by": "predictive_scheduler"}
    return HealthEvent(b.kind, b.source, b.start, b.metric, float(b.value), detail)


@dg.sensor(
    jobs=[healing_job, *demo_planned_jobs],
    minimum_interval_seconds=PLAN_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: re-plans the next 24 h of the jobs that opted in (tags rhythm/cron, priority, "
    "deadline, cost) against the forecast load, launches the runs whose planned start has come (run_key = job and "
    "nominal time, so a re-plan or a daemon restart never launches one twice), holds low-priority ones while "
    "healing pauses low-priority work, and raises forecast_peak / forecast_slo events 15 min before a forecast "
    "breach for healing's playbooks (pause low-priority work until it passes; reroute a channel).",
)
def predictive_scheduler(
    context: dg.SensorEvaluationContext, store: MetricsStoreResource, healing: HealingResource
) -> dg.SensorResult:
    now = pd.Timestamp.now(tz="UTC")
    cursor = json.loads(context.cursor) if context.cursor else {}
    books = healing.books()
    p, history = current_plan(context.instance, store, books, now, remember=True)
    held = paused_by(healing.paused_file, now)
    requests, waiting = [], []
    for pl in p.due():
        r = pl.run
        if held and r.priority == "low":
            waiting.append(r.key)
            continue
        cost = {"cpu": r.cpu, "mem": r.mem, "duration_s": r.duration.total_seconds()}
        retry = history.retries.get(r.key, 0)
        run_key = r.key if not retry else f"{r.key}|after-cancel-{retry}"  # a canceled key cannot launch again
        requests.append(dg.RunRequest(run_key=run_key, job_name=r.job, tags={
            PLAN_KEY_TAG: r.key, "rhythm/host": r.host, "rhythm/planned_start": pl.start.isoformat(),
            "rhythm/moved_min": f"{pl.moved / pd.Timedelta(minutes=1):g}", "rhythm/planned_cost": json.dumps(cost),
            "rhythm/plan_reason": pl.reason[:250],
        }))  # fmt: skip
    raised = dict(cursor.get("breaches", {}))
    for b in p.breaches:
        same = raised.get(f"{b.kind}|{b.source}")
        if b.kind not in books.playbooks or (same and pd.Timestamp(same) >= b.start):
            continue  # no playbook for it, or the breach already pre-empted (it may have moved a slot)
        event = _breach_event(b)
        requests.append(run_request(event, run_key=f"preempt|{event.event_id}", job_name=healing_job.name))
        raised[f"{b.kind}|{b.source}"] = b.until.isoformat()
    raised = {k: v for k, v in raised.items() if pd.Timestamp(v) > now - pd.Timedelta(days=1)}
    fingerprint = p.fingerprint()
    events = []
    if fingerprint != cursor.get("plan"):
        events.append(dg.AssetMaterialization(asset_key="schedule_plan", metadata=plan_metadata(p)))
    moved = sum(1 for pl in p.plan.placements if pl.moved != pd.Timedelta(0))
    msg = f"{len(p.plan.placements)} run(s) planned ({moved} moved), {len(requests)} request(s)"
    if waiting:
        msg += f"; {len(waiting)} low-priority run(s) held while healing pauses low-priority work"
    return dg.SensorResult(
        run_requests=requests,
        asset_events=events,
        skip_reason=None if requests else msg,
        cursor=json.dumps({"plan": fingerprint, "breaches": raised}),
    )


load_profiles_job = dg.define_asset_job(
    "load_profiles_job",
    selection=dg.AssetSelection.assets(load_profiles),
    description="Learn one day's rhythm of the fleet and its jobs (the planner pools the last 28 days).",
)
load_profiles_schedule = dg.build_schedule_from_partitioned_job(
    load_profiles_job,
    name="load_profiles_schedule",
    hour_of_day=0,
    minute_of_hour=20,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly: yesterday's profile (after the last hour's ingestion).",
)

scheduling_assets = [load_profiles, schedule_plan]
scheduling_jobs = [load_profiles_job]
scheduling_schedules = [load_profiles_schedule]
scheduling_sensors = [predictive_scheduler]
