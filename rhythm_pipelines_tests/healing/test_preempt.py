"""Acting before a forecast peak goes through healing's rails: the shipped forecast_peak playbook pauses
low-priority work and resumes it when the forecast says the peak ends; dry run, cooldown and the rate limit
hold it back like any other action, and every decision is logged."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from rhythm_pipelines.healing import pause
from rhythm_pipelines.healing.actions import DONE, REFUSED, Actuator
from rhythm_pipelines.healing.detectors import DetectorSettings
from rhythm_pipelines.healing.engine import DRY, RESOLVED, UNRESOLVED, Healer
from rhythm_pipelines.healing.events import KINDS, HealthEvent
from rhythm_pipelines.healing.notify import Notifier
from rhythm_pipelines.healing.playbooks import PlaybookError, load, parse
from rhythm_pipelines.healing.probe import LocalProbe
from rhythm_pipelines.healing.routing import read_routes, set_route
from rhythm_pipelines.healing.safety import Guard

NOW = pd.Timestamp.now(tz="UTC").floor("min")
PEAK = HealthEvent(
    "forecast_peak", "web-01", NOW + pd.Timedelta(minutes=15), "cpu_percent", 91.0,
    {"until": (NOW + pd.Timedelta(hours=1, minutes=15)).isoformat(), "bar": 80.0},
)  # fmt: skip


class FileWork:
    """Pausing through the real pause file (the Dagster work control also cancels queued runs)."""

    def __init__(self, path):
        self.path = path

    def pause_low_priority(self, event_id):
        held = pause.pause(self.path, event_id, pd.Timestamp.now(tz="UTC"))
        return True, "paused" if held else "already paused"

    def resume_low_priority(self, event_id):
        ok = pause.resume(self.path, event_id)
        return ok, "resumed" if ok else "this event held no pause"

    def rerun_failed(self, run_id, attempt, submit=True):
        raise AssertionError("not used")


def run(tmp_path, dry_run=False, history=None, fallbacks=None):
    books = replace(load(), verify_wait_s=0.0, verify_timeout_s=0.0)  # the shipped playbooks, no waiting
    books = replace(books, fallbacks=fallbacks or {})
    if dry_run:
        books = replace(books, safety=replace(books.safety, dry_run=True))
    paused = tmp_path / "paused.json"
    entries = []
    guard = Guard(books.safety, history) if history is not None else Guard(books.safety)
    act = Actuator(books.safety, guard, "this-host", tmp_path, Notifier(None, tmp_path / "alerts.jsonl"),
                   FileWork(paused), books.fallbacks, evidence=lambda e: (True, "n/a"))  # fmt: skip
    probe = LocalProbe(DetectorSettings(), "this-host", act.routes_file, paused_file=paused)
    healer = Healer(books, act, probe, entries.append, run_id="run-p", sleep=lambda s: None)
    return healer, entries, paused


def test_a_forecast_peak_pauses_low_priority_work_until_the_forecast_end(tmp_path):
    healer, entries, paused = run(tmp_path)
    r = healer.heal(PEAK)
    assert r.status == RESOLVED, entries
    assert [a.action for a in r.actions] == ["pause_low_priority"] and r.actions[0].outcome == DONE
    assert pause.paused_by(paused, pd.Timestamp.now(tz="UTC")) == [PEAK.event_id]
    ((step, due, _),) = r.followups
    assert step.action == "resume_low_priority" and due == pd.Timestamp(PEAK.detail["until"])  # when the peak ends
    assert any(e["step"] == "verify" and "paused until" in e["detail"] for e in entries)
    later = healer.heal(PEAK, follow_up=step)  # the follow-up sensor runs it when due
    assert later.status == RESOLVED and pause.paused_by(paused, pd.Timestamp.now(tz="UTC")) == []


def test_a_channel_forecast_over_its_slo_is_rerouted_until_then_and_only_its_own_route_restored(tmp_path):
    slow = HealthEvent("forecast_slo", "gpt@eu", NOW + pd.Timedelta(minutes=10), "latency_p95_ms", 3000.0,
                       {"until": (NOW + pd.Timedelta(hours=1)).isoformat(), "bar": 2000.0})  # fmt: skip
    healer, _, _ = run(tmp_path)
    nothing = healer.heal(slow)
    assert nothing.status == UNRESOLVED and not (tmp_path / "routes.json").exists()  # empty allowlist by default
    healer, entries, _ = run(tmp_path / "with", fallbacks={"gpt@eu": "gpt@us"})
    r = healer.heal(slow)
    assert r.status == RESOLVED and read_routes(tmp_path / "with" / "routes.json")["gpt@eu"]["to"] == "gpt@us"
    ((step, due, _),) = r.followups
    assert step.action == "restore_route" and due == pd.Timestamp(slow.detail["until"])
    set_route(tmp_path / "with" / "routes.json", "gpt@eu", "gpt@ap", NOW + pd.Timedelta(hours=2), "gpt@eu|breaker|x")
    healer.heal(slow, follow_up=step)  # a real incident rerouted it since: its route stays
    assert read_routes(tmp_path / "with" / "routes.json")["gpt@eu"]["to"] == "gpt@ap"


def test_dry_run_decides_and_logs_but_pauses_nothing(tmp_path):
    healer, entries, paused = run(tmp_path, dry_run=True)
    r = healer.heal(PEAK)
    assert r.status == DRY and not paused.exists()
    assert any(e["outcome"] == "dry_run" and "would pause" in e["detail"] for e in entries)


def test_a_cooldown_on_the_host_holds_the_pause_back_and_says_why(tmp_path):
    ago = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=30)
    recent = pd.DataFrame([{"ts": ago, "event_id": "web-01|cpu_spike|x", "source": "web-01", "outcome": DONE}])
    healer, entries, paused = run(tmp_path, history=recent)
    r = healer.heal(PEAK)
    assert r.status == UNRESOLVED and r.actions[0].outcome == REFUSED
    assert r.actions[0].detail.startswith("cooldown: web-01 was acted on")
    assert not paused.exists()
    assert any(e["step"] == "alert" and "held back (cooldown" in e["detail"] for e in entries)


def test_the_hourly_rate_limit_holds_it_back_too(tmp_path):
    now = pd.Timestamp.now(tz="UTC")
    busy = pd.DataFrame([{"ts": now - pd.Timedelta(minutes=i), "event_id": f"e{i}", "source": f"host-{i}",
                          "outcome": DONE} for i in range(30)])  # fmt: skip
    healer, _, paused = run(tmp_path, history=busy)
    r = healer.heal(PEAK)
    assert r.actions[0].outcome == REFUSED and r.actions[0].detail.startswith("rate limit: 30 actions")
    assert not paused.exists()


def test_forecast_playbooks_are_optional_and_at_is_checked():
    others = "".join(
        f"  {k}:\n    soft:\n      - action: notify_admin\n" for k in KINDS if not k.startswith("forecast")
    )
    books = parse("playbooks:\n" + others, "old.yaml")  # a file written before these kinds existed still loads
    assert "forecast_peak" not in books.playbooks
    bad = "  forecast_peak:\n    soft:\n      - {action: resume_low_priority, after_s: 0, at: peak}\n"
    with pytest.raises(
        PlaybookError, match=r"old\.yaml:\d+: playbooks\.forecast_peak\.soft\[0\]\.at: expected event_end"
    ):
        parse("playbooks:\n" + others + bad, "old.yaml")
