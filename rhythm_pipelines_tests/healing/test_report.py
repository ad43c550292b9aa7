import pandas as pd
import pytest

from rhythm_pipelines.healing.report import day_report

DAY = pd.Timestamp("2026-11-22", tz="UTC")


def at(h: float) -> pd.Timestamp:
    return DAY + pd.Timedelta(hours=h)


def entries(event_id, kind, source, steps):
    return [
        {"ts": at(h), "event_id": event_id, "kind": kind, "source": source, "step": step, "level": level,
         "outcome": outcome, "action": action}
        for h, step, level, outcome, action in steps
    ]  # fmt: skip


def test_unresolved_severe_events_stay_open_to_the_end_of_the_window():
    log = pd.DataFrame(
        entries("x", "memory_leak", "h", [
            (20.0, "detect", "", "received", ""), (20.0, "assess", "hard", "hard", ""),
            (20.1, "alert", "hard", "sent", "notify_admin"),
        ])
    )  # fmt: skip
    r = day_report(log, pd.DataFrame(columns=["job", "status"]), DAY, DAY + pd.Timedelta("1D"))
    assert r.availability == pytest.approx(20 / 24) and r.auto_recovery_rate == 0.0


def test_a_day_in_figures():
    log = pd.DataFrame(
        entries("a", "cpu_spike", "h1", [
            (1.0, "detect", "", "received", ""), (1.0, "assess", "critical", "critical", ""),
            (1.0, "act", "critical", "done", "terminate_process"), (2.0, "resolve", "critical", "resolved", ""),
        ])
        + entries("b", "memory_leak", "h1", [
            (1.5, "detect", "", "received", ""), (1.5, "assess", "soft", "soft", ""),
            (1.5, "act", "soft", "done", "clear_cache"), (1.5, "escalate", "soft", "hard", ""),
            (1.5, "act", "hard", "refused", "terminate_process"), (1.6, "alert", "hard", "sent", "notify_admin"),
        ])
        + entries("c", "process_zombie", "h2", [
            (5.0, "detect", "", "received", ""), (5.0, "assess", "soft", "soft", ""),
            (5.0, "act", "soft", "done", "reap_zombies"), (5.5, "resolve", "soft", "resolved", ""),
        ])
        + entries("d", "cpu_spike", "h1", [
            (8.0, "detect", "", "received", ""), (8.0, "verify", "", "already_resolved", ""),
        ])
    )  # fmt: skip
    runs = pd.DataFrame({"job": ["etl"] * 8 + ["other"] * 2, "status": ["SUCCESS"] * 7 + ["FAILURE"] * 3})
    r = day_report(log, runs, DAY, DAY + pd.Timedelta("1D"))
    s = r.summary()
    assert s["events"] == 4 and s["actions"] == 4
    assert s["mttr_s"]["mean"] == pytest.approx((3600 + 1800) / 2)
    assert s["auto_recovery_rate"] == pytest.approx(2 / 3)  # d ended on its own: not counted
    # severe: a (critical) 01:00-02:00 only; b was assessed soft (its escalation was the response, not its severity)
    assert s["availability"] == pytest.approx(1 - 1 / 24)
    assert s["task_failure_rate"] == pytest.approx(0.3)
    top = r.top_causes()
    assert top.iloc[0][["kind", "source", "events", "resolved"]].tolist() == ["cpu_spike", "h1", 2, 1]
    counts = r.actions.set_index(["action", "outcome"])["count"].to_dict()
    assert counts == {
        ("clear_cache", "done"): 1, ("reap_zombies", "done"): 1, ("terminate_process", "done"): 1,
        ("terminate_process", "refused"): 1,
    }  # fmt: skip


def test_a_quiet_day():
    r = day_report(
        pd.DataFrame(columns=["ts", "event_id", "step"]),
        pd.DataFrame(columns=["job", "status"]),
        DAY,
        DAY + pd.Timedelta("1D"),
    )
    assert r.summary() == {
        "events": 0, "actions": 0, "mttr_s": {"mean": None, "p50": None, "p95": None}, "auto_recovery_rate": None,
        "availability": 1.0, "task_failure_rate": None, "runs": 0, "failed_runs": 0,
    }  # fmt: skip


def test_a_recheck_that_finds_it_back_reopens_and_a_report_on_our_own_process_is_not_an_incident():
    log = pd.DataFrame(
        entries("e1", "cpu_spike", "web-01", [
            (1.0, "detect", "", "received", ""), (1.0, "assess", "soft", "soft", ""),
            (1.1, "resolve", "soft", "resolved", ""), (1.2, "recheck", "", "still_active", "recheck"),
            (1.2, "alert", "", "sent", "notify_admin"),
        ])
        + entries("e2", "memory_leak", "web-01/proc/7", [
            (2.0, "detect", "", "received", ""), (2.0, "decide", "", "own_process", ""),
            (2.0, "alert", "", "sent", "notify_admin"),
        ])
    )  # fmt: skip
    report = day_report(log, pd.DataFrame(columns=["job", "status"]), DAY, DAY + pd.Timedelta("1D"))
    events = report.events.set_index("event_id")
    assert events["status"].to_dict() == {"e1": "unresolved", "e2": "reported"}
    assert pd.isna(events.loc["e1", "closed"])  # open again
    assert report.auto_recovery_rate == 0.0  # e1 counted and not recovered; e2 is not healing's to recover
