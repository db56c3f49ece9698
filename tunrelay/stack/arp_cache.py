"""ARP for the responder's one IPv4 address on a tap link (RFC 826, RFC 1122 §2.3.2, RFC 5227).

Reception follows RFC 826's algorithm: if the sender is already cached its entry is
refreshed (the "merge" flag); if we are the target, the sender is added when it was not,
and a request is answered with a reply sent straight to the requester. Broadcast and
unicast requests (Linux re-validates stale entries with unicast requests) are handled
alike. Probes with sender 0.0.0.0 (RFC 5227 §2.1.1) are answered but never cached, and a
sender claiming our own address is a conflict: counted, never cached.

The cache, the queues of packets waiting for resolution and the announcement schedule are
ARP's and Neighbour Discovery's alike (``tunrelay.stack.neighbours``): entries age out
``ARP_CACHE_TIMEOUT`` seconds after the last ARP packet that confirmed them, requests
repeat every ``ARP_REQUEST_INTERVAL`` up to ``ARP_MAX_REQUESTS``, and the announcement is a
gratuitous ARP request (sender and target IP both ours, RFC 5227 §3) sent
``ARP_ANNOUNCE_NUM`` times, so neighbours replace stale entries for our address.
"""

from tunrelay.stack.neighbours import LinkResolver, NeighbourCache
from tunrelay.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket
from tunrelay.wire.ethernet import (
    BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ZERO_MAC, is_unicast_mac)
from tunrelay.wire.ipv4 import is_valid_source

__all__ = ["ArpCache", "ArpResolver"]

_UNSPECIFIED = b"\x00\x00\x00\x00"


ArpCache = NeighbourCache


class ArpResolver(LinkResolver):
    """ARP endpoint for ``address`` (4 packed bytes) at ``mac``; produces Ethernet frames."""

    prefix = "arp"
    ethertype = ETHERTYPE_IPV4

    def _arp(self, operation, target_mac, target_ip, destination_mac=BROADCAST_MAC):
        return self.frame(destination_mac, ETHERTYPE_ARP, ArpPacket(
            operation, self.mac, self.address, target_mac, target_ip).emit())

    def _solicitation(self, target_ip):
        return self._arp(OP_REQUEST, ZERO_MAC, target_ip)

    def _announcement(self):
        return self._arp(OP_REQUEST, ZERO_MAC, self.address)

    def _resolvable(self, next_hop):
        return is_valid_source(next_hop)

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
            frames.extend(self.learned(arp.sender_ip, arp.sender_mac, now))
        if arp.operation == OP_REQUEST:
            self.stats["arp_replies_sent"] += 1
            frames.insert(0, self._arp(OP_REPLY, arp.sender_mac, arp.sender_ip, arp.sender_mac))
        return frames
