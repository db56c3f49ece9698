"""Length-prefixed stream framing: exact simpletun wire format, bounded, fails closed."""

import struct

import pytest
from hypothesis import given, strategies as st

from tunrelay.protocol.framing import FramingError, StreamDecoder, encode


def wire(*messages):
    return b"".join(struct.pack("!H", len(m)) + m for m in messages)


def test_prefix_is_two_byte_big_endian():
    assert encode(258) == b"\x01\x02"


def test_split_and_joined_messages():
    decoder = StreamDecoder(65535)
    data = wire(b"abc", b"", b"defg")
    assert decoder.feed(data[:1]) == []
    assert decoder.feed(data[1:4]) == []
    assert decoder.feed(data[4:]) == [b"abc", b"", b"defg"]
    assert decoder.pending == 0


def test_partial_message_is_pending():
    decoder = StreamDecoder(65535)
    assert decoder.feed(wire(b"hello")[:4]) == []
    assert decoder.pending == 4


def test_oversized_length_fails_and_stays_failed():
    decoder = StreamDecoder(1500)
    with pytest.raises(FramingError) as caught:
        decoder.feed(b"\xff\xff" + b"x" * 10)
    assert caught.value.reason == "oversized_length"
    with pytest.raises(FramingError):
        decoder.feed(wire(b"ok"))


def test_good_messages_before_a_bad_prefix_are_delivered():
    decoder = StreamDecoder(1500)
    assert decoder.feed(wire(b"good") + b"\xff\xff") == [b"good"]
    with pytest.raises(FramingError):
        decoder.feed(b"")


def test_full_64k_frame():
    frame = bytes(range(256)) * 255 + b"x" * 255  # 65535 bytes
    assert StreamDecoder(65535).feed(wire(frame)) == [frame]


@given(st.lists(st.binary(max_size=3000), max_size=20), st.data())
def test_any_chunking_reassembles_the_same_messages(messages, data):
    stream = wire(*messages)
    decoder = StreamDecoder(65535)
    received = []
    position = 0
    while position < len(stream):
        size = data.draw(st.integers(1, max(1, len(stream) - position)))
        received += decoder.feed(stream[position:position + size])
        position += size
    assert received == messages and decoder.pending == 0


@given(st.binary(max_size=5000))
def test_garbage_never_raises_anything_but_framing_error(garbage):
    decoder = StreamDecoder(2048)
    try:
        for message in decoder.feed(garbage):
            assert len(message) <= 2048
    except FramingError as error:
        assert error.reason == "oversized_length"
    assert decoder.pending <= 2048 + 2
