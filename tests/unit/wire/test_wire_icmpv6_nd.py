"""ICMPv6 and Neighbour Discovery parse/emit, and the receive-side header chain, against scapy."""

import socket

import pytest
from scapy.all import (
    ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr,
    IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, raw)
from scapy.layers.inet import TCP

from tunrelay.wire import icmpv6
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.icmp import IcmpMessage
from tunrelay.wire.ipv6 import (
    FragmentHeader, Ipv6Header, ParameterProblem, header_chain, multicast_mac, solicited_node)

SRC, DST = "2001:db8::1", "2001:db8::2"


def _packed(text):
    return socket.inet_pton(socket.AF_INET6, text)


def test_icmpv6_checksum_covers_the_pseudo_header():
    packet = IPv6(src=SRC, dst=DST) / ICMPv6EchoRequest(id=1, seq=2, data=b"odd")
    message = icmpv6.parse(raw(packet)[40:], _packed(SRC), _packed(DST))
    assert (message.type, message.identifier, message.sequence, message.data) == (128, 1, 2, b"odd")
    with pytest.raises(MalformedPacket) as caught:
        icmpv6.parse(raw(packet)[40:], _packed(SRC), _packed("2001:db8::3"))
    assert caught.value.reason == "bad_checksum"
    emitted = icmpv6.emit(IcmpMessage(129, 0, b"\x00\x01\x00\x02", b"odd"), _packed(DST), _packed(SRC))
    reply = IPv6(raw(IPv6(src=DST, dst=SRC, nh=58) / emitted))
    recomputed = reply.copy()
    del recomputed.payload.cksum
    assert raw(IPv6(raw(recomputed))) == raw(reply)


def test_neighbour_messages_match_scapy_both_ways():
    ns = ICMPv6ND_NS(tgt=DST) / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    parsed = icmpv6.NeighbourMessage.parse(IcmpMessage.parse(raw(ns), verify_checksum=False))
    assert parsed == icmpv6.NeighbourMessage(135, _packed(DST), bytes.fromhex("020000000001"))
    na = icmpv6.NeighbourMessage(136, _packed(SRC), bytes.fromhex("020000000002"), solicited=True,
                                 override=True)
    scapy_na = ICMPv6ND_NA(raw(IPv6(src=SRC, dst=DST) / na.to_message().emit())[40:])
    assert (scapy_na.tgt, scapy_na.R, scapy_na.S, scapy_na.O) == (SRC, 0, 1, 1)
    assert scapy_na[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:02"


@pytest.mark.parametrize("data,reason", [
    (b"\x00" * 15, "truncated"),
    (b"\x00" * 16 + b"\x01\x00" + b"\x00" * 6, "bad_option_length"),
    (b"\x00" * 16 + b"\x01\x02" + b"\x00" * 6, "bad_option_length"),
    (b"\x00" * 16 + b"\x01\x02" + b"\x00" * 14, "bad_link_address_option"),
])
def test_neighbour_message_rejects(data, reason):
    with pytest.raises(MalformedPacket) as caught:
        icmpv6.NeighbourMessage.parse(IcmpMessage(135, 0, bytes(4), data))
    assert caught.value.reason == reason


def test_solicited_node_group_and_its_mac():
    group = solicited_node(_packed("2001:db8:1::12:3456"))
    assert group == _packed("ff02::1:ff12:3456") and multicast_mac(group) == bytes.fromhex("3333ff123456")


def _chain(packet):
    return header_chain(*Ipv6Header.parse(raw(packet)))


def test_chain_reaches_the_upper_layer_and_its_naming_field():
    packet = IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(segleft=0) / TCP()
    chain = _chain(packet)
    assert chain.protocol == 6 and chain.fragment is None
    assert raw(packet)[40 + chain.offset:] == raw(packet[TCP]) and raw(packet)[chain.pointer] == 6


def test_chain_stops_at_a_fragment_header():
    packet = IPv6() / IPv6ExtHdrDestOpt() / IPv6ExtHdrFragment(offset=16, m=1, id=0xABCDEF01, nh=17) / (b"f" * 16)
    chain = _chain(packet)
    assert chain.fragment == FragmentHeader(17, 128, True, 0xABCDEF01)
    assert (chain.protocol, chain.fragment_at, chain.offset) == (17, 8, 16)
    assert raw(packet)[chain.pointer] == 44


def test_fragment_header_emit_is_read_by_scapy():
    emitted = FragmentHeader(58, 1448, True, 77).emit()
    parsed = IPv6ExtHdrFragment(emitted)
    assert (parsed.nh, parsed.offset * 8, parsed.m, parsed.id) == (58, 1448, 1, 77)


@pytest.mark.parametrize("packet,code,pointer", [
    (IPv6() / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / TCP(), 1, 40),
    (IPv6() / IPv6ExtHdrRouting(segleft=2, addresses=["::1", "::2"]) / TCP(), 0, 42),
])
def test_chain_raises_parameter_problem(packet, code, pointer):
    with pytest.raises(ParameterProblem) as caught:
        _chain(packet)
    assert (caught.value.code, caught.value.pointer) == (code, pointer)
