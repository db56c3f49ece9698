"""tunrelay.wire.tcp against scapy: parse what scapy builds, and scapy parses what we emit."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import TCP

from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.tcp import ACK, FIN, PSH, SYN, TcpSegment

from .helpers import CLIENT_B, SERVER_B, build, parse


def test_parse_scapy_syn_with_all_options():
    raw = build(1234, 80, "S", 0xFFFFFFF0, 0, 29200, options=[
        ("MSS", 1400), ("SAckOK", b""), ("Timestamp", (111, 0)), ("NOP", None),
        ("WScale", 7)])
    seg = TcpSegment.parse(raw, CLIENT_B, SERVER_B)
    assert (seg.source_port, seg.destination_port, seg.seq, seg.ack) == (1234, 80, 0xFFFFFFF0, 0)
    assert seg.flags == SYN and seg.window == 29200
    assert seg.mss == 1400 and seg.window_scale == 7 and seg.sack_permitted
    assert seg.timestamp == (111, 0)
    assert seg.seg_len == 1 and seg.payload == b""


def test_parse_payload_and_sack_blocks_ignored():
    raw = build(1, 2, "PA", 5, 6, payload=b"hello",
                options=[("NOP", None), ("NOP", None), ("SAck", (10, 20))])
    seg = TcpSegment.parse(raw, CLIENT_B, SERVER_B)
    assert seg.payload == b"hello" and seg.flags == PSH | ACK and seg.seg_len == 5


def test_emit_is_parsed_by_scapy_with_valid_checksum():
    seg = TcpSegment(80, 40000, 7, 9, SYN | ACK, 65535, mss=1460, window_scale=3,
                     sack_permitted=True, timestamp=(1, 2))
    tcp = parse((SERVER_B, CLIENT_B, seg.emit(SERVER_B, CLIENT_B)))
    assert str(tcp.flags) == "SA" and tcp.seq == 7 and tcp.ack == 9
    opts = dict(tcp.options)
    assert opts["MSS"] == 1460 and opts["WScale"] == 3 and "SAckOK" in opts
    assert opts["Timestamp"] == (1, 2)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(mss=536), dict(window_scale=14), dict(sack_permitted=True),
    dict(timestamp=(0xFFFFFFFF, 5)), dict(mss=9000, window_scale=0, timestamp=(1, 1))])
def test_roundtrip(kwargs):
    seg = TcpSegment(1, 65535, 0xFFFFFFFF, 1, FIN | ACK, 17, payload=b"x" * 7, **kwargs)
    raw = seg.emit(CLIENT_B, SERVER_B)
    assert len(raw) % 4 == 3 and (raw[12] >> 4) * 4 == len(raw) - 7
    assert TcpSegment.parse(raw, CLIENT_B, SERVER_B) == seg


def test_window_scale_above_14_is_clamped():
    raw = build(1, 2, "S", 0, options=[("WScale", 20)])
    assert TcpSegment.parse(raw, CLIENT_B, SERVER_B).window_scale == 14


def test_truncated():
    with pytest.raises(MalformedPacket) as info:
        TcpSegment.parse(build(1, 2, "A", 0)[:19], CLIENT_B, SERVER_B)
    assert info.value.reason == "truncated"


def test_bad_checksum():
    with pytest.raises(MalformedPacket) as info:
        TcpSegment.parse(build(1, 2, "A", 0, corrupt_checksum=True), CLIENT_B, SERVER_B)
    assert info.value.reason == "bad_checksum"
    # The pseudo-header counts: the right bytes from the wrong source are also rejected.
    with pytest.raises(MalformedPacket):
        TcpSegment.parse(build(1, 2, "A", 0), SERVER_B, SERVER_B)


def _with_offset(raw, words):
    raw = bytearray(raw)
    raw[12] = (words << 4) | (raw[12] & 0xF)
    raw[16:18] = b"\0\0"
    # A valid checksum, so that the offset check is what fires.
    from tunrelay.wire.checksum import internet_checksum, pseudo_header_sum
    struct.pack_into("!H", raw, 16, internet_checksum(
        raw, pseudo_header_sum(CLIENT_B, SERVER_B, 6, len(raw))))
    return bytes(raw)


@pytest.mark.parametrize("words", [0, 4, 6, 15])
def test_bad_data_offset(words):
    with pytest.raises(MalformedPacket) as info:
        TcpSegment.parse(_with_offset(build(1, 2, "A", 0), words), CLIENT_B, SERVER_B)
    assert info.value.reason == "bad_data_offset"


@pytest.mark.parametrize("options", [
    bytes([1, 1, 2, 4]),               # MSS running past the option area
    bytes([2, 3, 5, 1]),               # MSS with the wrong length
    bytes([30, 1, 1, 1]),              # length below 2
    bytes([1, 1, 1, 30]),              # kind with no length byte
])
def test_bad_option(options):
    raw = bytearray(build(1, 2, "A", 0))
    raw[20:20] = options
    raw = _with_offset(bytes(raw), 6)
    with pytest.raises(MalformedPacket) as info:
        TcpSegment.parse(raw, CLIENT_B, SERVER_B)
    assert info.value.reason == "bad_option"


def test_unknown_option_skipped():
    raw = bytearray(build(1, 2, "A", 0))
    raw[20:20] = bytes([254, 4, 0xAB, 0xCD])
    seg = TcpSegment.parse(_with_offset(bytes(raw), 6), CLIENT_B, SERVER_B)
    assert seg.mss is None and seg.payload == b""


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.booleans())
def test_parse_random_bytes_raises_only_malformed(data, plain_offset):
    if plain_offset and len(data) >= 20:
        data = data[:12] + bytes([0x50]) + data[13:]   # a 20-byte header: random bytes that parse
    parsed = 0
    for verify in (True, False):
        try:
            segment = TcpSegment.parse(data, CLIENT_B if verify else None, SERVER_B)
        except MalformedPacket as error:
            assert error.reason in ("truncated", "bad_checksum", "bad_data_offset", "bad_option")
            assert error.reason != "bad_checksum" or verify
            continue
        # Whatever parses is exactly what the header says: ports, numbers, and the payload
        # after the declared data offset.
        ports_and_numbers = struct.unpack_from("!HHII", data)
        assert (segment.source_port, segment.destination_port, segment.seq, segment.ack) == ports_and_numbers
        assert segment.payload == data[(data[12] >> 4) * 4:]
        parsed += 1
    # Without the checksum check a 20-byte header always parses.
    assert parsed >= 1 or not (plain_offset and len(data) >= 20)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFF),
       st.binary(max_size=64), st.one_of(st.none(), st.integers(0, 0xFFFF)),
       st.one_of(st.none(), st.integers(0, 14)))
def test_emitted_segments_agree_with_scapy(port, seq, flag_bits, payload, mss, wscale):
    seg = TcpSegment(port, 80, seq, seq ^ 0xFFFF, flag_bits, 1000, payload=payload, mss=mss,
                     window_scale=wscale)
    tcp = parse((CLIENT_B, SERVER_B, seg.emit(CLIENT_B, SERVER_B)))
    assert (tcp.sport, tcp.seq, int(tcp.flags), bytes(tcp.payload)) == (port, seq, flag_bits,
                                                                         payload)
    assert dict(tcp.options).get("MSS") == mss and dict(tcp.options).get("WScale") == wscale
    assert isinstance(tcp, TCP)


def test_sack_blocks_roundtrip_and_scapy_agrees():
    blocks = ((0xFFFFFF00, 0x10), (5, 9), (100, 200))
    seg = TcpSegment(80, 1, 1, 2, ACK, 3, timestamp=(7, 8), sack_blocks=blocks)
    raw = seg.emit(SERVER_B, CLIENT_B)
    assert (raw[12] >> 4) * 4 == 60                       # 20 + 12 + 4 + 24
    assert TcpSegment.parse(raw, SERVER_B, CLIENT_B) == seg
    tcp = parse((SERVER_B, CLIENT_B, raw))
    assert dict(tcp.options)["SAck"] == tuple(x for block in blocks for x in block)


def test_options_longer_than_40_bytes_are_refused():
    with pytest.raises(ValueError):
        TcpSegment(80, 1, 1, 2, ACK, 3, timestamp=(7, 8),
                   sack_blocks=((1, 2),) * 4).emit(SERVER_B, CLIENT_B)
