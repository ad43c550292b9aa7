import json
import os
import time

import pandas as pd

from rhythm_pipelines.healing.actions import Actuator
from rhythm_pipelines.healing.engine import ALREADY_RESOLVED, DRY, REPORTED, RESOLVED, SUPPRESSED, UNRESOLVED, Healer
from rhythm_pipelines.healing.events import KINDS, HealthEvent
from rhythm_pipelines.healing.notify import Notifier
from rhythm_pipelines.healing.playbooks import Step, parse
from rhythm_pipelines.healing.safety import Guard

NOW = pd.Timestamp.now(tz="UTC")


class ScriptedProbe:
    """Readings and verdicts in the order a test scripts them (the real probe reads psutil and the store)."""

    def __init__(self, readings: dict, verdicts: list[bool]):
        self._readings, self.verdicts, self.calls = readings, list(verdicts), 0

    def readings(self, event):
        return dict(self._readings)

    def resolved(self, event, since):
        self.calls += 1
        return (self.verdicts.pop(0) if self.verdicts else False), f"check {self.calls}"


def books(tmp_path, extra_safety: str = "", kind_book: str = ""):
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    others = "".join(f"  {k}:\n    soft:\n      - action: notify_admin\n" for k in KINDS if k != "memory_leak")
    text = (
        f"safety:\n  cache_dirs: ['{cache}']\n{extra_safety}"
        "verify: {wait_s: 0, timeout_s: 0}\n"
        "playbooks:\n"
        + (
            kind_book
            or "  memory_leak:\n"
            "    soft:\n      - action: clear_cache\n      - {action: recheck, after_s: 300}\n"
            "    hard:\n      - action: clear_cache\n"
            "    critical:\n      - action: clear_cache\n"
        )
        + others
    )
    return parse(text, "test.yaml"), cache


def healer(tmp_path, b, probe, history=None):
    entries = []
    guard = Guard(b.safety, history) if history is not None else Guard(b.safety)
    act = Actuator(
        b.safety,
        guard,
        "h",
        tmp_path / "state",
        Notifier(None, tmp_path / "alerts.jsonl"),
        evidence=lambda e: (True, "confirmed (test: host 'h' is simulated)"),
    )
    return Healer(b, act, probe, entries.append, run_id="run-1", sleep=lambda s: None), entries


def fill(cache):
    hour_ago = time.time() - 3600  # older than clear_cache's default cutoff (300 s)
    for i in range(3):
        (cache / f"f{i}").write_bytes(b"x")
        os.utime(cache / f"f{i}", (hour_ago, hour_ago))


def test_resolved_at_the_assessed_level(tmp_path):
    b, cache = books(tmp_path)
    fill(cache)
    h, entries = healer(tmp_path, b, ScriptedProbe({"mem_percent": 78}, [False, True]))
    r = h.heal(HealthEvent("memory_leak", "h", NOW, "mem_percent", 78))
    assert (r.status, r.level) == (RESOLVED, "hard")
    assert [e["step"] for e in entries] == ["detect", "assess", "act", "verify", "resolve"]
    assert entries[1]["detail"] == "mem_percent = 78 > 75" and entries[2]["outcome"] == "done"
    assert list(cache.iterdir()) == []
    assert len({e["entry_id"] for e in entries}) == len(entries)


def test_an_unresolved_level_escalates_then_the_top_level_alerts(tmp_path):
    b, cache = books(tmp_path)
    fill(cache)
    h, entries = healer(tmp_path, b, ScriptedProbe({"mem_percent": 65}, [False, False, False]))
    r = h.heal(HealthEvent("memory_leak", "h", NOW, "mem_percent", 65))
    steps = [(e["step"], e["level"], e["outcome"]) for e in entries]
    assert steps[:6] == [
        ("detect", "", "received"),
        ("assess", "soft", "soft"),
        ("act", "soft", "done"),
        ("schedule", "soft", "scheduled"),
        ("verify", "soft", "still_active"),
        ("escalate", "soft", "hard"),
    ]
    # the hard level's clear_cache finds nothing left: still not resolved, so on to critical, then the alert
    assert steps[6:] == [
        ("act", "hard", "noop"),
        ("verify", "hard", "still_active"),
        ("escalate", "hard", "critical"),
        ("act", "critical", "noop"),
        ("verify", "critical", "still_active"),
        ("alert", "critical", "sent"),
    ]
    assert r.status == UNRESOLVED and r.level == "critical"
    assert [s.action for s, _, _ in r.followups] == ["recheck"]
    alert = json.loads((tmp_path / "alerts.jsonl").read_text().splitlines()[-1])
    assert "unresolved at critical: the highest level did not resolve it" in alert["text"]


