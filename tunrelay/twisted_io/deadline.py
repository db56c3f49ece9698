"""Drive a pure core's timers from the reactor: one call at the core's next deadline.

Pure cores (the WireGuard session, the responder stack) say when they next need to be
poked (``next_deadline()``) instead of owning timers. ``CoreTimer`` keeps exactly one
reactor call at that deadline. ``rearm_soon`` coalesces the recomputation to once per
reactor turn, so a burst of packets costs one ``next_deadline()``, not one per packet, and
a call is only moved when the deadline comes *earlier*: a later one is picked up when the
early call fires (the fire callback must rearm, as both users' do).
"""

__all__ = ["CoreTimer"]


class CoreTimer:
    def __init__(self, clock, next_deadline, fire):
        self._clock = clock
        self._next_deadline = next_deadline
        self._fire = fire
        self._call = None
        self._queued = False

    def rearm_soon(self):
        if not self._queued:
            self._queued = True
            self._clock.callLater(0, self._rearm_queued)

    def _rearm_queued(self):
        self._queued = False
        self.rearm()

    def rearm(self):
        deadline = self._next_deadline()
        if self._call is not None and self._call.active():
            if deadline is None or self._call.getTime() <= deadline:
                # Deadlines mostly move later (every packet pushes a keepalive out). An early
                # call is harmless, since the core does nothing before its deadline and the fire
                # callback rearms, and far cheaper than a cancel and a new call per packet.
                return
            self._call.cancel()
        self._call = None
        if deadline is not None:
            self._call = self._clock.callLater(max(0.0, deadline - self._clock.seconds()), self._fired)

    def _fired(self):
        self._call = None
        self._fire()

    def cancel(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
