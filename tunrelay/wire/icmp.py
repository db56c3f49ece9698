"""ICMP for IPv4 (RFC 792), with the error/query split of RFC 1122 §3.2.2.

Every message is type, code, checksum over the whole message, a 4-byte type-specific
field (``rest``: identifier and sequence for echo, unused or next-hop MTU for errors) and
data. ``is_error_type`` is conservative: any type not known to be a query counts as an
error, so the responder never answers an unknown message type with an error.
"""

import struct
from dataclasses import dataclass

from tunrelay.wire.checksum import internet_checksum
from tunrelay.wire.errors import MalformedPacket

__all__ = [
    "TYPE_ECHO_REPLY", "TYPE_DEST_UNREACHABLE", "TYPE_SOURCE_QUENCH", "TYPE_REDIRECT",
    "TYPE_ECHO_REQUEST", "TYPE_TIME_EXCEEDED", "TYPE_PARAMETER_PROBLEM",
    "CODE_NET_UNREACHABLE", "CODE_HOST_UNREACHABLE", "CODE_PROTOCOL_UNREACHABLE",
    "CODE_PORT_UNREACHABLE", "CODE_FRAGMENTATION_NEEDED",
    "CODE_TTL_EXCEEDED", "CODE_REASSEMBLY_TIME_EXCEEDED",
    "HEADER_LEN", "IcmpMessage", "is_error_type",
]

TYPE_ECHO_REPLY = 0
TYPE_DEST_UNREACHABLE = 3
TYPE_SOURCE_QUENCH = 4
TYPE_REDIRECT = 5
TYPE_ECHO_REQUEST = 8
TYPE_TIME_EXCEEDED = 11
TYPE_PARAMETER_PROBLEM = 12

CODE_NET_UNREACHABLE = 0
CODE_HOST_UNREACHABLE = 1
CODE_PROTOCOL_UNREACHABLE = 2
CODE_PORT_UNREACHABLE = 3
CODE_FRAGMENTATION_NEEDED = 4
CODE_TTL_EXCEEDED = 0
CODE_REASSEMBLY_TIME_EXCEEDED = 1

HEADER_LEN = 8
# Echo, router advertisement/solicitation, timestamp, information, address mask.
_QUERY_TYPES = frozenset({0, 8, 9, 10, 13, 14, 15, 16, 17, 18})
_HEADER = struct.Struct("!BBH4s")


def is_error_type(icmp_type):
    return icmp_type not in _QUERY_TYPES


@dataclass(frozen=True)
class IcmpMessage:
    type: int
    code: int
    rest: bytes = b"\x00\x00\x00\x00"
    data: bytes = b""

    @classmethod
    def parse(cls, buf, verify_checksum=True, initial=0):
        """``initial`` is a pseudo-header sum, for ICMPv6 (see :mod:`tunrelay.wire.icmpv6`)."""
        if len(buf) < HEADER_LEN:
            raise MalformedPacket("truncated")
        if verify_checksum and internet_checksum(buf, initial) != 0:
            raise MalformedPacket("bad_checksum")
        icmp_type, code, _checksum, rest = _HEADER.unpack_from(buf)
        return cls(icmp_type, code, rest, bytes(buf[HEADER_LEN:]))

    @classmethod
    def echo(cls, icmp_type, identifier, sequence, data=b""):
        return cls(icmp_type, 0, struct.pack("!HH", identifier, sequence), data)

    @property
    def identifier(self):
        return struct.unpack("!H", self.rest[:2])[0]

    @property
    def sequence(self):
        return struct.unpack("!H", self.rest[2:])[0]

    def emit(self, initial=0):
        if len(self.rest) != 4:
            raise ValueError("rest of header is 4 bytes")
        message = bytearray(_HEADER.pack(self.type, self.code, 0, self.rest))
        message += self.data
        struct.pack_into("!H", message, 2, internet_checksum(message, initial))
        return bytes(message)
