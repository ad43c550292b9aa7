"""Cost in Dagster: per-channel costs, the Pareto frontier, the routing plan, period reports, and the budget
sensor that launches ``budget_alert_job`` once per budget, period and threshold (run_key = alert id).
The domain logic is ``rhythm_pipelines.cost``."""

import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd

from rhythm_pipelines.cost import budgets as budget_files
from rhythm_pipelines.cost import catalog as catalogs
from rhythm_pipelines.cost.evaluation import fit_plan, plan_document, plan_row
from rhythm_pipelines.cost.frontier import budget_curve, route_frontier, slo_curve
from rhythm_pipelines.cost.optimizer import RoutingInfeasible, build_problem
from rhythm_pipelines.cost.report import build_report
from rhythm_pipelines.cost.tracking import channel_costs as cost_table
from rhythm_pipelines.dashboard.kpis import kpis
from rhythm_pipelines.dashboard.report_html import html_page, kpi_markdown
from rhythm_pipelines.defs.ingestion import channel_calls, window
from rhythm_pipelines.defs.metadata import dashboard_link, md_table, plot_frontier, png_md
from rhythm_pipelines.defs.partitions import PARTITIONS_START, daily_partitions
from rhythm_pipelines.defs.resources import LandingZone, MetricsStoreResource
from rhythm_pipelines.home import rhythm_home

COST_GROUP = "cost"
BUDGET_INTERVAL_S = int(os.environ.get("RHYTHM_BUDGET_INTERVAL_S", "300"))
MAX_ALERT_ATTEMPTS = 5  # a webhook that keeps failing: the alert stays in alerts.jsonl and the table
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=PARTITIONS_START, day_offset=1, timezone="UTC")
monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=PARTITIONS_START[:8] + "01", timezone="UTC")


class CostResource(dg.ConfigurableResource):
    """The price catalog, the budgets, where reports and plans are written, and the alert webhook."""

    catalog: str = ""  # a catalog file; empty: $RHYTHM_PRICE_CATALOG, else the shipped price_catalog.yaml
    budgets: str = ""  # a budgets file; empty: $RHYTHM_BUDGETS, else the shipped budgets.yaml
    reports_dir: str
    webhook_url: str = ""  # Slack-compatible; empty: alerts go to alerts.jsonl in reports_dir

    def load_catalog(self) -> catalogs.Catalog:
        return catalogs.load(self.catalog or None)

    def load_budgets(self) -> budget_files.BudgetSet:
        return budget_files.load(self.budgets or None)

    @property
    def reports(self) -> Path:
        return Path(self.reports_dir)

    def notifier(self):
        from rhythm_pipelines.healing.notify import Notifier

        return Notifier(self.webhook_url or None, self.reports / "alerts.jsonl")


def cost_from_env() -> CostResource:
    """``$RHYTHM_PRICE_CATALOG``, ``$RHYTHM_BUDGETS``, ``$RHYTHM_REPORTS_DIR`` (default ``$RHYTHM_HOME/reports``)
    and ``$RHYTHM_COST_WEBHOOK`` (a secret: read through EnvVar)."""
    return CostResource(
        catalog=os.environ.get("RHYTHM_PRICE_CATALOG", ""),
        budgets=os.environ.get("RHYTHM_BUDGETS", ""),
        reports_dir=os.environ.get("RHYTHM_REPORTS_DIR", str(rhythm_home() / "reports")),
        webhook_url=dg.EnvVar("RHYTHM_COST_WEBHOOK") if os.environ.get("RHYTHM_COST_WEBHOOK") else "",
    )


