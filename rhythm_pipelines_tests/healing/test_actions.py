import json
import os
import pwd
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import psutil
import pytest

from rhythm_pipelines.healing import detectors as d
from rhythm_pipelines.healing.actions import DONE, DRY_RUN, NOOP, REFUSED, Actuator
from rhythm_pipelines.healing.detectors import DetectorSettings, Watch
from rhythm_pipelines.healing.events import HealthEvent
from rhythm_pipelines.healing.evidence import LocalEvidence
from rhythm_pipelines.healing.notify import Notifier
from rhythm_pipelines.healing.playbooks import Step
from rhythm_pipelines.healing.processes import ProcInfo, snapshot
from rhythm_pipelines.healing.routing import route_for
from rhythm_pipelines.healing.safety import Guard, ProcessRule, SafetyPolicy

HOST = socket.gethostname()
NOW = pd.Timestamp.now(tz="UTC")
ME = pwd.getpwuid(os.getuid()).pw_name


def confirmed(event: HealthEvent) -> tuple[bool, str]:
    """Evidence stub: these tests are about the rails, not about reading this machine."""
    return True, "confirmed (test)"


def actuator(tmp_path, policy: SafetyPolicy, history=None, **kw) -> Actuator:
    guard = Guard(policy, history) if history is not None else Guard(policy)
    return Actuator(policy, guard, HOST, tmp_path / "state", **{"now": lambda: NOW, "evidence": confirmed, **kw})


def mine(tag: str) -> ProcessRule:
    """Allow exactly the processes a test started (their command lines carry its tag), owned by us."""
    return ProcessRule(cmdline=f".*{re.escape(tag)}.*", user=ME)


class RecordingSignaller:
    """Records what would be signalled and signals nothing: for the rails around processes we did not start."""

    def __init__(self):
        self.sent: list[tuple[str, int]] = []

    def terminate(self, info: ProcInfo, grace_s: float) -> str:
        self.sent.append(("terminate", info.pid))
        return "terminated"

    def sigchld(self, info: ProcInfo) -> None:
        self.sent.append(("SIGCHLD", info.pid))


def cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_top_cpu_terminates_the_allowlisted_burner_and_never_the_bystander(tmp_path, spawn):
    burner, tag = spawn("burn")
    bystander, _ = spawn("burn")  # just as busy, not allowlisted
    policy = SafetyPolicy(processes=(mine(tag),))
    rec = actuator(tmp_path, policy).run(Step("terminate_process", {"select": "top_cpu", "grace_s": 2, "count": 1}),
                                         HealthEvent("cpu_spike", HOST, NOW), "hard")  # fmt: skip
    assert rec.outcome == DONE, rec.detail
    assert [t["pid"] for t in rec.touched] == [burner.pid]
    burner.wait(timeout=5)
    assert alive(bystander.pid)  # just as busy, never touched (on a loaded machine it may not even rank top 3)
    assert "not allowlisted, left alone" in rec.detail


def test_an_empty_allowlist_touches_nothing(tmp_path, spawn):
    p, _ = spawn("burn")
    rec = actuator(tmp_path, SafetyPolicy()).run(Step("terminate_process", {"select": "top_cpu"}),
                                                  HealthEvent("cpu_spike", HOST, NOW), "critical")  # fmt: skip
    assert rec.outcome == NOOP and rec.touched == []
    assert alive(p.pid)
    ev = HealthEvent("process_hung", f"{HOST}/proc/{p.pid}", NOW, detail={"pid": p.pid})
    rec = actuator(tmp_path, SafetyPolicy()).run(Step("terminate_process", {"select": "event"}), ev, "soft")
    assert rec.outcome == REFUSED and alive(p.pid)


