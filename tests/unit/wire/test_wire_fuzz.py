"""Every wire parser raises only MalformedPacket on arbitrary bytes."""

from hypothesis import given, settings, strategies as st

from tunrelay.wire.arp import ArpPacket
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ethernet import EthernetHeader
from tunrelay.wire.icmp import IcmpMessage
from tunrelay.wire.ip import route_key
from tunrelay.wire.ipv4 import Ipv4Header
from tunrelay.wire.ipv6 import Ipv6Header, upper_layer
from tunrelay.wire.udp import UdpHeader

ADDRESS = bytes([192, 0, 2, 1])


def _ipv6_walk(buf):
    return upper_layer(*Ipv6Header.parse(buf))


PARSERS = [
    EthernetHeader.parse, ArpPacket.parse, IcmpMessage.parse, route_key,
    lambda buf: Ipv4Header.parse(buf, verify_checksum=False), _ipv6_walk,
    lambda buf: UdpHeader.parse(buf, ADDRESS, ADDRESS),
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(range(len(PARSERS))))
def test_parsers_raise_only_malformed_packet(buf, index):
    try:
        PARSERS[index](buf)
    except MalformedPacket as error:
        assert error.reason and error.reason.replace("_", "").isalpha()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=20, max_size=80))
def test_ipv4_headers_that_parse_round_trip(buf):
    buf = bytes([0x45]) + buf[1:]
    try:
        header, payload = Ipv4Header.parse(buf, verify_checksum=False)
    except MalformedPacket:
        return
    assert Ipv4Header.parse(header.emit(payload)) == (header, payload)


# -- IPv6: the responder's receive parsers -----------------------------------------------

from tunrelay.wire import icmpv6  # noqa: E402
from tunrelay.wire.ipv6 import FragmentHeader, header_chain  # noqa: E402

V6 = bytes(15) + b"\x01"


def _ipv6_receive_walk(buf, multicast=False):
    return header_chain(*Ipv6Header.parse(buf), multicast)


def _neighbour(buf):
    return icmpv6.NeighbourMessage.parse(IcmpMessage.parse(buf, verify_checksum=False))


IPV6_PARSERS = [
    _ipv6_receive_walk, lambda buf: _ipv6_receive_walk(buf, True), _neighbour,
    lambda buf: icmpv6.parse(buf, V6, V6), FragmentHeader.parse,
    lambda buf: UdpHeader.parse(buf, V6, V6),
]
_EXTENSION_NEXT_HEADERS = [0, 43, 44, 60, 59, 58, 6, 17, 253]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=160), st.sampled_from(range(len(IPV6_PARSERS))),
       st.sampled_from(_EXTENSION_NEXT_HEADERS))
def test_ipv6_parsers_raise_only_malformed_packet(body, index, next_header):
    # A plausible fixed header in front, so that the walk gets past it into the chain.
    buf = bytes([0x60, 0, 0, 0]) + len(body).to_bytes(2, "big") + bytes([next_header, 64]) + \
        V6 * 2 + body if index < 2 else body
    try:
        IPV6_PARSERS[index](buf)
    except MalformedPacket as error:
        assert error.reason and error.reason.replace("_", "").isalpha()
        if hasattr(error, "pointer"):
            assert 0 <= error.pointer < len(buf) and error.code in (0, 1, 2, 3)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=40, max_size=100))
def test_ipv6_headers_that_parse_round_trip(buf):
    buf = bytes([0x60 | (buf[0] & 0x0F)]) + buf[1:4] + (len(buf) - 40).to_bytes(2, "big") + buf[6:]
    header, payload = Ipv6Header.parse(buf)
    assert header.emit(payload) == buf
    assert Ipv6Header.parse(header.emit(payload)) == (header, payload)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.integers(0, 0x1FFF), st.booleans(), st.integers(0, 2 ** 32 - 1))
def test_fragment_headers_round_trip(next_header, offset_units, more, identification):
    header = FragmentHeader(next_header, offset_units * 8, more, identification)
    assert FragmentHeader.parse(header.emit()) == header


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([135, 136]), st.binary(min_size=16, max_size=16),
       st.one_of(st.none(), st.binary(min_size=6, max_size=6)), st.booleans(), st.booleans(),
       st.booleans())
def test_neighbour_messages_round_trip(kind, target, link_address, router, solicited, override):
    if kind == 135:
        router = solicited = override = False
    message = icmpv6.NeighbourMessage(kind, target, link_address, router, solicited, override)
    emitted = icmpv6.emit(message.to_message(), V6, V6)
    assert icmpv6.NeighbourMessage.parse(icmpv6.parse(emitted, V6, V6)) == message
