"""IPv6 fixed header, extension-header walk and the forwarding-plane address peek."""

import pytest
from scapy.all import IP, TCP, UDP, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, \
    IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, raw
from scapy.utils6 import in6_ptop
import socket

from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ip import route_key
from tunrelay.wire.ipv6 import MAX_EXTENSION_HEADERS, Ipv6Header, upper_layer


def _packed(address):
    return socket.inet_pton(socket.AF_INET6, in6_ptop(address))


def test_ipv6_parse_matches_scapy():
    packet = IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x2E, fl=0xABCDE, hlim=9) / \
        UDP(sport=1, dport=2) / b"data"
    header, payload = Ipv6Header.parse(raw(packet) + b"\x00" * 6)
    assert header == Ipv6Header(_packed("2001:db8::1"), _packed("2001:db8::2"), 17,
                                hop_limit=9, traffic_class=0x2E, flow_label=0xABCDE)
    assert payload == raw(packet[UDP])


def test_ipv6_emit_is_read_by_scapy():
    header = Ipv6Header(_packed("2001:db8::1"), _packed("2001:db8::2"), 59, hop_limit=3,
                        traffic_class=5, flow_label=7)
    parsed = IPv6(header.emit(b"abcd"))
    assert (parsed.src, parsed.dst, parsed.nh, parsed.hlim, parsed.tc, parsed.fl, parsed.plen) == (
        "2001:db8::1", "2001:db8::2", 59, 3, 5, 7, 4)


def test_upper_layer_walks_extension_headers():
    packet = IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / \
        IPv6ExtHdrFragment(offset=0, m=1) / TCP()
    header, payload = Ipv6Header.parse(raw(packet))
    upper = upper_layer(header, payload)
    assert upper.protocol == 6
    assert payload[upper.offset:] == raw(packet[TCP])
    assert upper.fragmented and upper.first_fragment


def test_upper_layer_of_later_fragment_has_no_offset():
    packet = IPv6() / IPv6ExtHdrFragment(offset=10, m=0, nh=17) / (b"x" * 16)
    upper = upper_layer(*Ipv6Header.parse(raw(packet)))
    assert upper == (17, None, True, False)


def test_upper_layer_bounds_the_chain():
    packet = IPv6()
    for _ in range(MAX_EXTENSION_HEADERS + 1):
        packet = packet / IPv6ExtHdrDestOpt()
    packet = packet / UDP()
    with pytest.raises(MalformedPacket) as caught:
        upper_layer(*Ipv6Header.parse(raw(packet)))
    assert caught.value.reason == "too_many_extension_headers"


def test_upper_layer_truncated_extension():
    packet = raw(IPv6(nh=0) / (b"\x11\x05" + b"\x00" * 6))  # claims 48 bytes, has 8
    with pytest.raises(MalformedPacket) as caught:
        upper_layer(*Ipv6Header.parse(packet))
    assert caught.value.reason == "truncated"


@pytest.mark.parametrize("buf,reason", [
    (raw(IPv6())[:39], "truncated"),
    (raw(IP() / (b"x" * 40)), "bad_version"),
    (raw(IPv6(plen=10)), "bad_payload_length"),
])
def test_ipv6_rejects(buf, reason):
    with pytest.raises(MalformedPacket) as caught:
        Ipv6Header.parse(buf)
    assert caught.value.reason == reason


def test_route_key_reads_addresses_and_trims_padding():
    v4 = raw(IP(src="10.1.2.3", dst="10.4.5.6") / b"data")
    assert route_key(v4 + b"\x00" * 6) == (4, 0x0A010203, 0x0A040506, v4)
    v6 = raw(IPv6(src="2001:db8::1", dst="::1") / b"data")
    assert route_key(v6) == (6, int.from_bytes(_packed("2001:db8::1"), "big"), 1, v6)


@pytest.mark.parametrize("buf,reason", [
    (b"", "empty_packet"), (b"\x45" + b"\x00" * 18, "truncated_ip_header"),
    (b"\x60" + b"\x00" * 38, "truncated_ip_header"), (b"\x50" * 40, "not_ip"),
    (raw(IP() / b"abc")[:-1], "bad_ip_length"), (b"\x44" + raw(IP())[1:], "bad_ip_length"),
    (raw(IPv6(plen=10)), "bad_ip_length"),
])
def test_route_key_rejects(buf, reason):
    with pytest.raises(MalformedPacket) as caught:
        route_key(buf)
    assert caught.value.reason == reason
