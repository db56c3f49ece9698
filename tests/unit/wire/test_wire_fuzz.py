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
