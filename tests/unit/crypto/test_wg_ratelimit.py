"""Initiation rate limiter: 20/s with a burst of 5 per key, bounded table."""

from tunrelay.crypto.ratelimit import RateLimiter

T = 1000.0


def test_burst_then_refuse():
    limiter = RateLimiter()
    assert [limiter.allow("ip", T) for _ in range(7)] == [True] * 5 + [False] * 2


def test_refills_at_twenty_per_second():
    limiter = RateLimiter()
    for _ in range(5):
        limiter.allow("ip", T)
    assert not limiter.allow("ip", T + 0.01)
    assert limiter.allow("ip", T + 0.06)  # one token after 50 ms
    assert not limiter.allow("ip", T + 0.07)
    allowed = sum(limiter.allow("ip", T + 1 + i / 1000) for i in range(1000))  # 1 s at 1 kHz
    assert 20 <= allowed <= 26  # 20/s plus the refilled burst


def test_keys_are_independent():
    limiter = RateLimiter()
    for _ in range(5):
        limiter.allow("a", T)
    assert not limiter.allow("a", T)
    assert limiter.allow("b", T)


def test_full_refill_after_idle():
    limiter = RateLimiter()
    for _ in range(6):
        limiter.allow("a", T)
    assert [limiter.allow("a", T + 10) for _ in range(6)] == [True] * 5 + [False]


def test_table_is_bounded_and_evicts_least_recent():
    limiter = RateLimiter(max_entries=3)
    for key in "abc":
        for _ in range(5):
            limiter.allow(key, T)
    limiter.allow("a", T)  # touch a: b is now the least recently seen
    assert limiter.allow("d", T) and len(limiter) == 3
    assert not limiter.allow("a", T)  # kept, still empty
    assert not limiter.allow("c", T)  # kept, still empty
    assert limiter.allow("b", T)  # was evicted, so it starts fresh


def test_idle_entries_are_collected():
    limiter = RateLimiter(max_entries=1000)
    for i in range(100):
        limiter.allow(i, T)
    limiter.allow("late", T + 5)
    assert len(limiter) == 1