def test_a_rate_limit_is_never_escalated_around(tmp_path):
    b, cache = books(tmp_path, "  max_actions_per_hour: 1\n")
    fill(cache)
    hist = pd.DataFrame(
        [(NOW - pd.Timedelta(minutes=5), "other-event", "elsewhere", "done")],
        columns=["ts", "event_id", "source", "outcome"],
    )
    h, entries = healer(tmp_path, b, ScriptedProbe({"mem_percent": 65}, [False, False]), hist)
    r = h.heal(HealthEvent("memory_leak", "h", NOW, "mem_percent", 65))
    assert r.status == UNRESOLVED and r.level == "soft" and len(list(cache.iterdir())) == 3
    assert [e["step"] for e in entries][-1] == "alert" and "held back (rate limit" in entries[-1]["detail"]


def test_an_event_over_before_we_act_is_only_logged(tmp_path):
    b, cache = books(tmp_path)
    fill(cache)
    h, entries = healer(tmp_path, b, ScriptedProbe({}, [True]))
    r = h.heal(HealthEvent("memory_leak", "h", NOW))
    assert r.status == ALREADY_RESOLVED and len(list(cache.iterdir())) == 3


def test_dry_run_logs_what_it_would_do(tmp_path):
    b, cache = books(tmp_path, "  dry_run: true\n")
    fill(cache)
    h, entries = healer(tmp_path, b, ScriptedProbe({"mem_percent": 90}, [False]))
    r = h.heal(HealthEvent("memory_leak", "h", NOW))
    assert r.status == DRY and len(list(cache.iterdir())) == 3
    assert [e["outcome"] for e in entries if e["step"] == "act"] == ["dry_run"]
    assert "would remove 3 file(s)" in next(e["detail"] for e in entries if e["step"] == "act")


def test_a_flapping_target_gets_an_alert_not_actions(tmp_path):
    b, cache = books(tmp_path, "  flap_max_events: 2\n")
    fill(cache)
    hist = pd.DataFrame(
        [(NOW - pd.Timedelta(minutes=i), f"old{i}", "h", "received") for i in (1, 2)],
        columns=["ts", "event_id", "source", "outcome"],
    )
    h, entries = healer(tmp_path, b, ScriptedProbe({}, [False]), hist)
    r = h.heal(HealthEvent("memory_leak", "h", NOW))
    assert r.status == SUPPRESSED and len(list(cache.iterdir())) == 3
    assert [e["step"] for e in entries] == ["detect", "decide", "alert"]


def test_a_follow_up_runs_its_one_step(tmp_path):
    b, _ = books(tmp_path)
    step = b.playbook("memory_leak").steps("soft")[1]
    h, entries = healer(tmp_path, b, ScriptedProbe({}, [False]))
    r = h.heal(HealthEvent("memory_leak", "h", NOW), follow_up=step)
    assert r.status == UNRESOLVED and [e["step"] for e in entries] == ["recheck", "alert"]
    resume = parse(
        "playbooks:\n" + "".join(f"  {k}:\n    soft:\n      - action: notify_admin\n" for k in KINDS), "t.yaml"
    )
    h, entries = healer(tmp_path, resume, ScriptedProbe({}, []))
    r = h.heal(HealthEvent("cpu_spike", "h", NOW), follow_up=Step("resume_low_priority", {}, 600))
    assert entries[-1]["outcome"] == "noop" and r.status == RESOLVED  # nothing was paused: nothing left to do


SHIPPED_LIKE_LEAK = (
    "  memory_leak:\n"
    "    soft:\n      - action: clear_cache\n      - {action: terminate_process, params: {select: event}}\n"
    "    hard:\n      - {action: terminate_process, params: {select: top_memory}}\n"
    "    critical:\n      - {action: terminate_process, params: {select: top_memory}}\n"
    "      - action: notify_admin\n      - action: prepare_reboot\n"
)