def _calls(store: MetricsStoreResource, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    with store.open() as s:
        return s.read_table("channel_calls", start, end)


@dg.asset(
    group_name=COST_GROUP,
    partitions_def=daily_partitions,
    deps=[channel_calls],
    kinds={"sqlite"},
    check_specs=[
        dg.AssetCheckSpec(
            "costs_match_catalog",
            asset="channel_costs",
            description="Logged costs agree with the price catalog (within its tolerance).",
        ),
        dg.AssetCheckSpec(
            "every_call_priced",
            asset="channel_costs",
            description="Every call has a cost: logged, or from a channel the catalog prices.",
        ),
    ],  # fmt: skip
    description="Per day, channel and region: calls, tokens, cost (logged, else from the price catalog), latency "
    "p50/p95/p99, error and timeout rates. Kept in the store's channel_costs table (re-running a day replaces it).",
)
def channel_costs(context: dg.AssetExecutionContext, store: MetricsStoreResource, cost: CostResource):
    start, end = window(context)
    calls = _calls(store, start, end)
    table = cost_table(calls, cost.load_catalog())
    with store.open() as s:
        s.write_table("channel_costs", table.assign(ts=start))
    mismatches, unpriced = int(table["cost_mismatches"].sum()), int(table["unpriced"].sum())
    yield dg.MaterializeResult(
        metadata={
            "calls": int(table["calls"].sum()),
            "cost_usd": round(float(table["cost_usd"].sum()), 4),
            "channels": md_table(table, 40),
        }
    )
    for check, column, count in (("costs_match_catalog", "cost_mismatches", mismatches),
                                  ("every_call_priced", "unpriced", unpriced)):  # fmt: skip
        yield dg.AssetCheckResult(
            check_name=check,
            passed=count == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={column: count, "by_route": md_table(table.loc[table[column] > 0, ["channel", "region", column]])},
        )


@dg.asset(
    group_name=COST_GROUP,
    partitions_def=daily_partitions,
    deps=[channel_costs],
    description="The day's routes on cost per call, p95 latency and error rate with the Pareto-optimal ones "
    "marked, and the trade-off curve of traffic mixes: for a sweep of budgets the best mean and p95 latency (HiGHS "
    "LP), and the dual, the cheapest mix meeting each p95 latency SLO.",
)
def cost_pareto_frontier(
    context: dg.AssetExecutionContext, store: MetricsStoreResource, cost: CostResource
) -> dg.MaterializeResult:
    start, end = window(context)
    calls = _calls(store, start, end)
    if calls.empty:
        return dg.MaterializeResult(metadata={"routes": 0, "note": "no calls this day"})
    problem = build_problem(calls, cost.load_catalog())
    routes = route_frontier(problem)
    curve = budget_curve(problem, points=25)
    slos = slo_curve(problem, points=15)
    context.log.info(f"{len(routes)} routes, {int(routes['pareto'].sum())} on the frontier; {len(curve)} budgets")
    return dg.MaterializeResult(
        metadata={
            "routes": len(routes),
            "dashboard": dashboard_link("/cost"),
            "pareto_routes": ", ".join(routes.loc[routes["pareto"], "route"]),
            "frontier": md_table(routes, 60),
            "budget_sweep": md_table(curve.round(4), 30)
            if len(curve) > 1
            else dg.MetadataValue.md(
                "The cheapest mix is also the fastest this day: no trade-off to sweep.\n\n"
                + md_table(curve.round(4)).value
            ),  # fmt: skip
            "slo_sweep": md_table(slos.round(4), 20),
            "plot": plot_frontier(routes, curve, f"cost / latency frontier, {start:%Y-%m-%d}"),
        }
    )


class RoutingPlanConfig(dg.Config):
    budget_usd_per_day: float | None = None  # set: the fastest mix within it
    latency_slo_ms: float | None = None  # p95; set alone: the cheapest mix meeting it
    max_error_rate: float = 0.05


@dg.asset(
    group_name=COST_GROUP,
    partitions_def=daily_partitions,
    deps=[cost_pareto_frontier],
    kinds={"sqlite"},
    description="Traffic shares per request class, hour of day and route from the day's calls, solved exactly "
    "(HiGHS LP) within the rate limits and error ceiling: with a budget the fastest mix, with a p95 SLO the "
    "cheapest meeting it, otherwise the cheapest no slower on average than the day's own allocation. Kept in the "
    "routing_plans table and as JSON in the reports directory.",
)
def routing_plan(
    context: dg.AssetExecutionContext, config: RoutingPlanConfig, store: MetricsStoreResource, cost: CostResource
) -> dg.MaterializeResult:
    start, end = window(context)
    calls = _calls(store, start, end)
    if calls.empty:
        return dg.MaterializeResult(metadata={"note": "no calls this day"})
    try:
        problem = build_problem(calls, cost.load_catalog())
        plan, mode = fit_plan(
            problem, config.budget_usd_per_day, config.latency_slo_ms, config.max_error_rate,
            float(calls["latency_ms"].mean()),
        )  # fmt: skip
    except RoutingInfeasible as exc:
        raise dg.Failure(str(exc), metadata={"cheapest_feasible_budget": exc.min_budget}) from exc
    expected = plan.expected
    doc = plan_document(start, plan, mode)
    path = cost.reports / "plans" / f"{start:%Y-%m-%d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    with store.open() as s:
        s.write_table("routing_plans", plan_row(start, doc))
    observed = problem.calls_per_day.sum()
    return dg.MaterializeResult(
        metadata={
            "mode": mode,
            "dashboard": dashboard_link("/cost"),
            "expected_cost_usd_per_day": round(expected["cost_usd"], 4),
            "expected_mean_latency_ms": round(expected["mean_latency_ms"], 1),
            "expected_p95_latency_ms": round(expected["p95_latency_ms"], 1),
            "expected_error_rate": round(expected["error_rate"], 5),
            "calls_per_day": round(float(observed), 1),
            "shares": md_table(plan.table().round(4), 60),
            "load_vs_limits": md_table(plan.load().round(1), 60),
            "file": dg.MetadataValue.path(str(path)),
        }
    )


def _report_asset(name: str, period: str, partitions: dg.TimeWindowPartitionsDefinition, offset) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name=COST_GROUP,
        partitions_def=partitions,
        deps=[channel_costs],
        description=f"The {period} cost report: spend by channel and region, the trend against the previous period, "
        "the savings the routing plan (fitted on the previous period) would have made replayed over this one, and "
        "the top cost drivers, and the seed's KPIs over the period; markdown and a plot here, and as markdown and "
        "a self-contained HTML file in the reports directory.",
    )
    def _report(
        context: dg.AssetExecutionContext, store: MetricsStoreResource, cost: CostResource, landing: LandingZone
    ):
        start, end = window(context)
        prev_start = start - offset
        with store.open() as s:
            calls = s.read_table("channel_calls", start, end)
            previous = s.read_table("channel_calls", prev_start, start)
        key = context.partition_key
        catalog = cost.load_catalog()
        report = build_report(period, key, start, end, calls, previous, catalog)
        upto = min(end, pd.Timestamp.now(tz="UTC"))  # a period still running: its KPIs so far
        with store.open() as s:
            figures = kpis(s, upto, catalog, landing=Path(landing.root), window=upto - start, spend=False)
            summary = kpi_markdown(figures)
        out = cost.reports / "cost" / period
        out.mkdir(parents=True, exist_ok=True)
        text, png = report.markdown(), report.plot_png()
        (out / f"{key}.md").write_text(text + f"\n![daily spend]({key}.png)\n")
        (out / f"{key}.png").write_bytes(png)
        page = html_page(f"Cost report, {period} {key}", f"{text}\n## The seed's KPIs over the period\n\n{summary}",
                         [(f"{period} {key}: daily spend by channel", png)], "rhythm_pipelines")  # fmt: skip
        (out / f"{key}.html").write_text(page)
        return dg.MaterializeResult(
            metadata={
                "kpis": dg.MetadataValue.md(summary),
                "html": dg.MetadataValue.path(str(out / f"{key}.html")),
                "dashboard": dashboard_link("/cost", hours=round((upto - start) / pd.Timedelta(hours=1), 2)),
                "spend_usd": round(report.total, 4),
                "calls": report.calls,
                "change_vs_previous": None if report.change is None else round(report.change, 4),
                "plan_saving_usd": round(report.savings["saving"], 4)
                if report.savings and "saving" in report.savings
                else None,
                "report": dg.MetadataValue.md(text),
                "plot": png_md(png, f"{period} {key}"),
                "file": dg.MetadataValue.path(str(out / f"{key}.md")),
            }
        )

    return _report


