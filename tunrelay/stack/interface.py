"""The responder's network interface: demultiplexing and output (RFC 1122, RFC 791, RFC 826).

One ``ResponderInterface`` owns at most one IPv4 and one IPv6 address (and, in tap mode,
one MAC). IPv6 is the ``Ipv6Layer``'s (``ipv6.py``, RFC 8200); this module keeps the link,
IPv4 and the TCP hand-over for both. Frames come
in through ``frame_received`` and everything to transmit is returned as a list of frames;
timers run from ``poll`` at ``next_deadline``. The clock is injected as ``now`` (seconds)
and nothing here does I/O, so the same object runs under Twisted and in unit tests.

Input. In tap mode an Ethernet frame is accepted if addressed to our MAC, broadcast or
multicast; ARP goes to the resolver, IPv4 is processed, IPv6 goes to the IPv6 layer,
everything else is dropped. In tun mode the frame is the bare IP packet, told apart by its
version nibble. IPv4 is validated (RFC 1122 §3.2.1: version,
IHL, length, checksum; a source that is not a unicast host or is our own address is a
martian), must be addressed to our address (we do not forward, §3.3.1, and do not answer
broadcast pings), and fragments are reassembled. Then: ICMP echo requests are answered;
TCP goes to the pluggable ``TcpLayer``; UDP (no services) draws port unreachable and
any other protocol draws protocol unreachable (RFC 1122 §3.2.2.1, §4.1.3.1).

Output. Datagrams get TTL 64 and an identification from a counter. TCP is sent with DF
(path MTU discovery, RFC 1191) when it fits the MTU; ICMP replies are sent without DF as
Linux does. Anything larger than the MTU is fragmented. In tap mode the peer is on-link,
so the next hop is the destination itself and is resolved through ARP.

Robustness. Bad input never raises: every rejection is counted in ``drops`` under a
"<layer>_<reason>" key (e.g. ``ipv4_bad_checksum``). A ``MalformedPacket`` raised by the
TCP layer is counted the same way (``tcp_<reason>``). Packets of a family we hold no
address in are ``ipv4_not_for_us`` or ``ipv6_not_for_us``.
"""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from typing import List, Optional, Protocol, Tuple

from tunrelay.stack import limits
from tunrelay.stack.arp_cache import ArpResolver
from tunrelay.stack.icmp import IcmpResponder
from tunrelay.stack.ipv6 import Ipv6Layer
from tunrelay.stack.reassembly import Reassembler, fragment_datagram
from tunrelay.wire import icmp as icmp_wire
from tunrelay.wire.arp import ArpPacket
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ethernet import (
    ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetHeader, is_multicast_mac, is_unicast_mac)
from tunrelay.wire.icmp import IcmpMessage
from tunrelay.wire.ipv4 import (
    MAX_DATAGRAM_LEN, MIN_HEADER_LEN, PROTO_ICMP, PROTO_TCP, PROTO_UDP, Ipv4Header,
    is_valid_source)
from tunrelay.wire.ipv6 import is_valid_source as is_valid_ipv6_source
from tunrelay.wire.udp import UdpHeader

__all__ = ["ResponderInterface", "TcpLayer"]


class TcpLayer(Protocol):
    """What the interface needs from the TCP core (implemented elsewhere)."""

    def segment_received(self, source: bytes, destination: bytes, segment: bytes,
                         now: float) -> None:
        """A segment for us; packed addresses (4 or 16 bytes); checksum NOT yet verified."""

    def pop_outgoing(self) -> List[Tuple[bytes, bytes, bytes]]:
        """(source, destination, segment incl. valid checksum) tuples to send."""

    def poll(self, now: float) -> None:
        """Run timers due at ``now``."""

    def next_deadline(self) -> Optional[float]:
        """When ``poll`` must next be called, or None."""


