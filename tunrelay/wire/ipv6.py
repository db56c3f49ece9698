"""IPv6 fixed header (RFC 8200 §3), extension headers (§4), addresses (RFC 4291).

Two walks over the extension headers serve two readers:

* ``upper_layer`` is the forwarding plane's lenient classifier: it skips Hop-by-Hop,
  Routing, Destination Options, Fragment and AH headers and says where the upper layer
  starts, judging nothing;
* ``header_chain`` is a host's receive processing (RFC 8200 §4), for the responder. It
  takes Hop-by-Hop only first (§4.3), checks every option of Hop-by-Hop and Destination
  Options by the action its two high-order type bits ask for (§4.2), refuses a Routing
  header with segments left (a host does not forward; RFC 5095 removed type 0), treats an
  atomic fragment (offset 0, M clear) as the whole packet it is (RFC 6946), and stops at
  any other Fragment header, whose fragmentable part is read after reassembly (§4.5).

Both walk at most ``MAX_EXTENSION_HEADERS`` headers, so a crafted chain costs bounded work,
and both raise only :class:`MalformedPacket`. What RFC 8200 answers with an ICMPv6
Parameter Problem (RFC 4443 §3.4) raises the subclass :class:`ParameterProblem`, carrying
the code and the pointer (an offset from the first byte of the IPv6 header) that the
error must name. Jumbograms (RFC 2675) are not supported: their option is unrecognized.
"""

import struct
from dataclasses import dataclass
from typing import NamedTuple, Optional

from tunrelay.wire.errors import MalformedPacket

