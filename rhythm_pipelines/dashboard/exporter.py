"""Prometheus exposition of the same KPIs and live series the page shows (``/metrics``, names ``rhythm_*``).

A custom collector: every scrape reads the snapshot the page reads (cached for a few seconds), so PromQL
and ``/api/kpis`` agree. Healing actions are counters (all of the stored log: they only grow); Dagster's
queued/running runs and the last day's failures per job come from the instance when one is configured
(Dagster exports no metrics itself: dagster-io/dagster#4480).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

KPI_GAUGES = {  # /api/kpis key: (metric name, help)
    "availability": ("rhythm_availability_ratio", "Share of the last 24 h with no open hard or critical incident."),
    "auto_recovery_rate": ("rhythm_auto_recovery_ratio", "Incidents resolved by healing over those it acted on, 24 h."),
    "mttr_s": ("rhythm_mttr_seconds", "Mean detection-to-resolution time of resolved incidents, 24 h."),
    "mttr_p95_s": ("rhythm_mttr_p95_seconds", "95th percentile of detection-to-resolution time, 24 h."),
    "task_failure_rate": ("rhythm_task_failure_ratio", "Failed over finished runs (healing runs left out), 24 h."),
    "spend_today_usd": ("rhythm_spend_today_usd", "Spend on API/LLM calls since midnight UTC."),
    "open_incidents": ("rhythm_open_incidents", "Incidents open now (unresolved, suppressed or being handled)."),
    "anomaly_precision": ("rhythm_anomaly_precision_ratio", "Anomaly events that match a labelled incident, 24 h."),
    "anomaly_recall": ("rhythm_anomaly_recall_ratio", "Labelled incidents found by an anomaly event, 24 h."),
    "forecast_mape": ("rhythm_forecast_mape_ratio", "Mean absolute percentage error of served forecasts, 24 h."),
}


def metric_name(raw: str) -> str:
    """A stored metric's name as a Prometheus name part: ``[a-z0-9_]``."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", raw).strip("_").lower() or "value"


class RhythmCollector(Collector):
    """Yields the gauges and counters of one snapshot (``snapshot()`` -> dict, see ``app.Snapshots``)."""

    def __init__(self, snapshot: Callable[[], dict]):
        self.snapshot = snapshot

    def collect(self) -> Iterator:
        snap = self.snapshot()
        kpis = snap["kpis"]
        age = GaugeMetricFamily("rhythm_snapshot_age_seconds", "Age of the figures exported (stale: refresh failing).")
        age.add_metric([], float(kpis.get("snapshot_age_s") or 0.0))
        yield age
        for key, (name, doc) in KPI_GAUGES.items():
            value = kpis.get(key)
            if value is not None:
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], float(value))
                yield g
        by = ["budget", "period"]
        spent = GaugeMetricFamily("rhythm_budget_spent_usd", "Spend so far in the budget's period.", labels=by)
        amount = GaugeMetricFamily("rhythm_budget_amount_usd", "The budget's amount.", labels=by)
        projected = GaugeMetricFamily("rhythm_budget_projected_usd", "Projected spend at the period's end.", labels=by)
        for b in kpis.get("budgets", []):
            labels = [b["name"], b["period"]]
            spent.add_metric(labels, b["spent"])
            amount.add_metric(labels, b["amount"])
            projected.add_metric(labels, b["projected"])
        yield from (spent, amount, projected)
        yield from self._series(snap["latest"])
        actions = CounterMetricFamily(
            "rhythm_healing_actions", "Healing actions taken, by event kind, action and outcome.",
            labels=["kind", "action", "outcome"],
        )  # fmt: skip
        for (kind, action, outcome), n in sorted(snap["actions"].items()):
            actions.add_metric([kind, action, outcome], n)
        yield actions
        if snap.get("dagster_runs") is not None:
            runs = GaugeMetricFamily(
                "rhythm_dagster_runs", "Dagster runs per job: queued and started now, failed in the last 24 h.",
                labels=["dagster_job", "status"],  # not "job": Prometheus keeps that for the scrape job
            )  # fmt: skip
            for (job, status), n in sorted(snap["dagster_runs"].items()):
                runs.add_metric([job, status], n)
            yield runs

    @staticmethod
    def _series(latest) -> Iterator:
        """``rhythm_host_<metric>{host}`` and ``rhythm_channel_<metric>{channel, region}``: the latest values."""
        families: dict[str, GaugeMetricFamily] = {}
        seen: set[tuple] = set()  # two stored names may fold into one (mem.percent, mem_percent): keep the first
        for r in latest.itertuples(index=False):
            if "@" in r.source:
                channel, region = r.source.split("@", 1)
                name, labels = f"rhythm_channel_{metric_name(r.metric)}", ["channel", "region"]
                values = [channel, region]
            else:
                name, labels, values = f"rhythm_host_{metric_name(r.metric)}", ["host"], [r.source]
            if (name, *values) in seen:
                continue
            seen.add((name, *values))
            fam = families.get(name)
            if fam is None:
                fam = families[name] = GaugeMetricFamily(name, f"Latest {r.metric} (last 15 min).", labels=labels)
            fam.add_metric(values, float(r.value))
        yield from families.values()
