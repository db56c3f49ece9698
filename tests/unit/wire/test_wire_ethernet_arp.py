"""Ethernet and ARP parse/emit, checked against scapy."""

import pytest
from scapy.all import ARP, Ether, raw

from tunrelay.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ethernet import (
    BROADCAST_MAC, ETHERTYPE_ARP, EthernetHeader, format_mac, is_multicast_mac,
    is_unicast_mac)

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")


def test_ethernet_parse_matches_scapy():
    frame = raw(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01", type=0x1234) / b"hello")
    header, payload = EthernetHeader.parse(frame)
    assert header == EthernetHeader(BROADCAST_MAC, A, 0x1234)
    assert payload == b"hello"
    assert header.is_link_broadcast


def test_ethernet_emit_is_read_by_scapy():
    frame = Ether(EthernetHeader(B, A, ETHERTYPE_ARP).emit(b"\x00" * 28))
    assert (frame.dst, frame.src, frame.type) == ("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0806)


@pytest.mark.parametrize("frame,reason", [
    (b"\x00" * 13, "truncated"),
    (B + A + b"\x00\x40", "not_ethernet_ii"),   # an 802.3 length field, not a type
])
def test_ethernet_rejects(frame, reason):
    with pytest.raises(MalformedPacket) as caught:
        EthernetHeader.parse(frame)
    assert caught.value.reason == reason


def test_mac_classes():
    assert is_multicast_mac(BROADCAST_MAC) and not is_unicast_mac(BROADCAST_MAC)
    assert is_multicast_mac(bytes.fromhex("01005e000001"))
    assert not is_unicast_mac(b"\x00" * 6)
    assert is_unicast_mac(A)
    assert format_mac(A) == "02:00:00:00:00:01"


def test_arp_parse_matches_scapy_and_ignores_padding():
    packet = raw(ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="10.0.0.1",
                     hwdst="00:00:00:00:00:00", pdst="10.0.0.2")) + b"\x00" * 18
    arp = ArpPacket.parse(packet)
    assert arp == ArpPacket(OP_REQUEST, A, bytes([10, 0, 0, 1]), b"\x00" * 6, bytes([10, 0, 0, 2]))


def test_arp_emit_is_read_by_scapy():
    arp = ARP(ArpPacket(OP_REPLY, A, bytes([10, 0, 0, 1]), B, bytes([10, 0, 0, 2])).emit())
    assert (arp.op, arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (
        2, "02:00:00:00:00:01", "10.0.0.1", "02:00:00:00:00:02", "10.0.0.2")
    assert raw(arp) == ArpPacket.parse(raw(arp)).emit()


@pytest.mark.parametrize("fields,reason", [
    (dict(hwtype=6), "bad_hardware_type"),
    (dict(ptype=0x86DD), "bad_protocol_type"),
    (dict(hwlen=8), "bad_address_length"),
    (dict(plen=16), "bad_address_length"),
    (dict(op=3), "bad_operation"),
])
def test_arp_rejects_bad_fields(fields, reason):
    packet = raw(ARP(psrc="10.0.0.1", pdst="10.0.0.2", hwsrc="02:00:00:00:00:01", **fields))
    packet = packet[:28] + b"\x00" * max(0, 28 - len(packet))
    with pytest.raises(MalformedPacket) as caught:
        ArpPacket.parse(packet)
    assert caught.value.reason == reason


def test_arp_truncated():
    with pytest.raises(MalformedPacket) as caught:
        ArpPacket.parse(raw(ARP())[:27])
    assert caught.value.reason == "truncated"
