"""IPv4 header parse/emit and receive checks, checked against scapy."""

import struct

import pytest
from scapy.all import IP, raw

from tunrelay.wire.checksum import internet_checksum
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ipv4 import (
    Ipv4Header, header_length_of, is_broadcast_or_multicast, is_valid_source)

SRC = bytes([192, 0, 2, 1])
DST = bytes([192, 0, 2, 2])


def _reason(buf):
    with pytest.raises(MalformedPacket) as caught:
        Ipv4Header.parse(buf)
    return caught.value.reason


def _with_fixed_checksum(buf):
    buf = bytearray(buf)
    header_length = (buf[0] & 15) * 4
    buf[10:12] = b"\x00\x00"
    buf[10:12] = struct.pack("!H", internet_checksum(bytes(buf[:header_length])))
    return bytes(buf)


def test_parse_matches_scapy_fields():
    packet = IP(src="192.0.2.1", dst="192.0.2.2", ttl=7, id=4321, flags="MF", frag=3,
                tos=0xB8, proto=253, options=b"\x01\x01\x01\x00") / (b"z" * 24)
    header, payload = Ipv4Header.parse(raw(packet))
    assert header == Ipv4Header(SRC, DST, 253, ttl=7, identification=4321,
                                dont_fragment=False, more_fragments=True, fragment_offset=24,
                                tos=0xB8, options=b"\x01\x01\x01\x00")
    assert payload == b"z" * 24
    assert header.header_length == 24 == header_length_of(raw(packet))
    assert header.is_fragment


def test_emit_has_the_checksum_scapy_computes():
    emitted = Ipv4Header(SRC, DST, 17, ttl=64, identification=9, dont_fragment=True).emit(b"abc")
    parsed = IP(emitted)
    recomputed = parsed.copy()
    del recomputed.chksum
    assert raw(recomputed) == emitted
    assert (parsed.len, parsed.flags, parsed.id, parsed.proto) == (23, 2, 9, 17)


def test_round_trip():
    header = Ipv4Header(SRC, DST, 6, identification=65535, fragment_offset=8 * 8000,
                        more_fragments=True, options=b"\x94\x04\x00\x00")
    assert Ipv4Header.parse(header.emit(b""), ) == (header, b"")


def test_trims_ethernet_padding():
    packet = raw(IP(src="192.0.2.1", dst="192.0.2.2", proto=1) / b"12345678")
    header, payload = Ipv4Header.parse(packet + b"\x00" * 18)
    assert payload == b"12345678"


def test_truncated_below_fixed_header():
    assert _reason(raw(IP())[:19]) == "truncated"


def test_ihl_beyond_buffer_is_truncated():
    packet = bytearray(raw(IP()))
    packet[0] = 0x4F
    assert _reason(bytes(packet)) == "truncated"


def test_bad_version():
    packet = bytearray(raw(IP()))
    packet[0] = 0x55
    assert _reason(_with_fixed_checksum(packet)) == "bad_version"


@pytest.mark.parametrize("ihl", [0, 1, 4])
def test_bad_ihl(ihl):
    packet = bytearray(raw(IP() / (b"x" * 30)))
    packet[0] = 0x40 | ihl
    assert _reason(bytes(packet)) == "bad_ihl"


@pytest.mark.parametrize("length", [0, 19, 41, 65535])
def test_bad_total_length(length):
    packet = bytearray(raw(IP() / (b"x" * 20)))
    packet[2:4] = struct.pack("!H", length)
    assert _reason(_with_fixed_checksum(packet)) == "bad_total_length"


def test_bad_checksum():
    packet = bytearray(raw(IP(src="192.0.2.1", dst="192.0.2.2")))
    packet[10] ^= 0x01
    assert _reason(bytes(packet)) == "bad_checksum"
    assert Ipv4Header.parse(bytes(packet), verify_checksum=False)[0].source == SRC


def test_ping_of_death_offset_rejected():
    packet = raw(IP(frag=8189, flags=0) / (b"x" * 64))
    assert _reason(packet) == "bad_fragment_offset"


def test_emit_rejects_impossible_headers():
    with pytest.raises(ValueError):
        Ipv4Header(SRC, DST, 6, fragment_offset=3).emit(b"")
    with pytest.raises(ValueError):
        Ipv4Header(SRC, DST, 6, options=b"\x01").emit(b"")
    with pytest.raises(ValueError):
        Ipv4Header(SRC, DST, 6).emit(b"x" * 65516)


def test_address_classes():
    assert is_broadcast_or_multicast(bytes([255] * 4))
    assert is_broadcast_or_multicast(bytes([224, 0, 0, 1]))
    assert not is_broadcast_or_multicast(SRC)
    for bad in ([0, 0, 0, 0], [127, 0, 0, 1], [239, 1, 1, 1], [255, 255, 255, 255], [240, 0, 0, 1]):
        assert not is_valid_source(bytes(bad))
    assert is_valid_source(SRC)
