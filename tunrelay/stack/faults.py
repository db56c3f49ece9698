"""A seeded fault injector for the responder's output: drop, duplicate, reorder.

This kernel has no netem, and a stack that is only ever tested on a perfect link is not
tested. Modelled on smoltcp's ``phy::FaultInjector``: each emitted frame is dropped with
probability ``drop``; otherwise it may be held back (``reorder``) and released after the
next frame or after ``HOLD_TIME`` seconds, whichever comes first; and it may be sent twice
(``duplicate``). The random stream is seeded, so a failing run can be replayed exactly.
At most ``MAX_HELD`` frames are held; beyond that they are released in order.
"""

import random

__all__ = ["FaultInjector", "HOLD_TIME", "MAX_HELD"]

HOLD_TIME = 0.005
MAX_HELD = 8


class FaultInjector:
    def __init__(self, seed, drop=0.0, duplicate=0.0, reorder=0.0):
        for name, value in (("drop", drop), ("duplicate", duplicate), ("reorder", reorder)):
            if not 0.0 <= value <= 1.0:
                raise ValueError("%s must be a probability from 0 to 1" % name)
        self._random = random.Random(seed)
        self.drop, self.duplicate, self.reorder = drop, duplicate, reorder
        self._held = []          # (release time, frame)
        self.counts = {"dropped": 0, "duplicated": 0, "reordered": 0}

    def process(self, frames, now):
        """Frames to really send now, in the (possibly disturbed) order."""
        out = []
        for frame in frames:
            if self._random.random() < self.drop:
                self.counts["dropped"] += 1
                continue
            if self._random.random() < self.reorder and len(self._held) < MAX_HELD:
                self.counts["reordered"] += 1
                self._held.append((now + HOLD_TIME, frame))
                continue
            out.append(frame)
            if self._random.random() < self.duplicate:
                self.counts["duplicated"] += 1
                out.append(frame)
            if self._held:  # a held frame goes out after a later one: that is the reordering
                out.append(self._held.pop(0)[1])
        return out

    def poll(self, now):
        """Release held frames whose time has come."""
        due = [frame for release, frame in self._held if release <= now]
        self._held = [(release, frame) for release, frame in self._held if release > now]
        return due

    def next_deadline(self):
        return self._held[0][0] if self._held else None
