import pandas as pd
import pytest

from rhythm_pipelines.healing.breaker import CLOSED, HALF_OPEN, OPEN, BreakerConfig, CircuitBreaker

T0 = pd.Timestamp("2026-11-22 10:00", tz="UTC")


def at(s: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=s)


def test_closed_open_half_open_closed():
    b = CircuitBreaker(BreakerConfig(window=10, min_calls=4, failure_rate=0.5, open_s=30, probe_calls=2))
    for i, failed in enumerate([False, True, False]):
        assert b.allow(at(i))
        b.record(at(i), failed)
    assert b.state == CLOSED  # 1 of 3: under min_calls anyway
    b.record(at(3), True)  # 2 of 4 = 50 %
    assert b.state == OPEN and b.tripped_at == at(3)
    assert not b.allow(at(10))  # refused while open
    assert b.allow(at(33)) and b.state == HALF_OPEN
    b.record(at(33), False)
    assert b.allow(at(34))
    b.record(at(34), True)  # probes: 1 of 2 failed = 50 %: open again, same outage
    assert b.state == OPEN and b.opened_at == at(34) and b.tripped_at == at(3)
    assert b.allow(at(65))
    b.record(at(65), False)
    assert b.allow(at(66))
    b.record(at(66), False)
    assert b.state == CLOSED and b.tripped_at is None
    assert [t.state for t in b.transitions] == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_half_open_lets_only_the_probe_calls_through():
    b = CircuitBreaker(BreakerConfig(window=4, min_calls=4, open_s=0, probe_calls=2))
    for i in range(4):
        b.record(at(i), True)
    assert b.state == OPEN
    assert b.allow(at(5)) and b.state == HALF_OPEN
    b.record(at(5), False)
    assert b.allow(at(5))
    assert b.state == HALF_OPEN


def test_slow_calls_open_it_too():
    b = CircuitBreaker(BreakerConfig(window=5, min_calls=5, slow_call_ms=1000, slow_rate=0.8))
    for i in range(5):
        b.record(at(i), False, latency_ms=2000 if i else 10)
    assert b.state == OPEN and b.transitions[-1].slow_rate == pytest.approx(0.8)


def test_config_is_checked():
    with pytest.raises(ValueError):
        BreakerConfig(window=5, min_calls=10)
    with pytest.raises(ValueError):
        BreakerConfig(failure_rate=1.5)
