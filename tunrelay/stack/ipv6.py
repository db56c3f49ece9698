"""The responder's IPv6 layer: receive processing, reassembly, ICMPv6, ND, output (RFC 8200).

``Ipv6Layer`` owns one unicast address. The interface (``interface.py``) hands it IPv6
packets (from a tun device, or from Ethernet frames in tap mode, with the frame's source MAC
and whether it was a link-layer multicast) and the TCP segments to send; like every core
here it is pure: the clock is injected as ``now`` and everything to transmit is appended
to the caller's ``out`` list (frames in tap mode, packets in tun mode).

Receive (RFC 8200 §4). The fixed header is checked (version, payload length); the packet
must be for us: our address, all-nodes (ff02::1) or our solicited-node group (RFC 4291
§2.7.1), the only groups a host with one address is in; we do not forward. The source must
name one node and not be ours (only a DAD probe may come from ::). The extension headers
are walked by ``tunrelay.wire.ipv6.header_chain``; what it refuses with a Parameter Problem
is answered with one (subject to RFC 4443 §2.4), everything else malformed is dropped. Each
drop is counted under ``ipv6_<reason>``.

Fragments (RFC 8200 §4.5) are checked as the RFC asks (a non-last fragment whose length is
not a multiple of 8, or one reaching past a 65535-byte payload, draws a Parameter Problem
pointing at the offending field) and a first fragment must hold the whole header chain
(RFC 7112, Parameter Problem code 3). They are reassembled with the IPv4 code's bounded
``Reassembler`` in its strict mode (RFC 5722: any overlap discards the datagram, an exact
duplicate is dropped alone), keyed by source, destination and identification, for 60 s at
most; on expiry a Time Exceeded quotes the first fragment. The reassembled packet (the
unfragmentable headers, then the fragmentable part) is processed like a received one; a
Fragment header inside it is dropped.

Upper layers: ICMPv6 echo requests to our address are answered and NS/NA go to Neighbour
Discovery (``neighbour_discovery``); TCP goes to the TCP layer with the IPv6 pseudo-header
left to it (RFC 8200 §8.1); UDP is checked (a zero checksum is forbidden over IPv6) and
draws port unreachable; No Next Header is dropped; any other protocol draws Parameter
Problem code 1 pointing at the field that named it.

Output: hop limit 64, or 255 for ND. A packet larger than the MTU is fragmented at the
source (RFC 8200 §4.5; IPv6 has no DF), with identifications from a counter that starts at
random. In tap mode next hops are on-link and resolved through Neighbour Discovery.
"""

import dataclasses
import random
import struct

from tunrelay.stack import limits
from tunrelay.stack.icmpv6 import Icmpv6Responder
from tunrelay.stack.neighbour_discovery import NeighbourDiscovery, checked_neighbour_message
from tunrelay.stack.reassembly import Reassembler
from tunrelay.wire import icmpv6 as icmpv6_wire
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ipv4 import PROTO_TCP, PROTO_UDP
from tunrelay.wire.ipv6 import (
    ALL_NODES, HEADER_LEN, MAX_PAYLOAD_LEN, NEXT_FRAGMENT, NEXT_ICMPV6, NEXT_NO_NEXT,
    PROBLEM_ERRONEOUS_FIELD, PROBLEM_INCOMPLETE_CHAIN, PROBLEM_UNRECOGNIZED_NEXT_HEADER,
    UNSPECIFIED, FragmentHeader, Ipv6Header, ParameterProblem, header_chain, is_multicast,
    is_valid_source, solicited_node)
from tunrelay.wire.udp import UdpHeader

__all__ = ["Ipv6Layer", "Ipv6Fragment"]

_PAYLOAD_LENGTH_FIELD = 4
_FRAGMENT_OFFSET_FIELD = 2     # within the Fragment header


