"""What ARP (RFC 826) and IPv6 Neighbour Discovery (RFC 4861) share on a tap link.

Both map a next hop's IP address to a MAC and differ only in their messages, so the
bookkeeping lives here once and ``arp_cache`` and ``neighbour_discovery`` add the protocol.

Cache (``NeighbourCache``). Entries age out ``timeout`` seconds after the last packet that
confirmed them (RFC 1122 §2.3.2.1 requires a timeout; RFC 4861 §7.3 has entries go stale
when unconfirmed); the table holds at most ``max_entries`` and evicts the least recently
confirmed.

Resolution (``LinkResolver``). A packet for an unresolved next hop waits in a bounded
per-destination queue (RFC 1122 §2.3.2.2 "SHOULD save at least one"; RFC 4861 §7.2.2 "MUST
buffer at least one"); the oldest is dropped when the queue is full. Solicitations repeat
every ``request_interval`` (never faster than one per second per address, RFC 1122
§2.3.2.1; RFC 4861 RetransTimer) up to ``max_requests`` (Linux mcast_solicit,
MAX_MULTICAST_SOLICIT); one interval after the last, the queue is dropped and each packet
counted as ``<prefix>_unresolved``.

Announcement. ``start`` sends the first unsolicited announcement (gratuitous ARP, RFC 5227
§3; unsolicited NA, RFC 4861 §7.2.6) and ``poll`` repeats it ``announce_num`` times in all,
so neighbours replace stale entries for our address.
"""

from collections import Counter, OrderedDict, deque

from tunrelay.stack import limits
from tunrelay.wire.ethernet import EthernetHeader, is_unicast_mac

__all__ = ["NeighbourCache", "LinkResolver"]


class NeighbourCache:
    """IP address -> MAC with aging and a size bound, on an injected clock."""

    def __init__(self, timeout=limits.ARP_CACHE_TIMEOUT, max_entries=limits.ARP_CACHE_MAX_ENTRIES):
        self.timeout = timeout
        self.max_entries = max_entries
        self._entries = OrderedDict()   # ip -> (mac, expires); least recently confirmed first

    def __len__(self):
        return len(self._entries)

    def __contains__(self, ip):
        return ip in self._entries

    def lookup(self, ip, now):
        entry = self._entries.get(ip)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[ip]
            return None
        return entry[0]

    def update(self, ip, mac, now):
        """Insert or re-confirm ``ip``; evict the least recently confirmed when full."""
        self._entries.pop(ip, None)
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        self._entries[ip] = (mac, now + self.timeout)

    def refresh(self, ip, mac, now):
        """RFC 826 merge: update ``ip`` only if it is cached (and not expired)."""
        if self.lookup(ip, now) is None:
            return False
        self.update(ip, mac, now)
        return True

    def purge(self, now):
        for ip in [ip for ip, (_, expires) in self._entries.items() if expires <= now]:
            del self._entries[ip]


class _Pending:
    __slots__ = ("packets", "bytes", "requests_sent", "next_request")

    def __init__(self):
        self.packets = deque()
        self.bytes = 0
        self.requests_sent = 0
        self.next_request = 0.0


