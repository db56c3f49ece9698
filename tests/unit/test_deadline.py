"""CoreTimer: one reactor call at a pure core's next deadline, moved only when it comes earlier."""

from twisted.internet.task import Clock

from tunrelay.timers import CoreTimer


class FakeCore:
    def __init__(self, clock):
        self.clock = clock
        self.deadline = None
        self.fired_at = []
        self.timer = CoreTimer(clock, lambda: self.deadline, self.fire)

    def fire(self):
        now = self.clock.seconds()
        if self.deadline is not None and self.deadline <= now:
            self.fired_at.append(now)
            self.deadline = None
        self.timer.rearm()   # as the real cores do after every tick


def test_a_later_deadline_keeps_the_armed_call_and_is_met_when_it_fires_early():
    clock = Clock()
    core = FakeCore(clock)
    core.deadline = 10.0
    core.timer.rearm()
    calls = list(clock.getDelayedCalls())
    core.deadline = 25.0          # a packet pushed the keepalive out
    core.timer.rearm()
    assert clock.getDelayedCalls() == calls and calls[0].getTime() == 10.0
    clock.advance(10.0)           # early: nothing is due yet, so the core only rearms
    assert core.fired_at == [] and [call.getTime() for call in clock.getDelayedCalls()] == [25.0]
    clock.advance(15.0)
    assert core.fired_at == [25.0] and clock.getDelayedCalls() == []


def test_an_earlier_deadline_moves_the_call():
    clock = Clock()
    core = FakeCore(clock)
    core.deadline = 10.0
    core.timer.rearm()
    core.deadline = 2.0
    core.timer.rearm()
    assert [call.getTime() for call in clock.getDelayedCalls()] == [2.0]
    clock.advance(2.0)
    assert core.fired_at == [2.0]


def test_rearm_soon_coalesces_a_burst_into_one_computation():
    clock = Clock()
    computed = []
    timer = CoreTimer(clock, lambda: computed.append(1), lambda: None)
    for _ in range(100):
        timer.rearm_soon()
    clock.advance(0)
    assert len(computed) == 1


def test_cancel_leaves_no_call():
    clock = Clock()
    core = FakeCore(clock)
    core.deadline = 5.0
    core.timer.rearm()
    core.timer.cancel()
    assert clock.getDelayedCalls() == []
