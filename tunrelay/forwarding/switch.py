"""A learning switch for tap mode (IEEE 802.1D-2004 §7.8, the filtering database).

Ports are the device and each peer. A frame's source MAC is learned against the port it
came in on; a unicast destination that is known goes out of that port only; broadcast,
multicast and unknown unicast flood to every port except the ingress. An entry ages out
``aging`` seconds after it was last seen (802.1D's default is 300 s), and a MAC seen on a
new port simply moves there (a host that roamed, or a VM that migrated).

The table is bounded per port and in total, so a peer that floods random source MACs can
fill only its own share: once a port holds ``max_per_port`` entries, new MACs from it are
not learned (their frames still flow, by flooding) and the refusal is reported to the
caller for counting. Expired entries are evicted lazily on lookup and swept when the
table is full, at most once per SWEEP_INTERVAL (a sweep walks the whole table, and a
flood of new MACs against a full table must not pay for one per frame), so memory never
exceeds the bounds whatever the traffic.
"""

__all__ = ["LearningSwitch"]

DEFAULT_AGING = 300.0
DEFAULT_MAX_PER_PORT = 1024
DEFAULT_MAX_TOTAL = 65536
SWEEP_INTERVAL = 1.0


class LearningSwitch:
    def __init__(self, aging=DEFAULT_AGING, max_per_port=DEFAULT_MAX_PER_PORT, max_total=DEFAULT_MAX_TOTAL):
        self.aging = aging
        self.max_per_port = max_per_port
        self.max_total = max_total
        self._entries = {}       # mac -> [port, last seen]
        self._per_port = {}      # port -> number of entries
        self._last_sweep = None

    def __len__(self):
        return len(self._entries)

    def learn(self, mac, port, now):
        """Record that ``mac`` was seen on ``port``; return a drop reason if refused, else None."""
        entry = self._entries.get(mac)
        if entry is not None:
            if entry[0] is not port:
                self._count(entry[0], -1)
                self._count(port, +1)
                entry[0] = port
            entry[1] = now
            return None
        if self._per_port.get(port, 0) >= self.max_per_port:
            self._sweep(now)
            if self._per_port.get(port, 0) >= self.max_per_port:
                return "mac_table_port_full"
        if len(self._entries) >= self.max_total:
            self._sweep(now)
            if len(self._entries) >= self.max_total:
                return "mac_table_full"
        self._entries[mac] = [port, now]
        self._count(port, +1)
        return None

    def lookup(self, mac, now):
        """The port ``mac`` was last seen on, or None if unknown or aged out."""
        entry = self._entries.get(mac)
        if entry is None:
            return None
        if now - entry[1] > self.aging:
            self._remove(mac, entry)
            return None
        return entry[0]

    def forget_port(self, port):
        for mac, entry in [(mac, entry) for mac, entry in self._entries.items() if entry[0] is port]:
            self._remove(mac, entry)
        self._per_port.pop(port, None)

    def _count(self, port, delta):
        self._per_port[port] = self._per_port.get(port, 0) + delta

    def _remove(self, mac, entry):
        del self._entries[mac]
        self._count(entry[0], -1)

    def _sweep(self, now):
        if self._last_sweep is not None and 0 <= now - self._last_sweep < SWEEP_INTERVAL:
            return
        self._last_sweep = now
        for mac, entry in [(mac, entry) for mac, entry in self._entries.items() if now - entry[1] > self.aging]:
            self._remove(mac, entry)
