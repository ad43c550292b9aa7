"""Recovery playbooks: per event kind and level, the ordered actions to take; plus the safety policy,
detector settings, severity rules and verification timing. Shipped as ``recovery_playbooks.yaml``;
a user file (``$RHYTHM_PLAYBOOKS``) replaces it. Every error names the file, the line and the path of the
offending field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rhythm_pipelines.healing.detectors import DetectorSettings, Watch
from rhythm_pipelines.healing.events import FORECAST_KINDS, KINDS, LEVELS, HealthEvent, level_index
from rhythm_pipelines.healing.files import root_problem
from rhythm_pipelines.healing.safety import ProcessRule, SafetyPolicy
from rhythm_pipelines.yaml_lines import ConfigError, Reader, config_text
from rhythm_pipelines.yaml_lines import keys as _keys
from rhythm_pipelines.yaml_lines import plain as _plain

# action -> {param: (type(s), default)}; a default of ... means required
ACTIONS: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "clear_cache": {"older_than_s": ((int, float), 300)},
    "remove_temp_files": {"older_than_s": ((int, float), 3600)},
    "terminate_process": {"select": ((str,), "event"), "grace_s": ((int, float), 5), "count": ((int,), 1)},
    "reap_zombies": {"grace_s": ((int, float), 2), "terminate_parent": ((bool,), True)},
    "pause_low_priority": {},
    "resume_low_priority": {},
    "rerun_failed": {"max_attempts": ((int,), 3), "backoff_s": ((int, float), 10), "attempt": ((int,), 1)},
    "reroute_channel": {"fallback": ((str,), None), "ttl_s": ((int, float), 900)},
    "restore_route": {},
    "notify_admin": {"message": ((str,), None)},
    "prepare_reboot": {},
    "recheck": {},
}
SELECTORS = ("event", "top_cpu", "top_memory")
FOLLOW_UP_ONLY = ("recheck",)


class PlaybookError(ConfigError):
    """A playbook file that cannot be used: ``origin:line: path: reason``."""


@dataclass(frozen=True)
class Step:
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    after_s: float | None = None  # a follow-up: launched by the follow-up sensor this long after the run
    at: str | None = None  # "event_end": after_s counts from the end the event announces (detail "until")

    @property
    def follow_up(self) -> bool:
        return self.after_s is not None


@dataclass(frozen=True)
class Rule:
    metric: str
    above: float | None = None
    below: float | None = None

    def holds(self, readings: dict[str, float]) -> bool:
        v = readings.get(self.metric)
        if v is None or v != v:
            return False
        return (self.above is None or v > self.above) and (self.below is None or v < self.below)


@dataclass(frozen=True)
class Severity:
    rules: dict[str, tuple[Rule, ...]]  # level -> any of these rules
    default: str = "soft"

    def assess(self, readings: dict[str, float]) -> tuple[str, str]:
        """The highest level whose rules match, and why."""
        for level in reversed(LEVELS):
            for r in self.rules.get(level, ()):
                if r.holds(readings):
                    bound = f"> {r.above:g}" if r.above is not None else f"< {r.below:g}"
                    return level, f"{r.metric} = {readings[r.metric]:.4g} {bound}"
        return self.default, "no rule matched: default level"


@dataclass(frozen=True)
class Playbook:
    kind: str
    levels: dict[str, tuple[Step, ...]]
    severity: Severity | None = None
    verify_timeout_s: float | None = None  # this kind's own (a re-executed run needs the time a run takes)

    def steps(self, level: str) -> tuple[Step, ...]:
        return self.levels.get(level, ())


@dataclass(frozen=True)
class PlaybookSet:
    origin: str
    playbooks: dict[str, Playbook]
    severity: Severity
    safety: SafetyPolicy
    detectors: DetectorSettings
    watches: tuple[Watch, ...] = ()
    fallbacks: dict[str, str] = field(default_factory=dict)  # channel@region (or channel) -> fallback
    verify_wait_s: float = 3.0
    verify_timeout_s: float = 20.0

    def playbook(self, kind: str) -> Playbook:
        try:
            return self.playbooks[kind]
        except KeyError:
            raise KeyError(f"{self.origin}: no playbook for event kind {kind!r}") from None

    def assess(self, event: HealthEvent, readings: dict[str, float]) -> tuple[str, str]:
        pb = self.playbooks.get(event.kind)
        sev = pb.severity if pb is not None and pb.severity is not None else self.severity
        return sev.assess(readings)

    def verify_timeout(self, kind: str) -> float:
        pb = self.playbooks.get(kind)
        return pb.verify_timeout_s if pb is not None and pb.verify_timeout_s is not None else self.verify_timeout_s

    def next_level(self, kind: str, level: str) -> str | None:
        """The next level up that has actions, if any."""
        pb = self.playbook(kind)
        for nxt in LEVELS[level_index(level) + 1 :]:
            if pb.steps(nxt):
                return nxt
        return None


DEFAULT_SEVERITY = Severity(
    {
        "critical": (Rule("cpu_percent", above=90.0), Rule("mem_percent", above=85.0)),
        "hard": (Rule("mem_percent", above=75.0),),
        "soft": (Rule("mem_percent", above=60.0),),
    }
)  # a file without a `severity:` section gets these (the shipped file spells them out)


def _rules(r: Reader, node: Any, path: str, parent: dict, key: str) -> tuple[Rule, ...]:
    if not isinstance(node, list):
        raise r.fail(parent, path, "expected a list of rules like {metric: cpu_percent, above: 90}", key)
    out = []
    for i, item in enumerate(node):
        p = f"{path}[{i}]"
        item = r.mapping(item, p, ("metric", "above", "below"), parent, key)
        if not isinstance(item.get("metric"), str):
            raise r.fail(item, f"{p}.metric", "required: the reading to compare", "metric")
        above, below = r.number(item, "above", p), r.number(item, "below", p)
        if above is None and below is None:
            raise r.fail(item, p, "a rule needs `above` or `below`")
        out.append(Rule(item["metric"], above, below))
    return tuple(out)


def _severity(r: Reader, node: Any, path: str, parent: dict, key: str) -> Severity:
    node = r.mapping(node, path, (*LEVELS, "default"), parent, key)
    default = node.get("default", "soft")
    if default not in LEVELS:
        raise r.fail(node, f"{path}.default", f"unknown level {default!r}; choose from {', '.join(LEVELS)}", "default")
    return Severity({lv: _rules(r, node[lv], f"{path}.{lv}", node, lv) for lv in LEVELS if lv in node}, default)


def _step(r: Reader, item: Any, path: str, parent: dict, key: str, kind: str) -> Step:
    item = r.mapping(item, path, ("action", "params", "after_s", "at"), parent, key)
    action = item.get("action")
    if action not in ACTIONS:
        raise r.fail(item, f"{path}.action", f"unknown action {action!r}; choose from {', '.join(ACTIONS)}", "action")
    spec = ACTIONS[action]
    params_node = r.mapping(item.get("params"), f"{path}.params", tuple(spec), item, "params")
    params = {}
    for name, (types, default) in spec.items():
        v = params_node.get(name, default)
        if v is not None and (not isinstance(v, types) or (isinstance(v, bool) and bool not in types)):
            expected = " or ".join(t.__name__ for t in types)
            raise r.fail(params_node, f"{path}.params.{name}", f"expected {expected}, got {v!r}", name)
        params[name] = v
    if action == "terminate_process" and params["select"] not in SELECTORS:
        raise r.fail(params_node, f"{path}.params.select", f"choose from {', '.join(SELECTORS)}", "select")
    after = r.number(item, "after_s", path)
    if action in FOLLOW_UP_ONLY and after is None:
        raise r.fail(item, path, f"`{action}` is a follow-up: give it `after_s`")
    at = item.get("at")
    if at is not None and at != "event_end":
        raise r.fail(item, f"{path}.at", f"expected event_end (after_s counts from the event's end), got {at!r}", "at")
    if at is not None and after is None:
        raise r.fail(item, path, "`at: event_end` makes a follow-up: give it `after_s` (0: at the end)")
    return Step(action, params, after, at)


def parse(text: str, origin: str = "<playbooks>") -> PlaybookSet:
    """Validate and build a playbook set from YAML text."""
    r = Reader(origin, PlaybookError)
    doc = r.load(text)
    top = ("version", "safety", "detectors", "severity", "verify", "watch", "routing", "playbooks")
    doc = r.mapping(doc, "(top)", top)
    if doc.get("version", 1) != 1:
        raise r.fail(doc, "version", f"unsupported version {doc.get('version')!r} (this code reads 1)", "version")

    s = r.mapping(doc.get("safety"), "safety", (
        "dry_run", "cooldown_s", "max_actions_per_hour", "flap_window_s", "flap_max_events",
        "allow_processes", "cache_dirs", "temp_roots",
    ), doc, "safety")  # fmt: skip
    rules = []
    for i, item in enumerate(s.get("allow_processes") or []):
        p = f"safety.allow_processes[{i}]"
        item = r.mapping(item, p, ("name", "cmdline", "user"), s, "allow_processes")
        try:
            rule = ProcessRule(item.get("name"), item.get("cmdline"), item.get("user"))
        except Exception as exc:  # re.error or a rule with no pattern
            raise r.fail(item, p, str(exc)) from exc
        problem = rule.allowlist_problem()
        if problem:
            raise r.fail(item, p, problem)
        rules.append(rule)
    for name in ("cache_dirs", "temp_roots"):
        v = s.get(name) or []
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise r.fail(s, f"safety.{name}", "expected a list of directory paths", name)
        for i, path in enumerate(v):
            problem = root_problem(os.path.expanduser(path) if path.startswith("~/") else path)
            if problem:
                raise r.fail(s, f"safety.{name}[{i}]", problem, name)
    if "dry_run" in s and not isinstance(s["dry_run"], bool):
        raise r.fail(s, "safety.dry_run", f"expected true or false, got {s['dry_run']!r}", "dry_run")
    policy = SafetyPolicy(
        dry_run=bool(s.get("dry_run", False)),
        processes=tuple(rules),
        cache_dirs=tuple(os.path.expanduser(x) if x.startswith("~/") else x for x in s.get("cache_dirs") or []),
        temp_roots=tuple(os.path.expanduser(x) if x.startswith("~/") else x for x in s.get("temp_roots") or []),
        cooldown_s=r.number(s, "cooldown_s", "safety", 300.0),
        max_actions_per_hour=int(r.number(s, "max_actions_per_hour", "safety", 30)),
        flap_window_s=r.number(s, "flap_window_s", "safety", 3600.0),
        flap_max_events=int(r.number(s, "flap_max_events", "safety", 5)),
    )

    det = r.mapping(doc.get("detectors"), "detectors", None, doc, "detectors")
    try:
        detectors = DetectorSettings.from_mapping(_plain(det), "detectors")
    except ValueError as exc:
        raise PlaybookError(f"{r.where(doc, 'detectors')}: {exc}") from exc

    severity = _severity(r, doc["severity"], "severity", doc, "severity") if "severity" in doc else DEFAULT_SEVERITY
    verify = r.mapping(doc.get("verify"), "verify", ("wait_s", "timeout_s"), doc, "verify")

    watches = []
    for i, item in enumerate(doc.get("watch") or []):
        p = f"watch[{i}]"
        item = r.mapping(item, p, ("name", "cmdline", "user", "heartbeat_dir", "cpu_still_is_hung"), doc, "watch")
        try:
            rule = ProcessRule(item.get("name"), item.get("cmdline"), item.get("user"))
        except Exception as exc:
            raise r.fail(item, p, str(exc)) from exc
        watches.append(Watch(rule, item.get("heartbeat_dir"), bool(item.get("cpu_still_is_hung", False))))

    routing = r.mapping(doc.get("routing"), "routing", ("fallbacks",), doc, "routing")
    fallbacks = _plain(r.mapping(routing.get("fallbacks"), "routing.fallbacks", None, routing, "fallbacks"))
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in fallbacks.items()):
        raise r.fail(routing, "routing.fallbacks", "expected channel: fallback pairs", "fallbacks")

    books = r.mapping(doc.get("playbooks"), "playbooks", KINDS, doc, "playbooks")
    playbooks = {}
    for kind in _keys(books):
        node = r.mapping(books[kind], f"playbooks.{kind}", (*LEVELS, "severity", "verify_timeout_s"), books, kind)
        levels = {}
        for lv in LEVELS:
            if lv in node:
                if not isinstance(node[lv], list):
                    raise r.fail(node, f"playbooks.{kind}.{lv}", "expected a list of steps", lv)
                levels[lv] = tuple(
                    _step(r, it, f"playbooks.{kind}.{lv}[{i}]", node, lv, kind) for i, it in enumerate(node[lv])
                )
        sev = (
            _severity(r, node["severity"], f"playbooks.{kind}.severity", node, "severity")
            if "severity" in node
            else None
        )
        playbooks[kind] = Playbook(kind, levels, sev, r.number(node, "verify_timeout_s", f"playbooks.{kind}"))
    missing = [k for k in KINDS if k not in playbooks and k not in FORECAST_KINDS]
    if missing:
        raise r.fail(doc, "playbooks", f"no playbook for {', '.join(missing)}", "playbooks")
    return PlaybookSet(
        origin,
        playbooks,
        severity,
        policy,
        detectors,
        tuple(watches),
        dict(fallbacks),
        r.number(verify, "wait_s", "verify", 3.0),
        r.number(verify, "timeout_s", "verify", 20.0),
    )


def default_text() -> str:
    return resources.files("rhythm_pipelines.playbooks").joinpath("recovery_playbooks.yaml").read_text()


def load(path: str | Path | None = None) -> PlaybookSet:
    """The playbooks at ``path``, else ``$RHYTHM_PLAYBOOKS``, else the shipped defaults."""
    return parse(
        *config_text(
            path, "RHYTHM_PLAYBOOKS", "rhythm_pipelines.playbooks", "recovery_playbooks.yaml", "playbook", PlaybookError
        )
    )