class LinkResolver:
    """Queues, solicitations and announcements for one address at ``mac``.

    Subclasses say how to solicit and announce (``_solicitation(ip)``, ``_announcement()``)
    and which next hops can be resolved at all (``_resolvable(ip)``); ``ethertype`` frames
    the IP packets. Counters are ``<prefix>_...`` in the shared ``drops`` and ``stats``.
    """

    prefix = None
    ethertype = None

    def __init__(self, address, mac, drops=None, stats=None, cache=None, *,
                 request_interval=limits.ARP_REQUEST_INTERVAL,
                 max_requests=limits.ARP_MAX_REQUESTS,
                 queue_max_packets=limits.ARP_QUEUE_MAX_PACKETS,
                 queue_max_bytes=limits.ARP_QUEUE_MAX_BYTES,
                 max_pending=limits.ARP_MAX_PENDING,
                 announce_num=limits.ARP_ANNOUNCE_NUM,
                 announce_interval=limits.ARP_ANNOUNCE_INTERVAL):
        if not is_unicast_mac(mac) or len(mac) != 6:
            raise ValueError("the responder MAC must be a 6-byte unicast address")
        self.address = address
        self.mac = mac
        self.drops = drops if drops is not None else Counter()
        self.stats = stats if stats is not None else Counter()
        self.cache = cache if cache is not None else NeighbourCache()
        self.request_interval = request_interval
        self.max_requests = max_requests
        self.queue_max_packets = queue_max_packets
        self.queue_max_bytes = queue_max_bytes
        self.max_pending = max_pending
        self.announce_interval = announce_interval
        self._announcements_left = announce_num
        self._next_announcement = None
        self._pending = {}

    # -- what a protocol provides ---------------------------------------------------------

    def _solicitation(self, target_ip):
        raise NotImplementedError

    def _announcement(self):
        raise NotImplementedError

    def _resolvable(self, next_hop):
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------

    def _count(self, counters, what, amount=1):
        counters["%s_%s" % (self.prefix, what)] += amount

    def frame(self, destination_mac, ethertype, payload):
        return EthernetHeader(destination_mac, self.mac, ethertype).emit(payload)

    def _announce(self):
        self._count(self.stats, "announcements_sent")
        self._announcements_left -= 1
        return self._announcement()

    def start(self, now):
        """The first announcement; the rest follow from :meth:`poll`."""
        if self._announcements_left <= 0:
            return []
        frame = self._announce()
        self._next_announcement = now + self.announce_interval
        return [frame]

    def send_ip(self, packet, next_hop, now):
        """Frame an IP ``packet`` for ``next_hop``, or queue it and start resolving."""
        if not self._resolvable(next_hop):
            # Broadcast/multicast/unspecified cannot be resolved and is never a reply target.
            self._count(self.drops, "bad_next_hop")
            return []
        mac = self.cache.lookup(next_hop, now)
        if mac is not None:
            return [self.frame(mac, self.ethertype, packet)]
        if len(packet) > self.queue_max_bytes:
            self._count(self.drops, "queue_overflow")
            return []
        frames = []
        pending = self._pending.get(next_hop)
        if pending is None:
            if len(self._pending) >= self.max_pending:
                self._count(self.drops, "too_many_pending")
                return []
            pending = self._pending[next_hop] = _Pending()
            frames.append(self._solicit(next_hop))
            pending.requests_sent = 1
            pending.next_request = now + self.request_interval
        pending.packets.append(packet)
        pending.bytes += len(packet)
        while (len(pending.packets) > self.queue_max_packets
               or pending.bytes > self.queue_max_bytes):
            # Drop the oldest: a fresh packet is likelier to still be useful (as Linux).
            pending.bytes -= len(pending.packets.popleft())
            self._count(self.drops, "queue_overflow")
        return frames

    def _solicit(self, target_ip):
        self._count(self.stats, "requests_sent")
        return self._solicitation(target_ip)

    def poll(self, now):
        frames = []
        for ip, pending in list(self._pending.items()):
            if pending.next_request > now:
                continue
            if pending.requests_sent >= self.max_requests:
                del self._pending[ip]
                self._count(self.drops, "unresolved", len(pending.packets))
                continue
            frames.append(self._solicit(ip))
            pending.requests_sent += 1
            pending.next_request = now + self.request_interval
        if self._next_announcement is not None and self._next_announcement <= now:
            frames.append(self._announce())
            self._next_announcement = (
                now + self.announce_interval if self._announcements_left > 0 else None)
        self.cache.purge(now)
        return frames

    def next_deadline(self):
        deadlines = [pending.next_request for pending in self._pending.values()]
        if self._next_announcement is not None:
            deadlines.append(self._next_announcement)
        return min(deadlines, default=None)

    def pending_packets(self, ip):
        pending = self._pending.get(ip)
        return 0 if pending is None else len(pending.packets)

    def is_pending(self, ip):
        return ip in self._pending

    def learned(self, ip, mac, now):
        """``ip`` is at ``mac``: cache it and return the frames that waited for it."""
        self.cache.update(ip, mac, now)
        pending = self._pending.pop(ip, None)
        if pending is None:
            return []
        return [self.frame(mac, self.ethertype, packet) for packet in pending.packets]
