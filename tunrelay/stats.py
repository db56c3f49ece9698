"""Traffic counters and rate-limited drop reporting.

Every dropped frame or message is counted under a short reason name, per peer when the
peer is known and globally otherwise. Logging is separate from counting: a flood of bad
input must be visible in the counters without turning the log into the flood, so each
reason logs at most once per interval and the next line says how many were suppressed.
"""

from collections import Counter

from twisted.logger import Logger

from tunrelay.constants import DROP_LOG_INTERVAL

__all__ = ["Counters", "DropReporter"]


class Counters:
    __slots__ = ("rx_bytes", "rx_packets", "tx_bytes", "tx_packets", "drops")

    def __init__(self):
        self.rx_bytes = self.rx_packets = self.tx_bytes = self.tx_packets = 0
        self.drops = Counter()

    def as_dict(self):
        return {"rx_bytes": self.rx_bytes, "rx_packets": self.rx_packets, "tx_bytes": self.tx_bytes,
                "tx_packets": self.tx_packets, "drops": dict(self.drops)}


class DropReporter:
    """Counts drops and logs each reason at most once per ``interval`` seconds."""

    log = Logger(namespace="tunrelay.drops")

    def __init__(self, clock, interval=DROP_LOG_INTERVAL):
        self.clock = clock
        self.interval = interval
        self.counters = Counters()        # drops with no known peer
        self._next_log = {}               # reason -> earliest time to log again
        self._suppressed = Counter()

    def drop(self, reason, peer=None, detail=""):
        if self._counted(reason, peer):
            self._log(reason, peer, detail)

    def drop_from(self, reason, peer, link, address):
        """``drop`` for a message from ``address`` on ``link``, described only if it is logged
        (a flood of bad datagrams then costs a count each, not a formatted string each)."""
        if self._counted(reason, peer):
            self._log(reason, peer, link.describe(address))

    def count(self, reason, peer=None):
        """Count a drop that is expected and never worth a warning (the kernel's own link-local
        chatter on a fresh device)."""
        counters = peer.counters if peer is not None else self.counters
        counters.drops[reason] += 1

    def _counted(self, reason, peer):
        """Count the drop; True if it is to be logged (its reason's interval has passed)."""
        counters = peer.counters if peer is not None else self.counters
        counters.drops[reason] += 1
        now = self.clock.seconds()
        if now < self._next_log.get(reason, 0.0):
            self._suppressed[reason] += 1
            return False
        self._next_log[reason] = now + self.interval
        return True

    def _log(self, reason, peer, detail):
        suppressed = self._suppressed.pop(reason, 0)
        self.log.warn(
            "dropped ({reason}) from {peer}{detail}{suppressed_note}",
            reason=reason, peer=peer.name if peer is not None else "unknown peer",
            detail=": " + detail if detail else "",
            suppressed_note=" (%d more since the last report)" % suppressed if suppressed else "",
            suppressed=suppressed)