cost_report_daily = _report_asset("cost_report_daily", "daily", daily_partitions, pd.Timedelta(days=1))
cost_report_weekly = _report_asset("cost_report_weekly", "weekly", weekly_partitions, pd.Timedelta(days=7))
cost_report_monthly = _report_asset("cost_report_monthly", "monthly", monthly_partitions, pd.DateOffset(months=1))


cost_daily_job = dg.define_asset_job(
    "cost_daily_job",
    selection=dg.AssetSelection.assets(channel_costs, cost_pareto_frontier, routing_plan, cost_report_daily),
    description="A day's costs, frontier, routing plan and daily cost report.",
)
cost_weekly_job = dg.define_asset_job("cost_weekly_job", selection=dg.AssetSelection.assets(cost_report_weekly))
cost_monthly_job = dg.define_asset_job("cost_monthly_job", selection=dg.AssetSelection.assets(cost_report_monthly))
cost_schedules = [
    dg.build_schedule_from_partitioned_job(
        job,
        name=name,
        hour_of_day=hour,
        minute_of_hour=minute,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=text,
    )  # fmt: skip
    for job, name, hour, minute, text in (
        (
            cost_daily_job,
            "cost_daily_schedule",
            0,
            45,
            "Daily at 00:45 UTC: yesterday's costs, frontier, routing plan and cost report.",
        ),
        (
            cost_weekly_job,
            "cost_weekly_schedule",
            1,
            0,
            "Mondays at 01:00 UTC: last week's cost report (weeks start on Monday).",
        ),
        (cost_monthly_job, "cost_monthly_schedule", 1, 15, "On the 1st at 01:15 UTC: last month's cost report."),
    )  # fmt: skip
]
cost_jobs = [cost_daily_job, cost_weekly_job, cost_monthly_job]


