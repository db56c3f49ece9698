"""UDP header (RFC 768) with pseudo-header checksum (RFC 768, RFC 8200 §8.1).

``UdpHeader.parse`` checks that the length field covers the header and fits the buffer
(``bad_length``) and trims the rest. Given the packed IP addresses it verifies the
checksum: over IPv4 a zero checksum means "not computed" and is accepted; over IPv6 it is
forbidden (``missing_checksum``). ``emit`` always computes the checksum and sends a
computed zero as 0xFFFF, as RFC 768 requires.
"""

import struct
from dataclasses import dataclass

from tunrelay.wire.checksum import internet_checksum, pseudo_header_sum
from tunrelay.wire.errors import MalformedPacket

__all__ = ["HEADER_LEN", "PROTO_UDP", "UdpHeader"]

HEADER_LEN = 8
PROTO_UDP = 17
_HEADER = struct.Struct("!HHHH")


@dataclass(frozen=True)
class UdpHeader:
    source_port: int
    destination_port: int

    @classmethod
    def parse(cls, buf, source=None, destination=None):
        """Return ``(header, payload)``; checksum verified when addresses are given."""
        if len(buf) < HEADER_LEN:
            raise MalformedPacket("truncated")
        source_port, destination_port, length, checksum = _HEADER.unpack_from(buf)
        if length < HEADER_LEN or length > len(buf):
            raise MalformedPacket("bad_length")
        datagram = bytes(buf[:length])
        if source is not None:
            if checksum == 0:
                if len(source) == 16:
                    raise MalformedPacket("missing_checksum")
            elif internet_checksum(
                    datagram, pseudo_header_sum(source, destination, PROTO_UDP, length)) != 0:
                raise MalformedPacket("bad_checksum")
        return cls(source_port, destination_port), datagram[HEADER_LEN:]

    def emit(self, payload, source, destination):
        length = HEADER_LEN + len(payload)
        if length > 0xFFFF:
            raise ValueError("UDP datagram longer than 65535 bytes")
        datagram = bytearray(_HEADER.pack(self.source_port, self.destination_port, length, 0))
        datagram += payload
        checksum = internet_checksum(
            datagram, pseudo_header_sum(source, destination, PROTO_UDP, length)) or 0xFFFF
        struct.pack_into("!H", datagram, 6, checksum)
        return bytes(datagram)