def test_with_nothing_allowlisted_a_process_leak_is_reported_once_at_its_level(tmp_path):
    """The report's case: empty allowlists, a process leak. No climb to critical, no reboot plan: one "nothing
    allowed" decision and one alert at the assessed level."""
    b = parse(
        "verify: {wait_s: 0, timeout_s: 0}\nplaybooks:\n"
        + SHIPPED_LIKE_LEAK
        + "".join(f"  {k}:\n    soft:\n      - action: notify_admin\n" for k in KINDS if k != "memory_leak"),
        "test.yaml",
    )
    probe = ScriptedProbe({"mem_percent": 40}, [False])
    h, entries = healer(tmp_path, b, probe)
    r = h.heal(HealthEvent("memory_leak", "h/proc/4242", NOW, "proc_rss_bytes", 5e9))
    assert [(e["step"], e["level"], e["outcome"]) for e in entries] == [
        ("detect", "", "received"),
        ("assess", "soft", "soft"),
        ("decide", "soft", "nothing_allowed"),
        ("alert", "soft", "sent"),
    ]
    assert (r.status, r.level, r.actions) == (UNRESOLVED, "soft", [])
    assert "no cache dir is configured" in entries[2]["detail"] and "no process is allowlisted" in entries[2]["detail"]
    (alert,) = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert "unresolved at soft: nothing allowed at soft" in json.loads(alert)["text"]
    assert not (tmp_path / "state" / "reboot_plans").exists()


def test_escalation_skips_levels_that_cannot_act_and_says_so_once(tmp_path):
    b, cache = books(
        tmp_path,
        kind_book="  memory_leak:\n"
        "    soft:\n      - action: clear_cache\n"
        "    hard:\n      - {action: terminate_process, params: {select: top_memory}}\n      - action: prepare_reboot\n"
        "    critical:\n      - action: notify_admin\n      - action: clear_cache\n",
    )
    fill(cache)
    h, entries = healer(tmp_path, b, ScriptedProbe({"mem_percent": 65}, [False, False, False]))
    r = h.heal(HealthEvent("memory_leak", "h", NOW, "mem_percent", 65))
    steps = [(e["step"], e["level"], e["outcome"]) for e in entries]
    assert steps[2:] == [
        ("act", "soft", "done"),
        ("verify", "soft", "still_active"),
        ("decide", "soft", "nothing_allowed"),  # hard: no process allowlisted, and 65 % is no reason to reboot
        ("escalate", "soft", "critical"),
        ("act", "critical", "done"),
        ("act", "critical", "noop"),
        ("verify", "critical", "still_active"),
        ("alert", "critical", "sent"),
    ]
    assert (
        "nothing allowed at hard" in entries[4]["detail"]
        and "read mem_percent = 65" in entries[4]["detail"]
    )
    assert r.level == "critical" and not (tmp_path / "state" / "reboot_plans").exists()


def test_an_event_about_this_instances_own_process_is_reported_never_acted_on(tmp_path):
    b, cache = books(tmp_path)
    fill(cache)
    h, entries = healer(tmp_path, b, ScriptedProbe({"mem_percent": 90}, [False]))
    ev = HealthEvent("memory_leak", "h/proc/77", NOW, "proc_rss_bytes", 4e8, {"dagster_role": "code server"})
    r = h.heal(ev)
    assert [(e["step"], e["outcome"]) for e in entries] == [
        ("detect", "received"),
        ("decide", "own_process"),
        ("alert", "sent"),
    ]
    assert r.status == REPORTED and r.actions == [] and len(list(cache.iterdir())) == 3
    assert "Dagster's own code server (h/proc/77)" in json.loads((tmp_path / "alerts.jsonl").read_text())["text"]


def test_a_reboot_plan_needs_the_host_at_a_critical_bar_not_a_host_with_room(tmp_path):
    book = (
        "  memory_leak:\n    soft:\n      - action: clear_cache\n"
        "    critical:\n      - action: prepare_reboot\n      - action: notify_admin\n"
    )
    b, cache = books(tmp_path, kind_book=book)
    fill(cache)
    h, entries = healer(tmp_path, b, ScriptedProbe({"mem_percent": 4.6}, [False, False]))
    r = h.heal(HealthEvent("memory_leak", "h", NOW, "mem_percent", 4.6))  # the chaos warm-up's host "leak"
    assert [(e["step"], e["outcome"]) for e in entries][-2:] == [("decide", "nothing_allowed"), ("alert", "sent")]
    assert "mem_percent > 85); read mem_percent = 4.6" in entries[-2]["detail"] and r.level == "soft"
    assert not (tmp_path / "state" / "reboot_plans").exists()
    h, entries = healer(tmp_path, b, ScriptedProbe({"mem_percent": 91.0}, [False, False]))
    h.heal(HealthEvent("memory_leak", "h", NOW, "mem_percent", 91.0))  # the host itself is near full: a plan
    assert len(list((tmp_path / "state" / "reboot_plans").iterdir())) == 1
