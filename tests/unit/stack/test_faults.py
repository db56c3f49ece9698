"""The fault injector: seeded, bounded, and really disturbing the stream."""

from tunrelay.stack.faults import HOLD_TIME, MAX_HELD, FaultInjector

FRAMES = [b"%04d" % n for n in range(2000)]


def run(injector):
    out = injector.process(FRAMES, now=0.0)
    return out + injector.poll(now=1.0)


def test_same_seed_same_disturbance_and_rates_near_the_settings():
    first = run(FaultInjector(7, drop=0.05, duplicate=0.05, reorder=0.05))
    second = run(FaultInjector(7, drop=0.05, duplicate=0.05, reorder=0.05))
    assert first == second
    unique = set(first)
    assert 1800 < len(unique) < 1960          # about 5% dropped
    assert len(first) - len(unique) > 40       # some duplicates
    assert first != sorted(first)              # some reordering


def test_clean_settings_change_nothing():
    assert run(FaultInjector(1)) == FRAMES


def test_held_frames_are_bounded_and_released_by_time():
    injector = FaultInjector(3, reorder=1.0)
    assert injector.process(FRAMES[:MAX_HELD], now=0.0) == []
    assert injector.next_deadline() == HOLD_TIME
    assert injector.poll(now=HOLD_TIME / 2) == []
    assert injector.poll(now=HOLD_TIME) == FRAMES[:MAX_HELD]
    # Full: the next frame passes, followed by the oldest held one.
    injector.process(FRAMES[:MAX_HELD], now=1.0)
    assert injector.process([b"new"], now=1.0) == [b"new", FRAMES[0]]