def _parse(drops, layer, parse, *args):
    """Run a wire parser; on MalformedPacket count ``<layer>_<reason>`` and return None."""
    try:
        return parse(*args)
    except MalformedPacket as error:
        drops["%s_%s" % (layer, error.reason)] += 1
        return None


def _addresses(address):
    """One address or several -> (IPv4Address or None, IPv6Address or None)."""
    if isinstance(address, (str, bytes, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address = [address]
    by_version = {}
    for item in address:
        item = ipaddress.ip_address(item)
        if item.version in by_version:
            raise ValueError("at most one IPv4 and one IPv6 address")
        by_version[item.version] = item
    if not by_version:
        raise ValueError("the responder needs an address")
    return by_version.get(4), by_version.get(6)


class ResponderInterface:
    """See the module docstring. ``counters()`` returns a snapshot of all counters.

    ``address`` is one address or a list of at most one per family; ``self.address`` is
    the IPv4 one (or None) and ``self.address6`` the IPv6 one (or None).
    """

    def __init__(self, mode: str, address, mac: bytes | None = None, mtu: int = 1500,
                 tcp: TcpLayer | None = None, *, ip_id_start: int | None = None):
        if mode not in ("tun", "tap"):
            raise ValueError("mode must be 'tun' or 'tap'")
        if not limits.IPV4_MIN_MTU <= mtu <= MAX_DATAGRAM_LEN:
            raise ValueError("MTU must be within %d..%d" % (limits.IPV4_MIN_MTU, MAX_DATAGRAM_LEN))
        self.mode = mode
        self.address, self.address6 = _addresses(address)
        self._ip = self.address.packed if self.address is not None else None
        if self._ip is not None and not is_valid_source(self._ip):
            raise ValueError("the responder address must be a unicast host address")
        self.mtu = mtu
        self.tcp = tcp
        self.drops = Counter()
        self.stats = Counter()
        if mode == "tap":
            if mac is None or len(mac) != 6 or not is_unicast_mac(mac):
                raise ValueError("tap mode needs a 6-byte unicast MAC")
            self.mac = bytes(mac)
        else:
            self.mac = None
        self.resolver = (ArpResolver(self._ip, self.mac, self.drops, self.stats)
                         if self.mac is not None and self._ip is not None else None)
        self.ipv6 = None
        if self.address6 is not None:
            self.ipv6 = Ipv6Layer(self.address6.packed, self.mac, mtu, self.drops, self.stats,
                                  self._tcp_received, id_start=ip_id_start)
        # The parts share the interface's counters so that one snapshot shows everything.
        self.reassembler = Reassembler(self.drops)
        self.icmp = IcmpResponder(self.drops, self.stats)
        self._ip_id = random.SystemRandom().randrange(0x10000) if ip_id_start is None \
            else ip_id_start & 0xFFFF

    # -- public API -------------------------------------------------------------------------

    def start(self, now: float) -> list[bytes]:
        """Frames to send when the interface comes up: announcements in tap mode."""
        out = self.resolver.start(now) if self.resolver else []
        if self.ipv6 is not None:
            out.extend(self.ipv6.start(now))
        return self._transmitted(out)

    def frame_received(self, frame: bytes, now: float) -> list[bytes]:
        """Process one frame from the link; return the frames to send in response."""
        self.stats["rx_frames"] += 1
        self.stats["rx_bytes"] += len(frame)
        out = []
        frame = bytes(frame)
        if self.mode == "tap":
            self._ethernet_received(frame, now, out)
        else:
            self._ip_received(frame, now, out, link_broadcast=False)
        self._drain_tcp(now, out)
        return self._transmitted(out)

    def poll(self, now: float) -> list[bytes]:
        """Run timers due at ``now``; return the frames to send."""
        out = []
        for expired in self.reassembler.expire(now):
            header, first = expired.header, expired.first_payload
            self._send_icmp_error(icmp_wire.TYPE_TIME_EXCEEDED,
                                  icmp_wire.CODE_REASSEMBLY_TIME_EXCEEDED,
                                  header, first, None, now, False, out)
        if self.resolver is not None:
            out.extend(self.resolver.poll(now))
        if self.ipv6 is not None:
            self.ipv6.poll(now, out)
        if self.tcp is not None:
            self._call_tcp(self.tcp.poll, now)
        self._drain_tcp(now, out)
        return self._transmitted(out)

    def next_deadline(self) -> float | None:
        deadlines = [self.reassembler.next_deadline()]
        if self.resolver is not None:
            deadlines.append(self.resolver.next_deadline())
        if self.ipv6 is not None:
            deadlines.append(self.ipv6.next_deadline())
        if self.tcp is not None:
            deadlines.append(self.tcp.next_deadline())
        return min((d for d in deadlines if d is not None), default=None)

    def counters(self) -> dict:
        """``{"rx_frames": .., "tx_frames": .., ..., "drops": {reason: count}}``."""
        snapshot = {key: 0 for key in ("rx_frames", "rx_bytes", "tx_frames", "tx_bytes")}
        snapshot.update(self.stats)
        snapshot["drops"] = dict(self.drops)
        return snapshot

    # -- input ------------------------------------------------------------------------------

    def _ethernet_received(self, frame, now, out):
        parsed = _parse(self.drops, "ethernet", EthernetHeader.parse, frame)
        if parsed is None:
            return
        header, payload = parsed
        if header.destination != self.mac and not is_multicast_mac(header.destination):
            self.drops["ethernet_not_for_us"] += 1
        elif not is_unicast_mac(header.source) or header.source == self.mac:
            self.drops["ethernet_bad_source"] += 1
        elif header.ethertype == ETHERTYPE_ARP:
            if self.resolver is None:
                self.drops["arp_not_for_us"] += 1
                return
            arp = _parse(self.drops, "arp", ArpPacket.parse, payload)
            if arp is not None:
                out.extend(self.resolver.arp_received(arp, now))
        elif header.ethertype == ETHERTYPE_IPV4:
            self._ipv4_received(payload, now, out, link_broadcast=header.is_link_broadcast)
        elif header.ethertype == ETHERTYPE_IPV6:
            self._ipv6_received(payload, now, out, header.source, header.is_link_broadcast)
        else:
            self.drops["ethernet_unknown_ethertype"] += 1

    def _ip_received(self, packet, now, out, link_broadcast):
        if packet[:1] and packet[0] >> 4 == 6:
            self._ipv6_received(packet, now, out, None, link_broadcast)
        else:
            self._ipv4_received(packet, now, out, link_broadcast)

    def _ipv6_received(self, packet, now, out, link_source, link_multicast):
        if self.ipv6 is None:
            self.drops["ipv6_not_for_us"] += 1
        else:
            self.ipv6.packet_received(packet, now, out, link_source, link_multicast)

    def _ipv4_received(self, packet, now, out, link_broadcast):
        parsed = _parse(self.drops, "ipv4", Ipv4Header.parse, packet)
        if parsed is None:
            return
        header, payload = parsed
        if self._ip is None or header.destination != self._ip:
            self.drops["ipv4_not_for_us"] += 1
            return
        if not is_valid_source(header.source) or header.source == self._ip:
            self.drops["ipv4_martian_source"] += 1
            return
        if header.is_fragment:
            self.stats["ipv4_fragments_received"] += 1
            whole = self.reassembler.add(header, payload, now)
            if whole is None:
                return
            header, payload = whole
            self.stats["ipv4_reassembled"] += 1
            datagram = None     # rebuilt only if an ICMP error must quote it
        else:
            datagram = packet[:header.header_length + len(payload)]

        if header.protocol == PROTO_ICMP:
            self._icmp_received(header, payload, now, out)
        elif header.protocol == PROTO_TCP:
            self._tcp_received(header.source, header.destination, payload, now, link_broadcast)
        elif header.protocol == PROTO_UDP:
            if _parse(self.drops, "udp", UdpHeader.parse, payload,
                      header.source, header.destination) is None:
                return
            self.drops["udp_port_closed"] += 1
            self._send_icmp_error(icmp_wire.TYPE_DEST_UNREACHABLE,
                                  icmp_wire.CODE_PORT_UNREACHABLE,
                                  header, payload, datagram, now, link_broadcast, out)
        else:
            self.drops["ipv4_unknown_protocol"] += 1
            self._send_icmp_error(icmp_wire.TYPE_DEST_UNREACHABLE,
                                  icmp_wire.CODE_PROTOCOL_UNREACHABLE,
                                  header, payload, datagram, now, link_broadcast, out)

    def _icmp_received(self, header, payload, now, out):
        message = _parse(self.drops, "icmp", IcmpMessage.parse, payload)
        if message is None:
            return
        if message.type != icmp_wire.TYPE_ECHO_REQUEST:
            # Errors and replies for us have no consumer; other queries are not served.
            self.drops["icmp_unhandled_type"] += 1
            return
        self._send_ip(PROTO_ICMP, header.source, self.icmp.echo_reply(message), now, out,
                      tos=header.tos, dont_fragment=False)

    def _tcp_received(self, source, destination, payload, now, link_broadcast):
        if self.tcp is None:
            self.drops["tcp_no_layer"] += 1
        elif link_broadcast:
            # RFC 1122 §4.2.3.10: segments sent to a broadcast must be discarded.
            self.drops["tcp_link_broadcast"] += 1
        else:
            self.stats["tcp_segments_received"] += 1
            self._call_tcp(self.tcp.segment_received, source, destination, payload, now)

    # -- output -----------------------------------------------------------------------------

    def _call_tcp(self, method, *args):
        try:
            method(*args)
        except MalformedPacket as error:
            self.drops["tcp_%s" % error.reason] += 1

    def _drain_tcp(self, now, out):
        if self.tcp is None:
            return
        for source, destination, segment in self.tcp.pop_outgoing():
            if self._ip is not None and source == self._ip and len(destination) == 4 \
                    and is_valid_source(destination):
                self.stats["tcp_segments_sent"] += 1
                self._send_ip(PROTO_TCP, destination, segment, now, out, dont_fragment=True)
            elif self.ipv6 is not None and source == self.ipv6.address \
                    and len(destination) == 16 and is_valid_ipv6_source(destination):
                self.stats["tcp_segments_sent"] += 1
                self.ipv6.send(PROTO_TCP, destination, segment, now, out)
            else:
                self.drops["tcp_bad_outgoing_address"] += 1

    def _send_icmp_error(self, icmp_type, code, header, payload, datagram, now,
                         link_broadcast, out):
        if datagram is None:
            datagram = header.emit(payload)
        message = self.icmp.error(icmp_type, code, header, payload, datagram, now,
                                  link_broadcast)
        if message is not None:
            self._send_ip(PROTO_ICMP, header.source, message, now, out)

    def _send_ip(self, protocol, destination, payload, now, out, tos=0, dont_fragment=False):
        if MIN_HEADER_LEN + len(payload) > MAX_DATAGRAM_LEN:
            self.drops["tx_too_big"] += 1
            return
        fits = MIN_HEADER_LEN + len(payload) <= self.mtu
        header = Ipv4Header(
            source=self._ip, destination=destination, protocol=protocol,
            ttl=limits.IPV4_DEFAULT_TTL, identification=self._ip_id, tos=tos,
            dont_fragment=dont_fragment and fits)
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        packets = fragment_datagram(header, payload, self.mtu)
        if len(packets) > 1:
            self.stats["ipv4_fragments_sent"] += len(packets)
        if self.resolver is None:
            out.extend(packets)
        else:
            for packet in packets:
                out.extend(self.resolver.send_ip(packet, destination, now))

    def _transmitted(self, frames):
        self.stats["tx_frames"] += len(frames)
        self.stats["tx_bytes"] += sum(len(frame) for frame in frames)
        return frames
