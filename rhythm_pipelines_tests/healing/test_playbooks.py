import pytest

from rhythm_pipelines.healing import playbooks
from rhythm_pipelines.healing.events import KINDS, HealthEvent
from rhythm_pipelines.healing.playbooks import PlaybookError, parse

MINIMAL = "playbooks:\n" + "".join(f"  {k}:\n    soft:\n      - action: notify_admin\n" for k in KINDS)


def test_the_shipped_playbooks_are_valid_and_cover_every_kind():
    books = playbooks.load()
    assert set(books.playbooks) == set(KINDS)
    assert books.safety.processes == () and books.safety.temp_roots == ()  # nothing may be killed by default
    assert not books.safety.dry_run and books.safety.cooldown_s > 0 and books.safety.max_actions_per_hour > 0
    assert books.next_level("cpu_spike", "soft") == "hard"
    assert [s.action for s in books.playbook("cpu_spike").steps("critical")][:3] == [
        "pause_low_priority",  # possible with nothing allowlisted: a critical CPU spike is never "nothing allowed"
        "terminate_process",
        "notify_admin",
    ]


def test_severity_soft_hard_critical_from_readings():
    books = playbooks.load()
    e = HealthEvent("memory_leak", "h", "2026-11-22")
    assert books.assess(e, {"mem_percent": 62})[0] == "soft"
    assert books.assess(e, {"mem_percent": 80})[0] == "hard"
    assert books.assess(e, {"mem_percent": 90})[0] == "critical"
    assert books.assess(e, {"mem_percent": 50, "cpu_percent": 95})[0] == "soft"  # a leak's own rules: memory only
    assert (
        books.assess(HealthEvent("cpu_spike", "h", "2026-11-22"), {"mem_percent": 50, "cpu_percent": 95})[0]
        == "critical"
    )
    # a kind's own rules replace the global ones
    f = HealthEvent("task_failure_pattern", "etl", "2026-11-22", "failures", 6)
    assert books.assess(f, {"failures": 6, "cpu_percent": 99})[0] == "hard"