def test_never_pid_1_ourselves_or_dagster_even_when_a_rule_matches_them(tmp_path):
    signaller = RecordingSignaller()
    policy = SafetyPolicy(processes=(ProcessRule(name="[a-z0-9_.-]*-never-a-real-name", user=ME),))
    assert policy.process_refusal(1, "init", "/sbin/init", "root", {1}).startswith("protected")
    everything = ProcessRule(name=".*", user=ME)  # too broad to build a policy with, so forced past the check
    object.__setattr__(policy, "processes", (everything,))
    for pid in (1, os.getpid()):
        ev = HealthEvent("process_hung", f"{HOST}/proc/{pid}", NOW, detail={"pid": pid})
        rec = actuator(tmp_path, policy, signaller=signaller).run(
            Step("terminate_process", {"select": "event"}), ev, "soft"
        )
        assert rec.outcome == REFUSED, rec.detail
    assert signaller.sent == [], "a catch-all rule smuggled into a policy still matches nothing"
    for cmd, role in [
        ("/venv/bin/python3 /venv/bin/dagster-daemon run", "daemon"),
        ("/venv/bin/python /venv/bin/dagster api grpc --lazy-load-user-code -m x", "code server"),
        ("/venv/bin/python -m dagster api execute_run {}", "run worker"),
        ("/venv/bin/python3 /venv/bin/dagster-webserver -h 127.0.0.1", "webserver"),
        ("/venv/bin/python3 -m dagster_webserver -h 127.0.0.1 -p 3000 -w workspace.yaml", "webserver"),
        ("/venv/bin/python3 -m dagster._daemon run -w workspace.yaml", "daemon"),
        ("/venv/bin/python3 /venv/bin/dagster-graphql -w /tmp/ws.yaml -t q", "graphql client"),
    ]:
        wide = SafetyPolicy(processes=(ProcessRule(cmdline=".*/venv/bin/.*", user=ME),))
        assert (
            wide.process_refusal(4242, "python3", cmd, ME, set()) == f"Dagster's own {role}: never signalled by healing"
        )
    assert wide.process_refusal(4242, "python3", "/venv/bin/python3 my_worker.py", ME, set()) is None


def test_allowlist_rules_match_whole_command_lines_and_need_an_owner():
    rule = ProcessRule(cmdline="my_worker", user="svc")
    assert not rule.matches("python3", "/usr/bin/python3 my_worker --x", "svc"), "a substring is not enough"
    assert ProcessRule(cmdline=".*my_worker.*", user="svc").matches("python3", "/usr/bin/python3 my_worker --x", "svc")
    assert not ProcessRule(cmdline=".*my_worker.*", user="svc").matches("python3", "python3 my_worker", "root")
    for bad, why in [
        (ProcessRule(cmdline=".*my_worker.*"), "needs `user`"),
        (ProcessRule(name=".*", user="svc"), "too broad"),
        (ProcessRule(cmdline="", user="svc"), "too broad"),
        (ProcessRule(cmdline=".", user="svc"), "too broad"),
        (ProcessRule(name="python3?", user="svc"), "too broad"),
        (ProcessRule(cmdline=".{52,}", user="root"), "too broad: a rule must name something"),
    ]:
        assert why in bad.allowlist_problem()
        with pytest.raises(ValueError, match=why.replace("`", ".")):
            SafetyPolicy(processes=(bad,))


def test_guard_decisions_with_a_recording_signaller(tmp_path):
    """Which of the machine's processes would be chosen: nothing is signalled, whatever is running."""
    signaller = RecordingSignaller()
    everyone_mine = SafetyPolicy(processes=(ProcessRule(name="[a-z]+-rhythm-test-[0-9a-f]{8}", user=ME),))
    act = actuator(tmp_path, everyone_mine, signaller=signaller)
    rec = act.run(
        Step("terminate_process", {"select": "top_memory", "count": 3}), HealthEvent("memory_leak", HOST, NOW), "hard"
    )
    assert rec.outcome == NOOP and signaller.sent == []  # no process has such a name
    ours = psutil.Process()
    me = ProcInfo(
        os.getpid(), ours.ppid(), ours.name(), " ".join(ours.cmdline()), ME, "running", 0.0, 1, ours.create_time()
    )
    assert act._refusal(me).startswith("protected")


def test_no_local_evidence_no_local_action(tmp_path, spawn):
    """A host name in the store is only what a writer asserted: the event must hold on this machine."""
    p, tag = spawn("idle")
    signaller = RecordingSignaller()
    doubting = lambda e: (False, "cpu_percent here 3.0 (not over 80)")  # noqa: E731
    policy = SafetyPolicy(processes=(mine(tag),), temp_roots=(str(tmp_path),))
    act = actuator(tmp_path, policy, signaller=signaller, evidence=doubting)
    for step, ev in [
        (Step("terminate_process", {"select": "top_cpu"}), HealthEvent("cpu_spike", HOST, NOW)),
        (Step("terminate_process", {"select": "event"}), HealthEvent("process_hung", f"{HOST}/proc/{p.pid}", NOW)),
        (Step("remove_temp_files", {"older_than_s": 0}), HealthEvent("disk_pressure", f"{HOST}:{tmp_path}", NOW)),
    ]:
        rec = act.run(step, ev, "hard")
        assert rec.outcome == REFUSED and "not confirmed on this machine: cpu_percent here" in rec.detail
    assert signaller.sent == [] and alive(p.pid)


