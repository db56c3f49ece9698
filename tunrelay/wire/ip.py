"""Cheap, checked classification of a raw IP packet for the forwarding plane.

The relay needs three things from every tun packet: the IP version and the source and
destination addresses (RFC 791 §3.1, RFC 8200 §3), to run the source check and the
longest-prefix match. ``route_key`` reads only those and the length fields, and checks that
the declared length fits the buffer; the packet is trimmed to its declared length so link
padding never reaches the device or a peer. Checksums are left to the receiving host.
Addresses come back as integers because that is what the allowed-IPs table keys on.
"""

import struct

from tunrelay.wire.errors import MalformedPacket

__all__ = ["route_key"]

_IPV4_MIN_HEADER = 20
_IPV6_HEADER = 40
_IPV4 = struct.Struct("!BxH8xII")       # version/IHL, total length, source, destination
_IPV6 = struct.Struct("!4xH2xQQQQ")     # payload length, source and destination as 64-bit halves


def route_key(packet):
    """Return ``(version, source int, destination int, packet trimmed to its length)``.

    One ``struct`` call reads every field needed: this runs for every packet, both ways."""
    size = len(packet)
    if not size:
        raise MalformedPacket("empty_packet")
    version = packet[0] >> 4
    if version == 4:
        if size < _IPV4_MIN_HEADER:
            raise MalformedPacket("truncated_ip_header")
        first, total, source, destination = _IPV4.unpack_from(packet)
        if (first & 0x0F) * 4 < _IPV4_MIN_HEADER or total < (first & 0x0F) * 4 or total > size:
            raise MalformedPacket("bad_ip_length")
        return 4, source, destination, packet if total == size else packet[:total]
    if version == 6:
        if size < _IPV6_HEADER:
            raise MalformedPacket("truncated_ip_header")
        payload, source_high, source_low, destination_high, destination_low = _IPV6.unpack_from(packet)
        total = _IPV6_HEADER + payload
        if total > size:
            raise MalformedPacket("bad_ip_length")
        return (6, source_high << 64 | source_low, destination_high << 64 | destination_low,
                packet if total == size else packet[:total])
    raise MalformedPacket("not_ip")