class BudgetAlertConfig(dg.Config):
    alert_id: str
    text: str
    payload: str  # JSON


@dg.op(description="Send one budget alert (webhook + alerts.jsonl) and record it in the budget_alerts table.")
def send_budget_alert(
    context: dg.OpExecutionContext, config: BudgetAlertConfig, store: MetricsStoreResource, cost: CostResource
) -> None:
    payload = json.loads(config.payload)
    delivered, how = cost.notifier().send(config.text, payload)
    context.log.info(f"{config.text} -> {how}")
    with store.open() as s:
        attempts = budget_files.attempts_so_far(s.read_table("budget_alerts", alert_id=config.alert_id)) + 1
        s.write_table(
            "budget_alerts",
            pd.DataFrame([{"ts": pd.Timestamp.now(tz="UTC"), "alert_id": config.alert_id, "budget": payload["budget"],
                           "period_key": payload["period_key"], "threshold": payload["threshold"],
                           "amount": payload["amount"], "spent": payload["spent"], "projected": payload["projected"],
                           "delivered": int(delivered), "attempts": attempts, "detail": how}]),
        )  # fmt: skip
    if not delivered:  # the sensor tries again on a later tick, under a new run key
        raise dg.Failure(f"budget alert not delivered (attempt {attempts} of {MAX_ALERT_ATTEMPTS}): {how}")


@dg.job(description="One budget alert; launched by budget_sensor with run_key = the alert id.",
        tags={"rhythm/kind": "budget_alert"}, executor_def=dg.in_process_executor)  # fmt: skip
def budget_alert_job():
    send_budget_alert()


@dg.sensor(
    job=budget_alert_job,
    minimum_interval_seconds=BUDGET_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Spend to date and projected end-of-period spend against every budget (daily, weekly, monthly; "
    "global, per channel, per region): an alert at 85%, 95%, 100% and on a projected overrun, once per budget, "
    "period and threshold (run_key = alert id, so a daemon restart never sends one twice). The projection is "
    "the forecast of the period's remaining hours from each budget's own hourly spend (fitted once an hour, "
    "kept in the cursor), or the last 24 h's rate with `projection: trailing` in the budgets file.",
)
def budget_sensor(context: dg.SensorEvaluationContext, store: MetricsStoreResource, cost: CostResource):
    now = pd.Timestamp.now(tz="UTC")
    budgets = cost.load_budgets()
    cache = json.loads(context.cursor).get("forecasts", {}) if context.cursor else {}  # the hour's spend forecasts
    with store.open() as s:
        statuses, due = budget_files.check(budgets, s.read_table, cost.load_catalog(), now, cache)
        sent = s.read_table("budget_alerts", now - pd.Timedelta(days=62), now + pd.Timedelta(minutes=1))
    requests = [
        dg.RunRequest(  # one run per alert (a failed delivery is retried under a new key)
            run_key=run_key,
            run_config=dg.RunConfig(
                ops={
                    "send_budget_alert": BudgetAlertConfig(
                        alert_id=a.alert_id, text=a.text, payload=json.dumps(a.payload())
                    )
                }
            ),
            tags={"rhythm/budget": a.status.budget.name},
        )  # fmt: skip
        for a, run_key in budget_files.to_send(due, sent, MAX_ALERT_ATTEMPTS)
    ]
    context.update_cursor(json.dumps({"forecasts": cache}))
    if not requests:
        used = ", ".join(f"{st.budget.name} {st.used:.0%}" for st in statuses) or "no budgets"
        return dg.SkipReason(f"no new budget alert ({used})")
    return requests


cost_assets = [
    channel_costs,
    cost_pareto_frontier,
    routing_plan,
    cost_report_daily,
    cost_report_weekly,
    cost_report_monthly,
]
