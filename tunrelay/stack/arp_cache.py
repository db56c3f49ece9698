"""ARP for the responder's one IPv4 address on a tap link (RFC 826, RFC 1122 §2.3.2, RFC 5227).

Reception follows RFC 826's algorithm: if the sender is already cached its entry is
refreshed (the "merge" flag); if we are the target, the sender is added when it was not,
and a request is answered with a reply sent straight to the requester. Broadcast and
unicast requests (Linux re-validates stale entries with unicast requests) are handled
alike. Probes with sender 0.0.0.0 (RFC 5227 §2.1.1) are answered but never cached, and a
sender claiming our own address is a conflict: counted, never cached.

Cache. Entries age out ``ARP_CACHE_TIMEOUT`` seconds after the last ARP packet that
confirmed them (RFC 1122 §2.3.2.1 requires a timeout); the table holds at most
``ARP_CACHE_MAX_ENTRIES`` and evicts the least recently confirmed.

Resolution. A packet for an unresolved next hop waits in a bounded per-destination queue
(RFC 1122 §2.3.2.2: "SHOULD save at least one"); the oldest is dropped when the queue is
full. Requests repeat every ``ARP_REQUEST_INTERVAL`` (never faster than one per second per
address, §2.3.2.1) up to ``ARP_MAX_REQUESTS``; one interval after the last, the queue is
dropped and each packet counted as ``arp_unresolved``.

Announcement. ``start`` sends a gratuitous ARP request (sender and target IP both ours,
RFC 5227 §3) and ``poll`` repeats it ``ARP_ANNOUNCE_NUM`` times in all, so neighbours
replace stale entries for our address.
"""

from collections import Counter, OrderedDict, deque

from tunrelay.stack import limits
from tunrelay.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket
from tunrelay.wire.ethernet import (
    BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ZERO_MAC, EthernetHeader, is_unicast_mac)
from tunrelay.wire.ipv4 import is_valid_source

__all__ = ["ArpCache", "ArpResolver"]

_UNSPECIFIED = b"\x00\x00\x00\x00"


class ArpCache:
    """IPv4 address -> MAC with aging and a size bound, on an injected clock."""

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


class ArpResolver:
    """ARP endpoint for ``address`` (4 packed bytes) at ``mac``; produces Ethernet frames."""

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
        self.cache = cache if cache is not None else ArpCache()
        self.request_interval = request_interval
        self.max_requests = max_requests
        self.queue_max_packets = queue_max_packets
        self.queue_max_bytes = queue_max_bytes
        self.max_pending = max_pending
        self.announce_interval = announce_interval
        self._announcements_left = announce_num
        self._next_announcement = None
        self._pending = {}

    # -- frames -------------------------------------------------------------------------

    def _frame(self, destination_mac, ethertype, payload):
        return EthernetHeader(destination_mac, self.mac, ethertype).emit(payload)

    def _request(self, target_ip):
        self.stats["arp_requests_sent"] += 1
        return self._frame(BROADCAST_MAC, ETHERTYPE_ARP, ArpPacket(
            OP_REQUEST, self.mac, self.address, ZERO_MAC, target_ip).emit())

    def _announcement(self):
        self.stats["arp_announcements_sent"] += 1
        self._announcements_left -= 1
        return self._frame(BROADCAST_MAC, ETHERTYPE_ARP, ArpPacket(
            OP_REQUEST, self.mac, self.address, ZERO_MAC, self.address).emit())

    # -- events -------------------------------------------------------------------------

    def start(self, now):
        """The first gratuitous ARP; the rest follow from :meth:`poll`."""
        if self._announcements_left <= 0:
            return []
        frame = self._announcement()
        self._next_announcement = now + self.announce_interval
        return [frame]

    def arp_received(self, arp, now):
        """Handle one parsed ARP packet; return frames to send (reply, released packets)."""
        if not is_unicast_mac(arp.sender_mac):
            self.drops["arp_bad_sender_mac"] += 1
            return []
        if arp.sender_mac == self.mac:
            self.drops["arp_looped_back"] += 1
            return []
        if arp.sender_ip == self.address:
            self.drops["arp_address_conflict"] += 1
            return []
        probe = arp.sender_ip == _UNSPECIFIED
        if not probe and not is_valid_source(arp.sender_ip):
            self.drops["arp_bad_sender_ip"] += 1
            return []
        frames = []
        refreshed = not probe and self.cache.refresh(arp.sender_ip, arp.sender_mac, now)
        if arp.target_ip != self.address:
            if not refreshed:
                self.drops["arp_not_for_us"] += 1
            return frames
        if not probe:
            if not refreshed:
                self.cache.update(arp.sender_ip, arp.sender_mac, now)
            frames.extend(self._release(arp.sender_ip, arp.sender_mac))
        if arp.operation == OP_REQUEST:
            self.stats["arp_replies_sent"] += 1
            frames.insert(0, self._frame(arp.sender_mac, ETHERTYPE_ARP, ArpPacket(
                OP_REPLY, self.mac, self.address, arp.sender_mac, arp.sender_ip).emit()))
        return frames

    def send_ip(self, packet, next_hop, now):
        """Frame an IPv4 ``packet`` for ``next_hop``, or queue it and start resolving."""
        if not is_valid_source(next_hop):
            # Broadcast/multicast/unspecified cannot be resolved and is never a reply target.
            self.drops["arp_bad_next_hop"] += 1
            return []
        mac = self.cache.lookup(next_hop, now)
        if mac is not None:
            return [self._frame(mac, ETHERTYPE_IPV4, packet)]
        if len(packet) > self.queue_max_bytes:
            self.drops["arp_queue_overflow"] += 1
            return []
        frames = []
        pending = self._pending.get(next_hop)
        if pending is None:
            if len(self._pending) >= self.max_pending:
                self.drops["arp_too_many_pending"] += 1
                return []
            pending = self._pending[next_hop] = _Pending()
            frames.append(self._request(next_hop))
            pending.requests_sent = 1
            pending.next_request = now + self.request_interval
        pending.packets.append(packet)
        pending.bytes += len(packet)
        while (len(pending.packets) > self.queue_max_packets
               or pending.bytes > self.queue_max_bytes):
            # Drop the oldest: a fresh packet is likelier to still be useful (as Linux).
            pending.bytes -= len(pending.packets.popleft())
            self.drops["arp_queue_overflow"] += 1
        return frames

    def poll(self, now):
        frames = []
        for ip, pending in list(self._pending.items()):
            if pending.next_request > now:
                continue
            if pending.requests_sent >= self.max_requests:
                del self._pending[ip]
                self.drops["arp_unresolved"] += len(pending.packets)
                continue
            frames.append(self._request(ip))
            pending.requests_sent += 1
            pending.next_request = now + self.request_interval
        if self._next_announcement is not None and self._next_announcement <= now:
            frames.append(self._announcement())
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

    def _release(self, ip, mac):
        pending = self._pending.pop(ip, None)
        if pending is None:
            return []
        return [self._frame(mac, ETHERTYPE_IPV4, packet) for packet in pending.packets]
