"""Neighbour Discovery for the responder's IPv6 address (RFC 4861, RFC 4862 §5.4).

Validation (§7.1.1, §7.1.2): a Neighbour Solicitation or Advertisement counts only with hop
limit 255 (it was not forwarded), ICMP code 0, a target that is not multicast, and no
zero-length option. A solicitation from the unspecified address is a Duplicate Address
Detection probe and must go to a solicited-node group without a source link-layer option;
a solicited advertisement must not go to a multicast group.

Solicitations (§7.2.3, §7.2.4). Only a solicitation whose target is our address is
answered: every other one, in particular the kernel's own DAD probes for the addresses of
its tap device, is counted (``nd_not_for_us``) and left alone, so the responder can never
make the kernel's address fail DAD. The answer goes to the solicitor with the Solicited
and Override flags and, in tap mode, our MAC as the target link-layer option, framed to
the MAC the solicitation named (else the one cached, else the frame's own source). The
solicitor's link-layer address is cached. A DAD probe for our address is somebody else
wanting it: we defend it with an advertisement to all nodes (RFC 4862 §5.4.3).

Advertisements (§7.2.5) update an entry we hold or are resolving; one for an address we
never asked about is dropped, and one claiming our own address is a conflict, counted.

The responder does not run DAD itself: the configuration already refuses an address the
kernel holds, and the other nodes on the link are the operator's. It announces itself
instead with ``ND_MAX_NEIGHBOR_ADVERTISEMENT`` unsolicited advertisements (§7.2.6).
Resolution, its queues and the cache are shared with ARP (``tunrelay.stack.neighbours``):
a solicitation to the target's solicited-node group every RetransTimer, at most
MAX_MULTICAST_SOLICIT times. In tun mode there is no link layer: solicitations that reach
us are answered without the option, and nothing is resolved.
"""

from tunrelay.stack import limits
from tunrelay.stack.neighbours import LinkResolver, NeighbourCache
from tunrelay.wire import icmpv6
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ethernet import ETHERTYPE_IPV6
from tunrelay.wire.icmpv6 import (
    ND_HOP_LIMIT, TYPE_NEIGHBOUR_ADVERTISEMENT, TYPE_NEIGHBOUR_SOLICITATION, NeighbourMessage)
from tunrelay.wire.ipv6 import (
    ALL_NODES, NEXT_ICMPV6, UNSPECIFIED, Ipv6Header, is_multicast, is_valid_source,
    multicast_mac, solicited_node)

__all__ = ["NeighbourDiscovery", "NdResolver", "checked_neighbour_message", "nd_packet"]


def nd_packet(source, destination, neighbour_message):
    """The IPv6 packet carrying an NS or NA, hop limit 255 and checksum filled in."""
    message = icmpv6.emit(neighbour_message.to_message(), source, destination)
    return Ipv6Header(source, destination, NEXT_ICMPV6, hop_limit=ND_HOP_LIMIT).emit(message)


def checked_neighbour_message(header, message):
    """The RFC 4861 §7.1 checks; a :class:`NeighbourMessage` or MalformedPacket."""
    if header.hop_limit != ND_HOP_LIMIT:
        raise MalformedPacket("bad_hop_limit")
    if message.code != 0:
        raise MalformedPacket("bad_code")
    neighbour = NeighbourMessage.parse(message)
    if is_multicast(neighbour.target):
        raise MalformedPacket("multicast_target")
    if neighbour.type == TYPE_NEIGHBOUR_SOLICITATION and header.source == UNSPECIFIED:
        if header.destination != solicited_node(neighbour.target):
            raise MalformedPacket("dad_not_to_solicited_node")
        if neighbour.link_address is not None:
            raise MalformedPacket("dad_with_link_address")
    if (neighbour.type == TYPE_NEIGHBOUR_ADVERTISEMENT and neighbour.solicited
            and is_multicast(header.destination)):
        raise MalformedPacket("solicited_to_multicast")
    return neighbour


class NdResolver(LinkResolver):
    """Address resolution for IPv6 next hops on a tap link."""

    prefix = "nd"
    ethertype = ETHERTYPE_IPV6

    def __init__(self, address, mac, drops=None, stats=None):
        super().__init__(address, mac, drops, stats, NeighbourCache(limits.ND_CACHE_TIMEOUT),
                         request_interval=limits.ND_RETRANS_TIMER,
                         max_requests=limits.ND_MAX_MULTICAST_SOLICIT,
                         announce_num=limits.ND_MAX_NEIGHBOR_ADVERTISEMENT,
                         announce_interval=limits.ND_ANNOUNCE_INTERVAL)

    def _solicitation(self, target_ip):
        group = solicited_node(target_ip)
        return self.frame(multicast_mac(group), ETHERTYPE_IPV6, nd_packet(
            self.address, group, NeighbourMessage(TYPE_NEIGHBOUR_SOLICITATION, target_ip, self.mac)))

    def _announcement(self):
        return self.frame(multicast_mac(ALL_NODES), ETHERTYPE_IPV6, nd_packet(
            self.address, ALL_NODES, NeighbourMessage(
                TYPE_NEIGHBOUR_ADVERTISEMENT, self.address, self.mac, override=True)))

    def _resolvable(self, next_hop):
        return is_valid_source(next_hop)


class NeighbourDiscovery:
    """NS/NA processing for ``address``; with a ``mac`` (tap) it resolves too."""

    def __init__(self, address, mac, drops, stats):
        self.address = address
        self.mac = mac
        self.drops = drops
        self.stats = stats
        self.resolver = NdResolver(address, mac, drops, stats) if mac is not None else None

    def received(self, header, neighbour, link_source, now):
        """A checked NS or NA from ``header.source``; return the frames (tap) or packets to send."""
        if neighbour.type == TYPE_NEIGHBOUR_SOLICITATION:
            return self._solicited(header, neighbour, link_source, now)
        return self._advertised(neighbour, now)

    def _solicited(self, header, neighbour, link_source, now):
        if neighbour.target != self.address:
            self.drops["nd_not_for_us"] += 1
            return []
        if header.source == UNSPECIFIED:
            self.stats["nd_duplicate_address_defended"] += 1
            return self._advertise(ALL_NODES, False, multicast_mac(ALL_NODES), now)
        out = []
        link_destination = neighbour.link_address
        if self.resolver is not None:
            if link_destination is not None:
                out.extend(self.resolver.learned(header.source, link_destination, now))
            else:
                link_destination = self.resolver.cache.lookup(header.source, now) or link_source
        return self._advertise(header.source, True, link_destination, now) + out

    def _advertise(self, destination, solicited, link_destination, now):
        self.stats["nd_advertisements_sent"] += 1
        packet = nd_packet(self.address, destination, NeighbourMessage(
            TYPE_NEIGHBOUR_ADVERTISEMENT, self.address, self.mac, solicited=solicited,
            override=True))
        if self.resolver is None:
            return [packet]
        if link_destination is None:
            return self.resolver.send_ip(packet, destination, now)
        return [self.resolver.frame(link_destination, ETHERTYPE_IPV6, packet)]

    def _advertised(self, neighbour, now):
        if neighbour.target == self.address:
            self.drops["nd_address_conflict"] += 1
            return []
        resolver = self.resolver
        if (resolver is None or neighbour.link_address is None
                or not (resolver.is_pending(neighbour.target)
                        or resolver.cache.lookup(neighbour.target, now) is not None)):
            self.drops["nd_unsolicited_advertisement"] += 1
            return []
        return resolver.learned(neighbour.target, neighbour.link_address, now)
