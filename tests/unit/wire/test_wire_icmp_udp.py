"""ICMP and UDP parse/emit, checksums checked against scapy."""

import pytest
from scapy.all import ICMP, IP, UDP, IPv6, raw

from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.icmp import TYPE_ECHO_REPLY, TYPE_ECHO_REQUEST, IcmpMessage, is_error_type
from tunrelay.wire.ipv4 import Ipv4Header
from tunrelay.wire.udp import UdpHeader

SRC = bytes([192, 0, 2, 1])
DST = bytes([192, 0, 2, 2])


def test_icmp_parse_matches_scapy():
    message = IcmpMessage.parse(raw(ICMP(type=8, id=0x1234, seq=7) / b"payload"))
    assert (message.type, message.code, message.identifier, message.sequence, message.data) == (
        8, 0, 0x1234, 7, b"payload")


def test_icmp_emit_has_scapy_checksum():
    emitted = IcmpMessage.echo(TYPE_ECHO_REPLY, 99, 100, b"odd-length").emit()
    parsed = ICMP(emitted)
    recomputed = parsed.copy()
    del recomputed.chksum
    assert raw(recomputed) == emitted
    assert (parsed.type, parsed.id, parsed.seq) == (0, 99, 100)


def test_icmp_bad_checksum_and_truncated():
    buf = bytearray(raw(ICMP() / b"abc"))
    buf[-1] ^= 0xFF
    for data, reason in ((bytes(buf), "bad_checksum"), (raw(ICMP())[:7], "truncated")):
        with pytest.raises(MalformedPacket) as caught:
            IcmpMessage.parse(data)
        assert caught.value.reason == reason


def test_icmp_error_classification():
    assert not is_error_type(TYPE_ECHO_REQUEST) and not is_error_type(TYPE_ECHO_REPLY)
    for error_type in (3, 4, 5, 11, 12, 200):
        assert is_error_type(error_type)


def test_udp_parse_verifies_checksum_like_scapy():
    packet = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=5, dport=53) / b"query"
    segment = raw(packet[UDP])
    header, payload = UdpHeader.parse(segment + b"pad", SRC, DST)
    assert (header.source_port, header.destination_port, payload) == (5, 53, b"query")
    corrupt = segment[:-1] + bytes([segment[-1] ^ 1])
    with pytest.raises(MalformedPacket) as caught:
        UdpHeader.parse(corrupt, SRC, DST)
    assert caught.value.reason == "bad_checksum"
    assert UdpHeader.parse(corrupt)[1] == corrupt[8:]   # without addresses: no check


def test_udp_zero_checksum_allowed_over_ipv4_only():
    segment = raw(UDP(sport=1, dport=2, chksum=0) / b"x")
    assert UdpHeader.parse(segment, SRC, DST)[1] == b"x"
    with pytest.raises(MalformedPacket) as caught:
        UdpHeader.parse(segment, b"\x20" * 16, b"\x20" * 16)
    assert caught.value.reason == "missing_checksum"


def test_udp_emit_has_scapy_checksum_v4_and_v6():
    emitted = UdpHeader(1000, 2000).emit(b"hello", SRC, DST)
    parsed = IP(Ipv4Header(SRC, DST, 17).emit(emitted))
    expected = parsed[UDP].chksum
    del parsed[UDP].chksum
    assert IP(raw(parsed))[UDP].chksum == expected
    v6_src, v6_dst = b"\x20\x01" + b"\x00" * 13 + b"\x01", b"\x20\x01" + b"\x00" * 13 + b"\x02"
    emitted6 = UdpHeader(7, 8).emit(b"v6", v6_src, v6_dst)
    assert UdpHeader.parse(emitted6, v6_src, v6_dst)[1] == b"v6"
    assert emitted6 == raw(IPv6(src="2001::1", dst="2001::2") / UDP(sport=7, dport=8) / b"v6")[40:]


def test_udp_computed_zero_is_sent_as_ffff():
    # Find a payload whose checksum computes to zero, then check emit substitutes 0xFFFF.
    for n in range(1 << 16):
        payload = n.to_bytes(2, "big")
        emitted = UdpHeader(1, 2).emit(payload, SRC, DST)
        if emitted[6:8] == b"\xff\xff":
            assert UdpHeader.parse(emitted, SRC, DST)[1] == payload
            break
    else:
        pytest.fail("no payload with a zero checksum found")


@pytest.mark.parametrize("length", [0, 7, 100])
def test_udp_bad_length(length):
    segment = bytearray(raw(UDP() / b"abc"))
    segment[4:6] = length.to_bytes(2, "big")
    with pytest.raises(MalformedPacket) as caught:
        UdpHeader.parse(bytes(segment))
    assert caught.value.reason == "bad_length"