def test_a_user_file_replaces_the_shipped_one(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text("safety:\n  dry_run: true\n  allow_processes: [{cmdline: '.*my_worker.*', user: svc}]\n" + MINIMAL)
    monkeypatch.setenv("RHYTHM_PLAYBOOKS", str(path))
    books = playbooks.load()
    assert books.origin == str(path) and books.safety.dry_run
    assert books.safety.processes[0].matches("python", "python my_worker.py", "svc")
    assert not books.safety.processes[0].matches("python", "python my_worker.py", "root")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "playbooks:\n  cpu_spike:\n    soft:\n      - action: explode\n",
            r"x\.yaml:4: playbooks\.cpu_spike\.soft\[0\]\.action: unknown action 'explode'",
        ),
        (
            "playbooks:\n  cpu_spike:\n    soft:\n      - action: terminate_process\n        params: {grace_s: soon}\n",
            r"x\.yaml:5: playbooks\.cpu_spike\.soft\[0\]\.params\.grace_s: expected int or float, got 'soon'",
        ),
        (
            "playbooks:\n  cpu_spike:\n    soft:\n      - action: terminate_process\n        params: {select: any}\n",
            r"playbooks\.cpu_spike\.soft\[0\]\.params\.select: choose from event, top_cpu, top_memory",
        ),
        (
            "playbooks:\n  cpu_spike:\n    soft:\n      - action: recheck\n",
            r"`recheck` is a follow-up: give it `after_s`",
        ),
        ("playbooks:\n  meltdown: {}\n", r"x\.yaml:2: playbooks\.meltdown: unknown key"),
        ("safety:\n  cooldown_s: -5\n" + MINIMAL, r"x\.yaml:2: safety\.cooldown_s: expected a non-negative number"),
        (
            "safety:\n  allow_processes: [{user: root}]\n" + MINIMAL,
            r"safety\.allow_processes\[0\]: a process rule needs a name or a cmdline",
        ),
        (
            "safety:\n  allow_processes: [{name: '('}]\n" + MINIMAL,
            r"safety\.allow_processes\[0\]: missing \), unterminated subpattern",
        ),
        (
            "safety:\n  allow_processes: [{name: '.*', user: root}]\n" + MINIMAL,
            r"x\.yaml:2: safety\.allow_processes\[0\]: too broad: a rule must name something",
        ),
        ("safety:\n  allow_processes: [{cmdline: '', user: root}]\n" + MINIMAL, r"allow_processes\[0\]: too broad"),
        (
            "safety:\n  allow_processes: [{name: 'python3?', user: root}]\n" + MINIMAL,
            r"allow_processes\[0\]: too broad: it matches common processes such as python3",
        ),
        ("safety:\n  allow_processes: [{cmdline: '.', user: root}]\n" + MINIMAL, r"allow_processes\[0\]: too broad"),
        (
            "safety:\n  allow_processes: [{cmdline: '.*my_worker.*'}]\n" + MINIMAL,
            r"allow_processes\[0\]: an allowlist rule needs `user`",
        ),
        ("safety:\n  temp_roots: ['/']\n" + MINIMAL, r"x\.yaml:2: safety\.temp_roots\[0\]: / is a system directory"),
        ("safety:\n  temp_roots: [/etc]\n" + MINIMAL, r"safety\.temp_roots\[0\]: /etc is a system directory"),
        ("safety:\n  temp_roots: [/tmp/x, ..]\n" + MINIMAL, r"safety\.temp_roots\[1\]: '\.\.' is relative"),
        (
            "safety:\n  temp_roots: ['~']\n" + MINIMAL,
            r"safety\.temp_roots\[0\]: '~' starts with '~', which is not expanded",
        ),
        ("safety:\n  temp_roots: ['~/']\n" + MINIMAL, r"safety\.temp_roots\[0\]: .* is a (home|system) directory"),
        ("safety:\n  cache_dirs: [/tmp/c, /usr]\n" + MINIMAL, r"safety\.cache_dirs\[1\]: /usr is a system directory"),
        ("safety:\n  cache_dirs: [/usr/../var]\n" + MINIMAL, r"cache_dirs\[0\]: /usr/\.\./var \(= /var\) is a system"),
        (
            "safety:\n  dry_run: true\n  dry_run: false\n" + MINIMAL,
            r"x\.yaml:3: not valid YAML: duplicate key 'dry_run' \(lines 2 and 3\)",
        ),
        ("safety:\n  dry_run: true\nsafety:\n  cooldown_s: 3\n" + MINIMAL, r"duplicate key 'safety' \(lines 1 and 3\)"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
            r"x\.yaml:4: not valid YAML: more than 25 aliases",
        ),
        ("detectors:\n  cpu_pct: 3\n" + MINIMAL, r"x\.yaml:1: detectors: unknown setting\(s\) cpu_pct"),
        ("severity:\n  fatal: []\n" + MINIMAL, r"severity\.fatal: unknown key"),
        ("playbooks:\n  cpu_spike:\n    soft: []\n", r"no playbook for memory_leak"),
        ("playbooks: [\n", r"x\.yaml:2: not valid YAML"),
        ("version: 2\n" + MINIMAL, r"unsupported version 2"),
    ],
)
def test_bad_files_get_errors_naming_file_line_and_field(text, message):
    with pytest.raises(PlaybookError, match=message):
        parse(text, "x.yaml")


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PlaybookError, match="cannot read the playbook file"):
        playbooks.load(tmp_path / "nope.yaml")


def test_a_file_without_severity_rules_gets_the_shipped_ones():
    assert parse(MINIMAL, "x.yaml").severity == playbooks.load().severity == playbooks.DEFAULT_SEVERITY


def test_a_kind_can_give_its_verification_its_own_time():
    from rhythm_pipelines.healing.playbooks import default_text, parse

    books = parse(default_text(), "shipped")
    assert books.verify_timeout("task_failure_pattern") == 120.0  # a re-execution is a run: it takes a run's time
    assert books.verify_timeout("cpu_spike") == books.verify_timeout_s == 20.0
