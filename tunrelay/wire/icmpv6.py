"""ICMPv6 (RFC 4443) and the Neighbour Discovery messages a host answers (RFC 4861 §4.3-4.6).

An ICMPv6 message has ICMPv4's layout (type, code, checksum, a 4-byte field, data), so
:class:`tunrelay.wire.icmp.IcmpMessage` holds it; what differs is the checksum, which also
covers the IPv6 pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1): ``parse`` and ``emit`` here
take the two addresses. Types below 128 are errors (RFC 4443 §2.1).

Neighbour Solicitation and Advertisement put a 16-byte target address after the 4-byte
field (which holds NA's R, S and O flags), then options: a type, a length in units of 8
bytes, data. A zero length, or an option running past the message, is malformed (RFC 4861
§4.6: "Nodes MUST silently discard an ND packet that contains an option with length
zero"). Link-layer address options are read for Ethernet: 6 bytes in an 8-byte option.
The other validity checks of RFC 4861 §7.1 (hop limit 255, code 0, the target not being
multicast, an unspecified source only towards a solicited-node group) need the IPv6 header
and are made by the responder (``tunrelay.stack.neighbour_discovery``).
"""

import struct
from dataclasses import dataclass
from typing import Optional

from tunrelay.wire.checksum import pseudo_header_sum
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.icmp import IcmpMessage
from tunrelay.wire.ipv6 import NEXT_ICMPV6

__all__ = [
    "TYPE_DEST_UNREACHABLE", "TYPE_PACKET_TOO_BIG", "TYPE_TIME_EXCEEDED",
    "TYPE_PARAMETER_PROBLEM", "TYPE_ECHO_REQUEST", "TYPE_ECHO_REPLY",
    "TYPE_NEIGHBOUR_SOLICITATION", "TYPE_NEIGHBOUR_ADVERTISEMENT", "TYPE_REDIRECT",
    "CODE_PORT_UNREACHABLE", "CODE_REASSEMBLY_TIME_EXCEEDED",
    "ND_HOP_LIMIT", "NeighbourMessage", "is_error_type", "parse", "emit",
]

TYPE_DEST_UNREACHABLE = 1
TYPE_PACKET_TOO_BIG = 2
TYPE_TIME_EXCEEDED = 3
TYPE_PARAMETER_PROBLEM = 4
TYPE_ECHO_REQUEST = 128
TYPE_ECHO_REPLY = 129
TYPE_NEIGHBOUR_SOLICITATION = 135
TYPE_NEIGHBOUR_ADVERTISEMENT = 136
TYPE_REDIRECT = 137

CODE_PORT_UNREACHABLE = 4
CODE_REASSEMBLY_TIME_EXCEEDED = 1

ND_HOP_LIMIT = 255      # RFC 4861 §7.1: proves the sender is on-link

_OPTION_SOURCE_LINK_ADDRESS = 1
_OPTION_TARGET_LINK_ADDRESS = 2
_FLAG_ROUTER, _FLAG_SOLICITED, _FLAG_OVERRIDE = 0x80, 0x40, 0x20
_TARGET_LEN = 16


def is_error_type(icmp_type):
    return icmp_type < 128


def _pseudo_header(source, destination, length):
    return pseudo_header_sum(source, destination, NEXT_ICMPV6, length)


def parse(buf, source, destination):
    """An :class:`IcmpMessage` from ``buf``, its checksum checked over the pseudo-header."""
    return IcmpMessage.parse(buf, initial=_pseudo_header(source, destination, len(buf)))


def emit(message, source, destination):
    length = 8 + len(message.data)
    return message.emit(initial=_pseudo_header(source, destination, length))


@dataclass(frozen=True)
class NeighbourMessage:
    """An NS or NA; ``link_address`` is the source (NS) or target (NA) link-layer option."""
    type: int
    target: bytes
    link_address: Optional[bytes] = None
    router: bool = False
    solicited: bool = False
    override: bool = False

    @classmethod
    def parse(cls, message):
        if message.type not in (TYPE_NEIGHBOUR_SOLICITATION, TYPE_NEIGHBOUR_ADVERTISEMENT):
            raise MalformedPacket("not_neighbour_discovery")
        data = message.data
        if len(data) < _TARGET_LEN:
            raise MalformedPacket("truncated")
        wanted = (_OPTION_SOURCE_LINK_ADDRESS if message.type == TYPE_NEIGHBOUR_SOLICITATION
                  else _OPTION_TARGET_LINK_ADDRESS)
        link_address = None
        position = _TARGET_LEN
        while position < len(data):
            if position + 2 > len(data) or data[position + 1] == 0:
                raise MalformedPacket("bad_option_length")
            end = position + data[position + 1] * 8
            if end > len(data):
                raise MalformedPacket("bad_option_length")
            if data[position] == wanted:
                if end - position != 8:
                    raise MalformedPacket("bad_link_address_option")
                link_address = bytes(data[position + 2:end])
            position = end
        flags = message.rest[0]
        return cls(message.type, bytes(data[:_TARGET_LEN]), link_address,
                   router=bool(flags & _FLAG_ROUTER), solicited=bool(flags & _FLAG_SOLICITED),
                   override=bool(flags & _FLAG_OVERRIDE))

    def to_message(self):
        if len(self.target) != _TARGET_LEN:
            raise ValueError("the target is a 16-byte IPv6 address")
        flags = ((_FLAG_ROUTER if self.router else 0) | (_FLAG_SOLICITED if self.solicited else 0)
                 | (_FLAG_OVERRIDE if self.override else 0))
        data = self.target
        if self.link_address is not None:
            kind = (_OPTION_SOURCE_LINK_ADDRESS if self.type == TYPE_NEIGHBOUR_SOLICITATION
                    else _OPTION_TARGET_LINK_ADDRESS)
            data += struct.pack("!BB6s", kind, 1, self.link_address)
        return IcmpMessage(self.type, 0, bytes([flags, 0, 0, 0]), data)
