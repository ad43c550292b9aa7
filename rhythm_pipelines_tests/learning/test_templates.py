"""Error text mined into templates with Drain: realistic messages that differ only in their values share a
template, different errors do not, and the same messages always give the same template ids."""

from __future__ import annotations

from rhythm_pipelines.learning.templates import EMPTY, mine

MESSAGES = [
    "sqlite3.OperationalError: database is locked (attempt 3 of 5) in ingest_hour partition 2026-11-29-14:00",
    "sqlite3.OperationalError: database is locked (attempt 1 of 5) in ingest_hour partition 2026-11-30-02:00",
    'dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "rollup":\n'
    "Traceback (most recent call last): ...",
    'dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "score":\n'
    "Traceback (most recent call last): ...",
    "TimeoutError: upstream asset ingest_hour not materialized by 09:05 (waited 300 s)",
    "TimeoutError: upstream asset load_profiles not materialized by 09:05 (waited 300 s)",
    "MemoryError: process 4312 rss 3.1 GiB over its limit 3 GiB",
    "MemoryError: process 912 rss 3.4 GiB over its limit 3 GiB",
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='10.0.3.4', port=443): Max retries exceeded",
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='10.0.9.12', port=443): Max retries exceeded",
    "FileNotFoundError: [Errno 2] No such file or directory: '/var/lib/rhythm/landing/metrics/2026-11-29.csv'",
    "FileNotFoundError: [Errno 2] No such file or directory: '/var/lib/rhythm/landing/metrics/2026-11-30.csv'",
    "openai.RateLimitError: Error code: 429 - request 3f2c9a1e-77b0-4c1e-9d55-0c2a8f1e6b10 over quota",
    "openai.RateLimitError: Error code: 429 - request 9a8b7c6d-1111-4c1e-9d55-0c2a8f1e6b10 over quota",
]


def test_variants_of_one_error_share_a_template_and_different_errors_do_not():
    mined = mine(MESSAGES)
    ids = [t for t, _ in mined]
    pairs = [ids[i : i + 2] for i in range(0, len(ids), 2)]
    assert all(a == b for a, b in pairs), mined  # each pair differs only in values
    assert len({a for a, _ in pairs}) == len(pairs), mined  # seven errors, seven templates
    text = dict(mined)
    assert "database is locked (attempt <NUM> of <NUM>) in ingest_hour partition <DATE>" in text[ids[0]]
    assert text[ids[4]] == "TimeoutError: upstream asset <*> not materialized by <NUM>:<NUM> (waited <NUM>)"
    assert text[ids[-1]] == "openai.RateLimitError: Error code: <NUM> - request <UUID> over quota"
    assert text[ids[2]].endswith("while executing op <QUOTED>:")  # the first line of a traceback


def test_the_same_messages_give_the_same_ids_and_more_messages_keep_them():
    first = mine(MESSAGES)
    assert mine(MESSAGES) == first
    more = mine([*MESSAGES, "ValueError: metrics.csv: row 12: value: not a number ('abc')"])
    assert more[: len(MESSAGES)] == first
    assert more[-1][0] not in {t for t, _ in first}


def test_an_empty_message_has_its_own_template():
    (tid, text), (tid2, _) = mine(["", None])
    assert text == EMPTY and tid == tid2