@dataclasses.dataclass(frozen=True)
class Ipv6Fragment:
    """What reassembly needs of one fragment (the ``Reassembler``'s header protocol)."""
    source: bytes
    destination: bytes
    identification: int
    fragment_offset: int
    more_fragments: bool
    unfragmentable: bytes      # the IPv6 header and the extension headers before the Fragment header
    names_fragment_at: int     # the offset in ``unfragmentable`` of the Next Header naming it
    next_header: int           # the Fragment header's Next Header
    packet: bytes              # the fragment as received, to quote in Time Exceeded
    about_error: bool          # fragment zero carries an ICMPv6 error (no Time Exceeded about it)

    @property
    def header_length(self):
        return len(self.unfragmentable)

    def reassembled(self, fragmentable):
        """The whole packet: our unfragmentable part, then ``fragmentable`` (RFC 8200 §4.5)."""
        packet = bytearray(self.unfragmentable)
        packet[self.names_fragment_at] = self.next_header
        struct.pack_into("!H", packet, _PAYLOAD_LENGTH_FIELD,
                         len(packet) - HEADER_LEN + len(fragmentable))
        return bytes(packet) + fragmentable


def _ipv6_key(fragment):
    return (fragment.source, fragment.destination, fragment.identification)


class Ipv6Layer:
    def __init__(self, address, mac, mtu, drops, stats, deliver_tcp, *, id_start=None):
        if mtu < limits.IPV6_MIN_MTU:
            raise ValueError("IPv6 needs an MTU of at least %d" % limits.IPV6_MIN_MTU)
        if len(address) != 16 or not is_valid_source(address):
            raise ValueError("the responder's IPv6 address must be a unicast address")
        self.address = bytes(address)
        self.mtu = mtu
        self.drops = drops
        self.stats = stats
        self._deliver_tcp = deliver_tcp   # callable(source, destination, segment, now, link_multicast)
        self._groups = (ALL_NODES, solicited_node(self.address))
        self.neighbours = NeighbourDiscovery(self.address, mac, drops, stats)
        self.icmp = Icmpv6Responder(drops, stats)
        self.reassembler = Reassembler(
            drops, key=_ipv6_key, prefix="reasm6", strict_overlap=True,
            timeout=limits.IPV6_REASSEMBLY_TIMEOUT, max_datagram_bytes=HEADER_LEN + MAX_PAYLOAD_LEN)
        self._id = random.SystemRandom().randrange(1 << 32) if id_start is None else id_start

    # -- timers ---------------------------------------------------------------------------

    def start(self, now):
        resolver = self.neighbours.resolver
        return resolver.start(now) if resolver is not None else []

    def poll(self, now, out):
        for expired in self.reassembler.expire(now):
            first = expired.header
            header, _ = Ipv6Header.parse(first.packet)
            self._send_error(icmpv6_wire.TYPE_TIME_EXCEEDED, icmpv6_wire.CODE_REASSEMBLY_TIME_EXCEEDED,
                             header, first.packet, now, out, about_error=first.about_error)
        if self.neighbours.resolver is not None:
            out.extend(self.neighbours.resolver.poll(now))

    def next_deadline(self):
        deadlines = [self.reassembler.next_deadline()]
        if self.neighbours.resolver is not None:
            deadlines.append(self.neighbours.resolver.next_deadline())
        return min((d for d in deadlines if d is not None), default=None)

    # -- input ------------------------------------------------------------------------------

    def packet_received(self, packet, now, out, link_source=None, link_multicast=False,
                        reassembled=False):
        try:
            header, payload = Ipv6Header.parse(packet)
        except MalformedPacket as error:
            self.drops["ipv6_" + error.reason] += 1
            return
        packet = packet[:HEADER_LEN + len(payload)]
        if header.destination != self.address and header.destination not in self._groups:
            self.drops["ipv6_not_for_us"] += 1
            return
        if header.source == self.address or not (
                is_valid_source(header.source) or header.source == UNSPECIFIED):
            self.drops["ipv6_martian_source"] += 1
            return
        multicast = is_multicast(header.destination)
        try:
            chain = header_chain(header, payload, multicast)
            if chain.fragment is not None:
                if reassembled:
                    raise MalformedPacket("nested_fragment")
                self._fragment_received(header, payload, packet, chain, now, out, link_source,
                                        link_multicast)
                return
        except ParameterProblem as problem:
            self._parameter_problem(problem, header, packet, now, out, link_multicast)
            return
        except MalformedPacket as error:
            self.drops["ipv6_" + error.reason] += 1
            return
        self._upper_layer(header, payload, packet, chain, now, out, link_source, link_multicast)

    def _parameter_problem(self, problem, header, packet, now, out, link_multicast):
        self.drops["ipv6_" + problem.reason] += 1
        self._send_error(icmpv6_wire.TYPE_PARAMETER_PROBLEM, problem.code, header, packet, now,
                         out, pointer=problem.pointer, link_multicast=link_multicast,
                         even_to_multicast=problem.even_to_multicast)

    def _fragment_received(self, header, payload, packet, chain, now, out, link_source,
                           link_multicast):
        fragment = chain.fragment
        data = payload[chain.offset:]
        if fragment.more and (not data or len(data) % 8):
            raise ParameterProblem("bad_fragment_length", PROBLEM_ERRONEOUS_FIELD,
                                   _PAYLOAD_LENGTH_FIELD)
        if chain.fragment_at + fragment.offset + len(data) > MAX_PAYLOAD_LEN:
            raise ParameterProblem("bad_fragment_offset", PROBLEM_ERRONEOUS_FIELD,
                                   HEADER_LEN + chain.fragment_at + _FRAGMENT_OFFSET_FIELD)
        about_error = False
        if fragment.offset == 0:
            upper = self._chain_of_first_fragment(header, payload, chain)
            about_error = (upper.protocol == NEXT_ICMPV6 and upper.offset < len(payload)
                           and icmpv6_wire.is_error_type(payload[upper.offset]))
        self.stats["ipv6_fragments_received"] += 1
        piece = Ipv6Fragment(
            header.source, header.destination, fragment.identification, fragment.offset,
            fragment.more, packet[:HEADER_LEN + chain.fragment_at], chain.pointer,
            fragment.next_header, packet, about_error)
        whole = self.reassembler.add(piece, data, now)
        if whole is None:
            return
        first, fragmentable = whole
        self.stats["ipv6_reassembled"] += 1
        self.packet_received(first.reassembled(fragmentable), now, out, link_source,
                             link_multicast, reassembled=True)

    @staticmethod
    def _chain_of_first_fragment(header, payload, chain):
        """RFC 7112: fragment zero must hold every header up to the upper layer."""
        start = (chain.protocol, chain.offset, HEADER_LEN + chain.fragment_at)
        try:
            upper = header_chain(header, payload, is_multicast(header.destination), start)
        except ParameterProblem:
            raise
        except MalformedPacket:
            raise ParameterProblem("incomplete_header_chain", PROBLEM_INCOMPLETE_CHAIN, 0) from None
        if upper.fragment is not None:
            raise MalformedPacket("nested_fragment")
        return upper

    def _upper_layer(self, header, payload, packet, chain, now, out, link_source, link_multicast):
        upper = payload[chain.offset:]
        multicast = is_multicast(header.destination)
        if chain.protocol == NEXT_ICMPV6:
            self._icmpv6_received(header, upper, now, out, link_source, multicast)
        elif header.source == UNSPECIFIED:
            self.drops["ipv6_martian_source"] += 1
        elif chain.protocol == PROTO_TCP:
            if multicast:
                self.drops["tcp_multicast"] += 1
            else:
                self._deliver_tcp(header.source, header.destination, upper, now, link_multicast)
        elif chain.protocol == PROTO_UDP:
            try:
                UdpHeader.parse(upper, header.source, header.destination)
            except MalformedPacket as error:
                self.drops["udp_" + error.reason] += 1
                return
            self.drops["udp_port_closed"] += 1
            self._send_error(icmpv6_wire.TYPE_DEST_UNREACHABLE, icmpv6_wire.CODE_PORT_UNREACHABLE,
                             header, packet, now, out, link_multicast=link_multicast)
        elif chain.protocol == NEXT_NO_NEXT:
            self.drops["ipv6_no_next_header"] += 1
        else:
            self._parameter_problem(ParameterProblem(
                "unknown_protocol", PROBLEM_UNRECOGNIZED_NEXT_HEADER, chain.pointer),
                header, packet, now, out, link_multicast)

    def _icmpv6_received(self, header, data, now, out, link_source, multicast):
        try:
            message = icmpv6_wire.parse(data, header.source, header.destination)
        except MalformedPacket as error:
            self.drops["icmpv6_" + error.reason] += 1
            return
        if header.source == UNSPECIFIED and message.type != icmpv6_wire.TYPE_NEIGHBOUR_SOLICITATION:
            self.drops["ipv6_martian_source"] += 1   # only a DAD probe may come from ::
        elif message.type == icmpv6_wire.TYPE_ECHO_REQUEST:
            if multicast:
                self.drops["icmpv6_multicast_echo"] += 1
                return
            reply = self.icmp.echo_reply(message)
            self.send(NEXT_ICMPV6, header.source,
                      icmpv6_wire.emit(reply, self.address, header.source), now, out,
                      traffic_class=header.traffic_class)
        elif message.type in (icmpv6_wire.TYPE_NEIGHBOUR_SOLICITATION,
                              icmpv6_wire.TYPE_NEIGHBOUR_ADVERTISEMENT):
            try:
                neighbour = checked_neighbour_message(header, message)
            except MalformedPacket as error:
                self.drops["nd_" + error.reason] += 1
                return
            out.extend(self.neighbours.received(header, neighbour, link_source, now))
        else:
            # Errors and replies for us have no consumer; RS, RA, MLD are not ours to serve.
            self.drops["icmpv6_unhandled_type"] += 1

    # -- output -------------------------------------------------------------------------------

    def _send_error(self, icmp_type, code, header, invoking, now, out, **kwargs):
        message = self.icmp.error(icmp_type, code, header, invoking, now, **kwargs)
        if message is not None:
            self.send(NEXT_ICMPV6, header.source,
                      icmpv6_wire.emit(message, self.address, header.source), now, out)

    def send(self, protocol, destination, payload, now, out, traffic_class=0):
        """Send ``payload`` (an upper-layer message) to ``destination``, fragmented to the MTU."""
        if len(payload) > MAX_PAYLOAD_LEN:
            self.drops["tx_too_big"] += 1
            return
        header = Ipv6Header(self.address, destination, protocol,
                            hop_limit=limits.IPV6_DEFAULT_HOP_LIMIT, traffic_class=traffic_class)
        if HEADER_LEN + len(payload) <= self.mtu:
            packets = [header.emit(payload)]
        else:
            packets = self._fragments(header, payload)
            self.stats["ipv6_fragments_sent"] += len(packets)
        resolver = self.neighbours.resolver
        if resolver is None:
            out.extend(packets)
        else:
            for packet in packets:
                out.extend(resolver.send_ip(packet, destination, now))

    def _fragments(self, header, payload):
        chunk = (self.mtu - HEADER_LEN - FragmentHeader.LENGTH) // 8 * 8
        identification, self._id = self._id, (self._id + 1) & 0xFFFFFFFF
        fragment_header = dataclasses.replace(header, next_header=NEXT_FRAGMENT)
        return [fragment_header.emit(
            FragmentHeader(header.next_header, offset, offset + chunk < len(payload),
                           identification).emit() + payload[offset:offset + chunk])
                for offset in range(0, len(payload), chunk)]