def test_dry_run_decides_and_does_nothing(tmp_path, spawn):
    p, tag = spawn("idle")
    policy = SafetyPolicy(dry_run=True, processes=(mine(tag),))
    ev = HealthEvent("process_hung", f"{HOST}/proc/{p.pid}", NOW, detail={"pid": p.pid})
    rec = actuator(tmp_path, policy).run(Step("terminate_process", {"select": "event"}), ev, "soft")
    assert rec.outcome == DRY_RUN and f"would terminate pid {p.pid}" in rec.detail
    assert alive(p.pid)


def test_a_hung_worker_is_detected_by_its_heartbeat_and_terminated(tmp_path, spawn):
    hb = tmp_path / "hb"
    p, tag = spawn("hung", "--heartbeat-dir", str(hb), "--beat-s", "1")
    settings = DetectorSettings(hung_after_s=1.5)
    watch = [Watch(ProcessRule(cmdline=f".*{tag}.*"), heartbeat_dir=str(hb))]
    state: dict = {}
    found = []
    deadline = time.monotonic() + 15
    while not found and time.monotonic() < deadline:
        found = d.process_hung(snapshot(), watch, HOST, pd.Timestamp.now(tz="UTC"), state, settings)
        time.sleep(0.3)
    (ev,) = found
    assert ev.detail["pid"] == p.pid and ev.detail["reason"] == "heartbeat"
    rec = actuator(tmp_path, SafetyPolicy(processes=(mine(tag),)), evidence=LocalEvidence(settings, HOST)).run(
        Step("terminate_process", {"select": "event", "grace_s": 2}), ev, "soft"
    )
    assert rec.outcome == DONE and rec.touched[0]["how"] == "terminated"


def test_zombies_are_found_per_parent_and_reaped_through_the_allowlisted_parent(tmp_path, spawn):
    # under a subreaper: this machine's PID 1 does not reap orphans
    ztag = f"rhythm-test-zombies-{os.getpid()}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "rhythm_pipelines.chaos.workloads", "zombies", "--tag", ztag, "--count", "4"]
    spawn("subreaper", "--", *cmd)
    deadline = time.monotonic() + 10
    events, seen = [], {}
    while time.monotonic() < deadline:
        found = d.process_zombie(
            snapshot(), HOST, pd.Timestamp.now(tz="UTC"), seen, DetectorSettings(zombie_persist_s=0.3)
        )
        events = [e for e in found if ztag in cmdline(e.detail["parent_pid"])]
        if events and events[0].value == 4:
            break
        time.sleep(0.1)
    (ev,) = events
    assert len(ev.detail["zombie_pids"]) == 4
    refused = actuator(tmp_path, SafetyPolicy()).run(Step("reap_zombies", {"grace_s": 1}), ev, "soft")
    assert refused.outcome == REFUSED and psutil.Process(ev.detail["parent_pid"]).is_running()
    rec = actuator(tmp_path, SafetyPolicy(processes=(mine(ztag),))).run(
        Step("reap_zombies", {"grace_s": 1, "terminate_parent": True}), ev, "soft"
    )
    assert rec.outcome == DONE, rec.detail
    assert [t["how"] for t in rec.touched] == ["SIGCHLD", "terminated"]
    gone = lambda: not any(z.pid in ev.detail["zombie_pids"] for z in snapshot())  # noqa: E731
    deadline = time.monotonic() + 5
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone()  # the subreaper reaped them once their parent was gone


def test_temp_files_old_ones_only_inside_the_root_and_symlinks_never_followed(tmp_path):
    root, outside = tmp_path / "tmp", tmp_path / "precious"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    keep = outside / "data.bin"
    keep.write_bytes(b"x" * 100)
    old = time.time() - 7200
    for name in ("a.tmp", "sub/b.tmp"):
        (root / name).write_bytes(b"y" * 1000)
        os.utime(root / name, (old, old))
    (root / "fresh.tmp").write_bytes(b"z")
    (root / "link_to_file").symlink_to(keep)
    (root / "link_to_dir").symlink_to(outside)
    os.utime(keep, (old, old))
    policy = SafetyPolicy(temp_roots=(str(root),))
    rec = actuator(tmp_path, policy).run(Step("remove_temp_files", {"older_than_s": 3600}),
                                         HealthEvent("disk_pressure", f"{HOST}:{root}", NOW), "soft")  # fmt: skip
    assert rec.outcome == DONE and "removed 2 file(s)" in rec.detail and "2 symlink(s) left alone" in rec.detail
    assert sorted(p.name for p in root.rglob("*")) == ["fresh.tmp", "link_to_dir", "link_to_file", "sub"]
    assert keep.read_bytes() == b"x" * 100
    nothing = actuator(tmp_path, SafetyPolicy()).run(
        Step("remove_temp_files", {}), HealthEvent("disk_pressure", HOST, NOW), "soft"
    )
    assert nothing.outcome == NOOP and "nothing may be removed" in nothing.detail


