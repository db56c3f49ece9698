"""Drive a pure core's timers from an injected clock: one call at the core's next deadline.

Pure cores (the WireGuard session, the responder stack) say when they next need to be
poked (``next_deadline()``) instead of owning timers. ``CoreTimer`` keeps exactly one
``clock.callLater`` at that deadline (the clock is a reactor, or a ``Clock`` in tests).

- ``rearm_soon`` coalesces the recomputation to once per reactor turn, so a burst of
  control events costs one ``next_deadline()``, not one each;
- ``ensure_by(deadline)`` is for the data path, which learns of a new, earlier deadline
  without a walk over every peer (``WireGuardCore.take_deadline_hint``): it only moves the
  call earlier;
- a call is only moved when the deadline comes *earlier*: a later one is picked up when the
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
        self.ensure_by(self._next_deadline())

    def ensure_by(self, deadline):
        """Make sure a call fires no later than ``deadline`` (None: nothing new to wait for)."""
        if deadline is None:
            return
        if self._call is not None and self._call.active():
            if self._call.getTime() <= deadline:
                # Deadlines mostly move later (every packet pushes a keepalive out). An early
                # call is harmless, since the core does nothing before its deadline and the fire
                # callback rearms, and far cheaper than a cancel and a new call per packet.
                return
            self._call.cancel()
        self._call = self._clock.callLater(max(0.0, deadline - self._clock.seconds()), self._fired)

    def _fired(self):
        self._call = None
        self._fire()

    def cancel(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
