"""IPv4 header (RFC 791) with the receive checks of RFC 1122 §3.2.1.

``Ipv4Header.parse`` accepts a buffer that may be longer than the datagram (Ethernet pads
frames to 60 bytes) and returns the payload trimmed to the total-length field. It rejects,
in this order: a buffer shorter than 20 bytes or than the IHL (``truncated``), a version
other than 4 (``bad_version``), an IHL below 5 (``bad_ihl``), a total length below the
header length or beyond the buffer (``bad_total_length``), a wrong header checksum
(``bad_checksum``), and a fragment reaching past 65535 bytes (``bad_fragment_offset``, the
"ping of death"). Options are kept as opaque bytes: the responder neither acts on nor
echoes them. ``fragment_offset`` is in bytes, not 8-byte units.
"""

import struct
from dataclasses import dataclass

from tunrelay.wire.checksum import internet_checksum
from tunrelay.wire.errors import MalformedPacket

__all__ = [
    "PROTO_ICMP", "PROTO_TCP", "PROTO_UDP", "MIN_HEADER_LEN", "MAX_DATAGRAM_LEN",
    "Ipv4Header", "is_broadcast_or_multicast", "is_valid_source", "header_length_of",
]

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17

MIN_HEADER_LEN = 20
MAX_DATAGRAM_LEN = 65535
_FLAG_DF = 0x4000
_FLAG_MF = 0x2000
_OFFSET_MASK = 0x1FFF
_HEADER = struct.Struct("!BBHHHBBH4s4s")


def is_broadcast_or_multicast(address):
    """Limited broadcast, class D multicast or class E (never a single host)."""
    return address[0] >= 224


def is_valid_source(address):
    """RFC 1122 §3.2.1.3: a source must be a unicast host address.

    Excludes "this network" 0/8, loopback 127/8 (never seen on a wire), multicast and
    class E including 255.255.255.255.
    """
    return address[0] not in (0, 127) and not is_broadcast_or_multicast(address)


def header_length_of(packet):
    """The IHL in bytes of a datagram already validated by :meth:`Ipv4Header.parse`."""
    return (packet[0] & 0x0F) * 4


@dataclass(frozen=True)
class Ipv4Header:
    source: bytes
    destination: bytes
    protocol: int
    ttl: int = 64
    identification: int = 0
    dont_fragment: bool = False
    more_fragments: bool = False
    fragment_offset: int = 0     # bytes; a multiple of 8
    tos: int = 0                 # DSCP and ECN
    options: bytes = b""

    @property
    def header_length(self):
        return MIN_HEADER_LEN + len(self.options)

    @property
    def is_fragment(self):
        return self.more_fragments or self.fragment_offset != 0

    @classmethod
    def parse(cls, buf, verify_checksum=True):
        """Return ``(header, payload)`` or raise :class:`MalformedPacket`."""
        if len(buf) < MIN_HEADER_LEN:
            raise MalformedPacket("truncated")
        (version_ihl, tos, total_length, identification, flags_offset,
         ttl, protocol, _checksum, source, destination) = _HEADER.unpack_from(buf)
        if version_ihl >> 4 != 4:
            raise MalformedPacket("bad_version")
        header_length = (version_ihl & 0x0F) * 4
        if header_length < MIN_HEADER_LEN:
            raise MalformedPacket("bad_ihl")
        if header_length > len(buf):
            raise MalformedPacket("truncated")
        if total_length < header_length or total_length > len(buf):
            raise MalformedPacket("bad_total_length")
        header = bytes(buf[:header_length])
        if verify_checksum and internet_checksum(header) != 0:
            raise MalformedPacket("bad_checksum")
        payload = bytes(buf[header_length:total_length])
        fragment_offset = (flags_offset & _OFFSET_MASK) * 8
        if fragment_offset + len(payload) > MAX_DATAGRAM_LEN - MIN_HEADER_LEN:
            raise MalformedPacket("bad_fragment_offset")
        return cls(
            source=source, destination=destination, protocol=protocol, ttl=ttl,
            identification=identification,
            dont_fragment=bool(flags_offset & _FLAG_DF),
            more_fragments=bool(flags_offset & _FLAG_MF),
            fragment_offset=fragment_offset, tos=tos, options=header[MIN_HEADER_LEN:],
        ), payload

    def emit(self, payload):
        """The datagram bytes: this header (checksum filled in) followed by ``payload``."""
        if len(self.options) % 4 or len(self.options) > 40:
            raise ValueError("options must be padded to 4 bytes and at most 40 bytes")
        if self.fragment_offset % 8 or not 0 <= self.fragment_offset <= _OFFSET_MASK * 8:
            raise ValueError("fragment offset must be a multiple of 8 within 13 bits")
        header_length = self.header_length
        total_length = header_length + len(payload)
        if total_length > MAX_DATAGRAM_LEN:
            raise ValueError("datagram longer than 65535 bytes")
        flags_offset = (self.fragment_offset // 8
                        | (_FLAG_DF if self.dont_fragment else 0)
                        | (_FLAG_MF if self.more_fragments else 0))
        header = bytearray(_HEADER.pack(
            0x40 | header_length // 4, self.tos, total_length, self.identification & 0xFFFF,
            flags_offset, self.ttl, self.protocol, 0, self.source, self.destination))
        header += self.options
        struct.pack_into("!H", header, 10, internet_checksum(header))
        return bytes(header) + bytes(payload)
