"""Exact-size message parsing: every input is a message or a drop reason."""

import struct

import pytest
from hypothesis import given, settings, strategies as st

from tunrelay.crypto import messages
from tunrelay.crypto.constants import MAX_TRANSPORT_SIZE

INITIATION = messages.Initiation(0x01020304, b"e" * 32, b"s" * 48, b"t" * 28, b"1" * 16, b"2" * 16)
RESPONSE = messages.Response(5, 6, b"e" * 32, b"n" * 16, b"1" * 16, b"2" * 16)
COOKIE = messages.CookieReply(7, b"n" * 24, b"c" * 32)


def test_sizes_and_layout():
    packed = INITIATION.pack()
    assert len(packed) == 148 and packed[:8] == b"\x01\x00\x00\x00\x04\x03\x02\x01"
    assert packed[-32:] == b"1" * 16 + b"2" * 16
    assert len(RESPONSE.pack()) == 92 and RESPONSE.pack()[:12] == struct.pack("<III", 2, 5, 6)
    assert len(COOKIE.pack()) == 64 and COOKIE.pack()[:8] == struct.pack("<II", 3, 7)
    assert messages.pack_transport_header(9, 2**64 - 1) == struct.pack("<IIQ", 4, 9, 2**64 - 1)


@pytest.mark.parametrize("message", [INITIATION, RESPONSE, COOKIE], ids=["init", "resp", "cookie"])
def test_round_trip(message):
    assert messages.parse(message.pack()) == message


def test_transport_parse():
    data = messages.pack_transport_header(9, 77) + b"x" * 16
    assert messages.parse(data) == messages.Transport(9, 77, b"x" * 16)


def test_pack_refuses_wrong_field_sizes():
    with pytest.raises(ValueError):
        messages.Initiation(1, b"e" * 31, b"s" * 48, b"t" * 28).pack()
    with pytest.raises(ValueError):
        messages.Response(1, 2, b"e" * 32, b"n" * 15).pack()
    with pytest.raises(ValueError):
        messages.CookieReply(1, b"n" * 23, b"c" * 32).pack()


CASES = [
    # (name, data, reason)
    ("empty", b"", "truncated"),
    ("three bytes", b"\x01\x00\x00", "truncated"),
    ("type 0", b"\x00" * 148, "unknown_type"),
    ("type 5", b"\x05\x00\x00\x00" + bytes(60), "unknown_type"),
    ("reserved bytes set", b"\x01\x00\x00\x01" + bytes(144), "unknown_type"),
    ("initiation short", INITIATION.pack()[:-1], "truncated"),
    ("initiation long", INITIATION.pack() + b"\x00", "bad_size"),
    ("response short", RESPONSE.pack()[:-1], "truncated"),
    ("response long", RESPONSE.pack() + b"\x00", "bad_size"),
    ("cookie short", COOKIE.pack()[:63], "truncated"),
    ("cookie long", COOKIE.pack() + b"\x00", "bad_size"),
    ("transport header only", messages.pack_transport_header(1, 0), "truncated"),
    ("transport without full tag", messages.pack_transport_header(1, 0) + bytes(15), "truncated"),
    ("transport oversized", messages.pack_transport_header(1, 0) + bytes(MAX_TRANSPORT_SIZE),
     "bad_size"),
]


@pytest.mark.parametrize("name,data,reason", CASES, ids=[c[0] for c in CASES])
def test_malformed_reasons(name, data, reason):
    with pytest.raises(messages.MalformedMessage) as info:
        messages.parse(data)
    assert info.value.reason == reason


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from([1, 2, 3, 4]), st.binary(max_size=200)).map(
        lambda t: struct.pack("<I", t[0]) + t[1]),
))
def test_random_bytes_never_raise_anything_else(data):
    try:
        parsed = messages.parse(data)
    except messages.MalformedMessage as exc:
        assert exc.reason in {"truncated", "unknown_type", "bad_size"}
    else:
        assert isinstance(parsed, (messages.Initiation, messages.Response, messages.CookieReply,
                                   messages.Transport))
        if not isinstance(parsed, messages.Transport):
            assert parsed.pack() == data
