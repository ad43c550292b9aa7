"""What runs by itself: every asset has a schedule or a sensor behind it, today's healing report exists, and an
incident left unresolved fails a check."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from rhythm_pipelines.definitions import defs
from rhythm_pipelines.defs.healing import healing_report, healing_report_schedule, incidents_resolved

ON_DEMAND = {"detector_scorecard"}  # an evaluation an operator asks for (NAB and the simulator), not a feed
REPORTED = {"schedule_plan": "predictive_scheduler"}  # a sensor records these itself (its asset events)


def test_every_asset_is_refreshed_by_a_schedule_or_a_sensor():
    repo = defs.get_repository_def()
    covered: set[dg.AssetKey] = set()
    jobs = [s.job for s in repo.schedule_defs] + [j for s in repo.sensor_defs if s.has_jobs for j in s.jobs]
    for job in jobs:
        covered |= set(repo.get_job(job.name).asset_layer.selected_asset_keys)
    never = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys() if k not in covered} - ON_DEMAND
    assert never - REPORTED.keys() == set(), f"assets no schedule or sensor materializes: {sorted(never)}"
    assert {s.name for s in repo.sensor_defs} >= set(REPORTED.values())
    names = {s.name: s for s in repo.schedule_defs}
    assert {"cost_daily_schedule", "cost_weekly_schedule", "cost_monthly_schedule"} <= names.keys()
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in names.values())


def test_the_healing_report_schedule_refreshes_today_and_finishes_yesterday():
    def keys(at: datetime) -> list[str]:
        ctx = dg.build_schedule_context(scheduled_execution_time=at)
        return [r.partition_key for r in healing_report_schedule(ctx)]

    assert keys(datetime(2026, 11, 30, 13, 10, tzinfo=UTC)) == ["2026-11-30"]
    assert keys(datetime(2026, 11, 30, 0, 10, tzinfo=UTC)) == ["2026-11-29", "2026-11-30"]
    today = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    assert today in healing_report.partitions_def.get_partition_keys()  # no DagsterUnknownPartitionError today


def _log(rows, run_id):
    frame = pd.DataFrame(rows, columns=["ts", "event_id", "step", "level", "outcome"])
    return frame.assign(
        entry_id=[f"{run_id}:{e}:{i}" for i, e in enumerate(frame["event_id"])],
        run_id=run_id,
        kind="memory_leak",
        source="web-01",
        action="",
    )


def test_an_unresolved_incident_fails_the_check_until_a_later_one_on_it_resolves(healing_resources):
    now = pd.Timestamp.now(tz="UTC")
    bad = _log(
        [
            (now - pd.Timedelta(hours=2), "e1", "detect", "", "received"),
            (now - pd.Timedelta(hours=2), "e1", "assess", "soft", "soft"),
            (now - pd.Timedelta(hours=2), "e1", "decide", "soft", "nothing_allowed"),
            (now - pd.Timedelta(hours=2), "e1", "alert", "soft", "sent"),
        ],
        "run-a",
    )
    replayed = _log([(now - pd.Timedelta(hours=3), "r1", "detect", "", "received")], "replay:r1")
    with healing_resources["store"].open() as s:
        s.write_table("healing_log", pd.concat([bad, replayed]))
    result = incidents_resolved(healing_resources["store"])
    assert not result.passed and result.metadata["unresolved"].value == 1
    assert result.metadata["events_24h"].value == 1  # the replayed (dry-run) event is not an incident
    good = _log(
        [
            (now - pd.Timedelta(hours=1), "e2", "detect", "", "received"),
            (now - pd.Timedelta(hours=1), "e2", "resolve", "soft", "resolved"),
        ],
        "run-b",
    )
    with healing_resources["store"].open() as s:
        s.write_table("healing_log", good)
    assert incidents_resolved(healing_resources["store"]).passed


def test_the_report_keeps_replayed_decisions_out_of_its_kpis_but_on_its_timeline(healing_resources):
    day = pd.Timestamp("2026-11-20", tz="UTC")
    real = _log(
        [
            (day + pd.Timedelta(hours=1), "e1", "detect", "", "received"),
            (day + pd.Timedelta(hours=1, minutes=1), "e1", "resolve", "soft", "resolved"),
        ],
        "run-a",
    )
    dry = _log(
        [
            (day + pd.Timedelta(hours=5), "r1", "detect", "", "received"),
            (day + pd.Timedelta(hours=5), "r1", "assess", "hard", "hard"),
            (day + pd.Timedelta(hours=5), "r1", "decide", "hard", "nothing_allowed"),
            (day + pd.Timedelta(hours=6), "r1", "clear", "", "cleared"),
        ],
        "replay:r1",
    )
    with healing_resources["store"].open() as s:
        s.write_table("healing_log", pd.concat([real, dry]))
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [healing_report], partition_key="2026-11-20", resources=healing_resources, instance=instance
        )
    md = result.asset_materializations_for_node("healing_report")[0].metadata
    assert md["events"].value == 1 and md["replayed_events"].value == 1
    assert md["auto_recovery_rate"].value == 1.0 and md["availability"].value == 1.0
    assert "dry-run replay" in md["timeline"].value and md["incidents"].value.count("memory_leak") == 2