def history(rows):
    return pd.DataFrame(rows, columns=["ts", "event_id", "source", "outcome"])


def test_cooldown_and_rate_limit_hold(tmp_path):
    policy = SafetyPolicy(cooldown_s=300, max_actions_per_hour=3, cache_dirs=(str(tmp_path),))
    ev = HealthEvent("memory_leak", HOST, NOW)
    recent = history([(NOW - pd.Timedelta(seconds=60), "older-event", HOST, "done")])
    rec = actuator(tmp_path, policy, recent).run(Step("clear_cache"), ev, "soft")
    assert rec.outcome == REFUSED and rec.detail.startswith("cooldown")
    same_event = history([(NOW - pd.Timedelta(seconds=60), ev.event_id, HOST, "done")])
    assert actuator(tmp_path, policy, same_event).run(Step("clear_cache"), ev, "soft").outcome != REFUSED
    busy = history([(NOW - pd.Timedelta(minutes=m), f"e{m}", f"other{m}", "done") for m in (10, 20, 30)])
    rec = actuator(tmp_path, policy, busy).run(Step("clear_cache"), ev, "soft")
    assert rec.outcome == REFUSED and rec.detail.startswith("rate limit: 3 actions")
    stale = history([(NOW - pd.Timedelta(minutes=m), f"e{m}", f"other{m}", "done") for m in (70, 80, 90)])
    assert actuator(tmp_path, policy, stale).run(Step("clear_cache"), ev, "soft").outcome != REFUSED
    # alerts are never held back
    assert actuator(tmp_path, policy, busy).run(Step("notify_admin"), ev, "soft").outcome == DONE


def test_an_alert_holds_no_action_back(tmp_path):
    policy = SafetyPolicy(cooldown_s=300, max_actions_per_hour=2, cache_dirs=(str(tmp_path),))
    ev = HealthEvent("memory_leak", HOST, NOW)
    alerts = pd.DataFrame([(NOW - pd.Timedelta(seconds=s), f"e{s}", HOST, "done", "notify_admin") for s in (30, 60)],
                          columns=["ts", "event_id", "source", "outcome", "action"])  # fmt: skip
    assert actuator(tmp_path, policy, alerts).run(Step("clear_cache"), ev, "soft").outcome != REFUSED
    acted = alerts.assign(action="clear_cache")  # the same rows as remediations: cooldown
    rec = actuator(tmp_path, policy, acted).run(Step("clear_cache"), ev, "soft")
    assert rec.outcome == REFUSED and rec.detail.startswith("cooldown")


def test_flapping_target_is_suppressed():
    policy = SafetyPolicy(flap_max_events=2)
    g = Guard(policy, history([(NOW, f"e{i}", "h", "received") for i in range(2)]))
    assert not g.check_event("h", "e9", NOW).allowed
    assert g.check_event("other", "e9", NOW).allowed


def test_reroute_writes_a_route_the_gateway_reads(tmp_path):
    act = actuator(tmp_path, SafetyPolicy(), fallbacks={"gpt-4o": "gpt-4o@eu-west-1"})
    ev = HealthEvent("circuit_breaker_open", "gpt-4o@us-east-1", NOW)
    rec = act.run(Step("reroute_channel", {"ttl_s": 60}), ev, "soft")
    assert rec.outcome == DONE
    assert route_for(act.routes_file, "gpt-4o@us-east-1", NOW) == "gpt-4o@eu-west-1"
    assert route_for(act.routes_file, "gpt-4o@us-east-1", NOW + pd.Timedelta(minutes=2)) == "gpt-4o@us-east-1"
    assert act.run(Step("restore_route"), ev, "soft").outcome == DONE
    assert route_for(act.routes_file, "gpt-4o@us-east-1", NOW) == "gpt-4o@us-east-1"
    no_fallback = act.run(Step("reroute_channel", {}), HealthEvent("high_latency", "llama@x", NOW), "soft")
    assert no_fallback.outcome == "failed" and "no fallback configured" in no_fallback.detail


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Content-Type"], json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_notify_admin_posts_slack_compatible_json_and_keeps_a_copy(tmp_path, webhook):
    url, received = webhook
    alerts = tmp_path / "alerts.jsonl"
    act = actuator(tmp_path, SafetyPolicy(), notifier=Notifier(url, alerts))
    ev = HealthEvent("cpu_spike", HOST, NOW, "cpu_percent", 97.0)
    rec = act.run(Step("notify_admin"), ev, "critical")
    assert rec.outcome == DONE and "webhook answered 200" in rec.detail
    ((ctype, body),) = received
    assert ctype == "application/json" and body["text"].startswith("[critical] cpu_spike on")
    assert body["event_id"] == ev.event_id and body["event"]["value"] == 97.0
    assert json.loads(alerts.read_text().splitlines()[0])["event_id"] == ev.event_id
    down = actuator(tmp_path, SafetyPolicy(), notifier=Notifier("http://127.0.0.1:9/none", alerts, timeout_s=1))
    rec = down.run(Step("notify_admin"), ev, "critical")
    assert rec.outcome == "failed" and "webhook failed" in rec.detail
    assert len(alerts.read_text().splitlines()) == 2  # the alert is kept even when the webhook is down
    ok, how = Notifier("file:///etc/passwd", alerts).send("x", {})
    assert not ok and "'file' is not an http(s) URL" in how


