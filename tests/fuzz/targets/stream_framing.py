"""The TCP stream decoder (tunrelay/protocol/framing.py): 2-byte plaintext and 4-byte
encrypted length prefixes.

Contract: ``StreamDecoder.feed`` returns the complete messages it holds, or raises
``FramingError`` (reason ``oversized_length``) once a prefix exceeds ``max_message``, and
again on every later feed. The harness expects exactly that, so nothing may escape.

An input picks the prefix size and the limit, then either a raw stream or a list of
messages that ``encode`` frames, and cuts the stream into fuzzed chunks. Checks, against a
plain reference decoder over the whole stream: the same messages in the same order, the
failure if and only if the reference fails, and ``pending`` equal to the unparsed tail.
"""

from tunrelay.protocol.framing import FramingError, StreamDecoder, encode

from ._input import FuzzInput

REJECTIONS = ()
COVERS = ["tunrelay/protocol/framing.py"]
MAX_LEN = 8192

_LIMITS = (0, 1, 20, 255, 1500, 65535)


def _reference(stream, prefix, limit):
    """(messages, failed, unparsed tail length) for the whole stream at once."""
    messages, offset = [], 0
    while len(stream) - offset >= prefix:
        length = int.from_bytes(stream[offset:offset + prefix], "big")
        if length > limit:
            return messages, True, 0
        if offset + prefix + length > len(stream):
            break
        messages.append(stream[offset + prefix:offset + prefix + length])
        offset += prefix + length
    return messages, False, len(stream) - offset


def fuzz_one(data):
    inp = FuzzInput(data)
    options = inp.u8()
    prefix = 4 if options & 1 else 2
    limit = _LIMITS[(options >> 1) % len(_LIMITS)]
    if options & 0x80:
        stream = bytearray()
        for _ in range(inp.u8() % 16):
            message = inp.sized(min(limit, 300))
            stream += encode(len(message), prefix) + message
        stream = bytes(stream)
    else:
        stream = inp.sized(4096)
    decoder = StreamDecoder(limit, prefix)
    received, failed, offset = [], False, 0
    while True:
        size = inp.u8() or len(stream) - offset   # a zero chunk size: the rest at once
        chunk = stream[offset:offset + size]
        offset += len(chunk)
        try:
            received += decoder.feed(chunk)
        except FramingError as error:
            assert error.reason == "oversized_length", error.reason
            failed = True
            break
        if offset >= len(stream):
            break
    expected, expected_failure, tail = _reference(stream, prefix, limit)
    assert received == expected, (received, expected)
    assert (failed or decoder.failed is not None) == expected_failure
    if expected_failure:
        try:
            decoder.feed(b"")
        except FramingError:
            pass
        else:
            raise AssertionError("a failed decoder accepted more input")
    else:
        assert decoder.pending == tail, (decoder.pending, tail)
