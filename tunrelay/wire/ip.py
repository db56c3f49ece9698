"""Cheap, checked classification of a raw IP packet for the forwarding plane.

The relay needs three things from every tun packet: the IP version and the source and
destination addresses (RFC 791 §3.1, RFC 8200 §3), to run the source check and the
longest-prefix match. ``route_key`` reads only those and the length fields, and checks that
the declared length fits the buffer; the packet is trimmed to its declared length so link
padding never reaches the device or a peer. Checksums are left to the receiving host.
Addresses come back as integers because that is what the allowed-IPs table keys on.
"""

from tunrelay.wire.errors import MalformedPacket

__all__ = ["route_key"]

_IPV4_MIN_HEADER = 20
_IPV6_HEADER = 40


def route_key(packet):
    """Return ``(version, source int, destination int, packet trimmed to its length)``."""
    size = len(packet)
    if not size:
        raise MalformedPacket("empty_packet")
    version = packet[0] >> 4
    if version == 4:
        if size < _IPV4_MIN_HEADER:
            raise MalformedPacket("truncated_ip_header")
        header_length = (packet[0] & 0x0F) * 4
        total = (packet[2] << 8) | packet[3]
        if header_length < _IPV4_MIN_HEADER or total < header_length or total > size:
            raise MalformedPacket("bad_ip_length")
        return (4, int.from_bytes(packet[12:16], "big"), int.from_bytes(packet[16:20], "big"),
                packet if total == size else packet[:total])
    if version == 6:
        if size < _IPV6_HEADER:
            raise MalformedPacket("truncated_ip_header")
        total = _IPV6_HEADER + ((packet[4] << 8) | packet[5])
        if total > size:
            raise MalformedPacket("bad_ip_length")
        return (6, int.from_bytes(packet[8:24], "big"), int.from_bytes(packet[24:40], "big"),
                packet if total == size else packet[:total])
    raise MalformedPacket("not_ip")
