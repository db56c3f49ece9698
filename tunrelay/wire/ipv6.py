"""IPv6 fixed header (RFC 8200 §3) and the extension-header walk to the upper layer (§4).

The relay does not terminate IPv6; it only needs addresses for forwarding and the upper
protocol for classification. ``Ipv6Header.parse`` checks the version and that the payload
length fits the buffer, and trims link-layer padding. ``upper_layer`` skips Hop-by-Hop,
Routing, Destination Options, Fragment and AH headers (at most
``MAX_EXTENSION_HEADERS``, so a crafted chain cannot cost unbounded work) and reports
where the upper-layer header starts. Jumbograms (RFC 2675) are not supported.
"""

import struct
from dataclasses import dataclass
from typing import NamedTuple, Optional

from tunrelay.wire.errors import MalformedPacket

__all__ = [
    "HEADER_LEN", "NEXT_HOP_BY_HOP", "NEXT_ROUTING", "NEXT_FRAGMENT", "NEXT_AH",
    "NEXT_NO_NEXT", "NEXT_DEST_OPTIONS", "NEXT_ICMPV6", "MAX_EXTENSION_HEADERS",
    "Ipv6Header", "UpperLayer", "upper_layer",
]

HEADER_LEN = 40
NEXT_HOP_BY_HOP = 0
NEXT_ROUTING = 43
NEXT_FRAGMENT = 44
NEXT_AH = 51
NEXT_ICMPV6 = 58
NEXT_NO_NEXT = 59
NEXT_DEST_OPTIONS = 60
MAX_EXTENSION_HEADERS = 8

_HEADER = struct.Struct("!IHBB16s16s")
_OPTION_HEADERS = (NEXT_HOP_BY_HOP, NEXT_ROUTING, NEXT_DEST_OPTIONS)


@dataclass(frozen=True)
class Ipv6Header:
    source: bytes
    destination: bytes
    next_header: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0

    @classmethod
    def parse(cls, buf):
        """Return ``(header, payload)``; payload trimmed to the payload-length field."""
        if len(buf) < HEADER_LEN:
            raise MalformedPacket("truncated")
        word, payload_length, next_header, hop_limit, source, destination = \
            _HEADER.unpack_from(buf)
        if word >> 28 != 6:
            raise MalformedPacket("bad_version")
        if HEADER_LEN + payload_length > len(buf):
            raise MalformedPacket("bad_payload_length")
        return cls(
            source=source, destination=destination, next_header=next_header,
            hop_limit=hop_limit, traffic_class=(word >> 20) & 0xFF,
            flow_label=word & 0xFFFFF,
        ), bytes(buf[HEADER_LEN:HEADER_LEN + payload_length])

    def emit(self, payload):
        if len(payload) > 0xFFFF:
            raise ValueError("payload longer than 65535 bytes (jumbograms unsupported)")
        word = 6 << 28 | (self.traffic_class & 0xFF) << 20 | (self.flow_label & 0xFFFFF)
        return _HEADER.pack(word, len(payload), self.next_header, self.hop_limit,
                            self.source, self.destination) + bytes(payload)


class UpperLayer(NamedTuple):
    protocol: int                 # the first non-extension Next Header value
    offset: Optional[int]         # into the payload; None when not in this packet
    fragmented: bool              # a Fragment header was present
    first_fragment: bool          # ... and this packet holds offset 0


def upper_layer(header, payload):
    """Walk the extension headers of ``payload`` (as returned by ``parse``)."""
    protocol = header.next_header
    offset = 0
    fragmented = False
    first = True
    for _ in range(MAX_EXTENSION_HEADERS + 1):
        if protocol in _OPTION_HEADERS:
            if offset + 2 > len(payload):
                raise MalformedPacket("truncated")
            next_protocol, ext_len = payload[offset], payload[offset + 1]
            length = (ext_len + 1) * 8
        elif protocol == NEXT_AH:
            if offset + 2 > len(payload):
                raise MalformedPacket("truncated")
            next_protocol, ext_len = payload[offset], payload[offset + 1]
            length = (ext_len + 2) * 4
        elif protocol == NEXT_FRAGMENT:
            if offset + 8 > len(payload):
                raise MalformedPacket("truncated")
            next_protocol = payload[offset]
            fragment_offset = struct.unpack_from("!H", payload, offset + 2)[0] & 0xFFF8
            fragmented = True
            first = fragment_offset == 0
            length = 8
            if not first:
                # Later fragments carry no upper-layer header (RFC 8200 §4.5).
                return UpperLayer(next_protocol, None, True, False)
        else:
            return UpperLayer(protocol, offset, fragmented, first)
        if offset + length > len(payload):
            raise MalformedPacket("truncated")
        offset += length
        protocol = next_protocol
    raise MalformedPacket("too_many_extension_headers")