__all__ = [
    "HEADER_LEN", "NEXT_HOP_BY_HOP", "NEXT_ROUTING", "NEXT_FRAGMENT", "NEXT_AH",
    "NEXT_NO_NEXT", "NEXT_DEST_OPTIONS", "NEXT_ICMPV6", "MAX_EXTENSION_HEADERS",
    "MIN_MTU", "MAX_PAYLOAD_LEN", "ALL_NODES", "UNSPECIFIED",
    "PROBLEM_ERRONEOUS_FIELD", "PROBLEM_UNRECOGNIZED_NEXT_HEADER",
    "PROBLEM_UNRECOGNIZED_OPTION", "PROBLEM_INCOMPLETE_CHAIN",
    "Ipv6Header", "FragmentHeader", "ParameterProblem", "HeaderChain", "UpperLayer",
    "header_chain", "upper_layer", "is_multicast", "is_valid_source", "solicited_node",
    "multicast_mac",
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
MIN_MTU = 1280                 # RFC 8200 §5: every link carries 1280-byte packets whole
MAX_PAYLOAD_LEN = 0xFFFF

ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
UNSPECIFIED = bytes(16)
_LOOPBACK = bytes(15) + b"\x01"
_SOLICITED_NODE_PREFIX = bytes.fromhex("ff0200000000000000000001ff")

# RFC 4443 §3.4 Parameter Problem codes (3: RFC 7112).
PROBLEM_ERRONEOUS_FIELD = 0
PROBLEM_UNRECOGNIZED_NEXT_HEADER = 1
PROBLEM_UNRECOGNIZED_OPTION = 2
PROBLEM_INCOMPLETE_CHAIN = 3

_OPTION_PAD1 = 0
_OPTION_PADN = 1
# Options a host may meet and skip: Tunnel Encapsulation Limit (RFC 2473), Router Alert
# (RFC 2711, on MLD). Every other type is handled by its action bits.
_KNOWN_OPTIONS = frozenset({_OPTION_PAD1, _OPTION_PADN, 4, 5})
_ACTION_SKIP, _ACTION_DISCARD, _ACTION_ICMP, _ACTION_ICMP_UNLESS_MULTICAST = 0, 1, 2, 3

_HEADER = struct.Struct("!IHBB16s16s")
_FRAGMENT = struct.Struct("!BBHI")
_OPTION_HEADERS = (NEXT_HOP_BY_HOP, NEXT_ROUTING, NEXT_DEST_OPTIONS)


def is_multicast(address):
    return address[0] == 0xFF


def is_valid_source(address):
    """RFC 4291: a source names one interface: not multicast, unspecified or loopback."""
    return not is_multicast(address) and address not in (UNSPECIFIED, _LOOPBACK)


def solicited_node(address):
    """The solicited-node multicast group of ``address`` (RFC 4291 §2.7.1)."""
    return _SOLICITED_NODE_PREFIX + bytes(address[13:])


def multicast_mac(group):
    """The Ethernet address an IPv6 multicast group maps to (RFC 2464 §7)."""
    return b"\x33\x33" + bytes(group[12:])


class ParameterProblem(MalformedPacket):
    """Malformed in a way RFC 8200 answers with ICMPv6 Parameter Problem.

    ``pointer`` counts from the first byte of the IPv6 header. ``even_to_multicast`` is
    set for an unrecognized option whose type asks for the error whatever the destination.
    """

    def __init__(self, reason, code, pointer, even_to_multicast=False):
        super().__init__(reason)
        self.code = code
        self.pointer = pointer
        self.even_to_multicast = even_to_multicast


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
        if len(payload) > MAX_PAYLOAD_LEN:
            raise ValueError("payload longer than 65535 bytes (jumbograms unsupported)")
        word = 6 << 28 | (self.traffic_class & 0xFF) << 20 | (self.flow_label & 0xFFFFF)
        return _HEADER.pack(word, len(payload), self.next_header, self.hop_limit,
                            self.source, self.destination) + bytes(payload)


@dataclass(frozen=True)
class FragmentHeader:
    """The Fragment header (RFC 8200 §4.5); ``offset`` is in bytes, a multiple of 8."""
    next_header: int
    offset: int
    more: bool
    identification: int

    LENGTH = 8

    @classmethod
    def parse(cls, buf, at=0):
        if at + cls.LENGTH > len(buf):
            raise MalformedPacket("truncated_extension_header")
        next_header, _reserved, offset_flags, identification = _FRAGMENT.unpack_from(buf, at)
        return cls(next_header, offset_flags & 0xFFF8, bool(offset_flags & 1), identification)

    @property
    def atomic(self):
        """Offset 0 and no more fragments: the whole packet (RFC 6946)."""
        return self.offset == 0 and not self.more

    def emit(self):
        if self.offset % 8 or not 0 <= self.offset <= 0xFFF8:
            raise ValueError("fragment offset must be a multiple of 8 within 13 bits")
        return _FRAGMENT.pack(self.next_header, 0, self.offset | int(self.more),
                              self.identification & 0xFFFFFFFF)


class HeaderChain(NamedTuple):
    """Where the extension headers of a received packet lead (``header_chain``).

    Without ``fragment``: ``protocol`` is the upper layer, starting at ``offset`` into the
    payload, and ``pointer`` is the offset in the packet of the field that named it (what a
    Parameter Problem about an unknown protocol points at). With ``fragment``: the packet
    is a fragment whose Fragment header sits at ``fragment_at`` into the payload, named by
    the field at ``pointer``; ``offset`` is where its fragmentable part starts, and
    ``protocol`` the Fragment header's Next Header.
    """
    protocol: int
    offset: int
    pointer: int
    fragment: Optional[FragmentHeader] = None
    fragment_at: Optional[int] = None


def _extension_length(payload, offset, unit, extra_units):
    if offset + 2 > len(payload):
        raise MalformedPacket("truncated_extension_header")
    length = (payload[offset + 1] + extra_units) * unit
    if offset + length > len(payload):
        raise MalformedPacket("truncated_extension_header")
    return length


def _check_options(payload, start, end, multicast_destination):
    """Walk the TLV options of a Hop-by-Hop or Destination Options header (RFC 8200 §4.2)."""
    position = start
    while position < end:
        option = payload[position]
        if option == _OPTION_PAD1:
            position += 1
            continue
        if position + 2 > end or position + 2 + payload[position + 1] > end:
            raise MalformedPacket("bad_option_length")
        if option not in _KNOWN_OPTIONS:
            action = option >> 6
            if action == _ACTION_DISCARD or (
                    action == _ACTION_ICMP_UNLESS_MULTICAST and multicast_destination):
                raise MalformedPacket("unrecognized_option")
            if action != _ACTION_SKIP:
                raise ParameterProblem("unrecognized_option", PROBLEM_UNRECOGNIZED_OPTION,
                                       HEADER_LEN + position,
                                       even_to_multicast=action == _ACTION_ICMP)
        position += 2 + payload[position + 1]


def header_chain(header, payload, multicast_destination=False, start=None):
    """Receive-process the extension headers of ``payload`` (as returned by ``parse``).

    ``start`` = ``(protocol, offset, pointer)`` resumes a walk inside the payload, e.g.
    after a Fragment header, to check that a first fragment holds the whole chain.
    """
    if start is None:
        protocol, offset, pointer = header.next_header, 0, 6
    else:
        protocol, offset, pointer = start
    for index in range(MAX_EXTENSION_HEADERS + 1):
        if protocol == NEXT_HOP_BY_HOP and (index or start is not None):
            raise ParameterProblem("hop_by_hop_not_first", PROBLEM_UNRECOGNIZED_NEXT_HEADER,
                                   pointer)
        if protocol in (NEXT_HOP_BY_HOP, NEXT_DEST_OPTIONS):
            length = _extension_length(payload, offset, 8, 1)
            _check_options(payload, offset + 2, offset + length, multicast_destination)
        elif protocol == NEXT_ROUTING:
            length = _extension_length(payload, offset, 8, 1)
            if length < 8:
                raise MalformedPacket("truncated_extension_header")
            if payload[offset + 3]:
                # Segments left: we would have to forward it. No type is known (§4.4).
                raise ParameterProblem("routing_header", PROBLEM_ERRONEOUS_FIELD,
                                       HEADER_LEN + offset + 2)
        elif protocol == NEXT_FRAGMENT:
            fragment = FragmentHeader.parse(payload, offset)
            length = FragmentHeader.LENGTH
            if not fragment.atomic:
                return HeaderChain(fragment.next_header, offset + length, pointer, fragment,
                                   offset)
        else:
            return HeaderChain(protocol, offset, pointer)
        pointer = HEADER_LEN + offset
        protocol = payload[offset]
        offset += length
    raise MalformedPacket("too_many_extension_headers")


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
            length = _truncated_as_such(_extension_length, payload, offset, 8, 1)
        elif protocol == NEXT_AH:
            length = _truncated_as_such(_extension_length, payload, offset, 4, 2)
        elif protocol == NEXT_FRAGMENT:
            fragment = _truncated_as_such(FragmentHeader.parse, payload, offset)
            fragmented = True
            first = fragment.offset == 0
            length = FragmentHeader.LENGTH
            if not first:
                # Later fragments carry no upper-layer header (RFC 8200 §4.5).
                return UpperLayer(fragment.next_header, None, True, False)
        else:
            return UpperLayer(protocol, offset, fragmented, first)
        next_protocol = payload[offset]
        offset += length
        protocol = next_protocol
    raise MalformedPacket("too_many_extension_headers")


def _truncated_as_such(parse, *arguments):
    # The forwarding plane has always called a short extension header plain "truncated".
    try:
        return parse(*arguments)
    except MalformedPacket:
        raise MalformedPacket("truncated") from None
