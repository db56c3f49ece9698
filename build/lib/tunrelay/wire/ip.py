"""Cheap classification of a raw IP packet for the forwarding plane.

``peek_addresses`` reads only the version nibble and the two address fields (RFC 791 §3.1,
RFC 8200 §3) without validating checksums or lengths beyond what it reads; the receiving
host validates the rest. It still never reads past the buffer: a packet too short for its
version's fixed header raises :class:`MalformedPacket`.
"""

from tunrelay.wire.errors import MalformedPacket

__all__ = ["peek_addresses", "ip_version"]


def ip_version(packet):
    if not packet:
        raise MalformedPacket("truncated")
    version = packet[0] >> 4
    if version not in (4, 6):
        raise MalformedPacket("bad_version")
    return version


def peek_addresses(packet):
    """Return ``(version, source, destination)`` with packed 4- or 16-byte addresses."""
    version = ip_version(packet)
    if version == 4:
        if len(packet) < 20:
            raise MalformedPacket("truncated")
        return 4, bytes(packet[12:16]), bytes(packet[16:20])
    if len(packet) < 40:
        raise MalformedPacket("truncated")
    return 6, bytes(packet[8:24]), bytes(packet[24:40])