def test_prepare_reboot_writes_a_plan_and_never_reboots(tmp_path):
    act = actuator(tmp_path, SafetyPolicy(), notifier=Notifier(None, tmp_path / "alerts.jsonl"))
    rec = act.run(Step("prepare_reboot"), HealthEvent("memory_leak", HOST, NOW, "mem_percent", 91.0), "critical")
    assert rec.outcome == DONE
    (plan,) = (tmp_path / "state" / "reboot_plans").iterdir()
    assert json.loads(plan.read_text())["host"] == HOST
    assert psutil.boot_time() < time.time() - 1  # still up


def test_a_reboot_plan_needs_a_host_level_reason(tmp_path):
    act = actuator(tmp_path, SafetyPolicy(), notifier=Notifier(None, tmp_path / "alerts.jsonl"))
    one = HealthEvent("memory_leak", f"{HOST}/proc/4242", NOW, "proc_rss_bytes", 5e9)
    assert "host-level reason" in act.impossible(Step("prepare_reboot"), one)
    rec = act.run(Step("prepare_reboot"), one, "critical")
    assert rec.outcome == REFUSED and "not one process" in rec.detail
    assert not (tmp_path / "state" / "reboot_plans").exists()
    assert act.impossible(Step("prepare_reboot"), HealthEvent("cpu_spike", HOST, NOW, "cpu_percent", 97.0)) is None
    assert act.impossible(Step("prepare_reboot"), HealthEvent("high_latency", "gpt-4o@us-east-1", NOW)) is not None


def test_actions_on_another_host_are_refused(tmp_path):
    rec = actuator(tmp_path, SafetyPolicy(processes=(mine("nothing-runs-with-this-tag"),))).run(
        Step("terminate_process", {"select": "top_cpu"}), HealthEvent("cpu_spike", "elsewhere-01", NOW), "hard"
    )
    assert rec.outcome == REFUSED and "no remote actions" in rec.detail


class ChainWork:
    """A re-execution chain scripted by a test: what each look at it finds; records whether it submitted."""

    def __init__(self, states):
        self.states, self.calls = list(states), []

    def rerun_failed(self, run_id, attempt, submit=True):
        self.calls.append((attempt, submit))
        state = self.states.pop(0)
        return ("failed" if state == "submitted" and not submit else state), state

    def pause_low_priority(self, event_id):
        return False, ""

    resume_low_priority = pause_low_priority


def test_a_rerun_chain_always_ends_in_a_verdict_and_never_submits_past_its_last_attempt(tmp_path):
    work = ChainWork(["submitted", "running", "running", "failed"])
    act = actuator(tmp_path, SafetyPolicy(), work=work)
    event = HealthEvent("task_failure_pattern", "etl_job", NOW, detail={"last_run_id": "r1"})
    step = Step("rerun_failed", {"max_attempts": 1, "backoff_s": 5, "attempt": 1})
    outcomes = []
    for _ in range(4):
        rec = act.run(step, event, "soft")
        outcomes.append(rec.outcome)
        if not rec.followups:
            break
        step = rec.followups[0]
    assert outcomes == [DONE, "noop", "noop", "failed"]  # submitted; still running twice; then the verdict
    assert work.calls == [(1, True), (2, False), (2, False), (2, False)]  # after the last attempt: looks only
    assert "no attempt left" not in rec.detail and "check after the last of 1 attempts" in rec.detail
