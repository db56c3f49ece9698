"""Length-prefixed message framing over a byte stream (simpletun, usertunnel, OpenVPN TCP mode).

Each message is a big-endian unsigned length followed by that many bytes; plaintext mode
uses a 2-byte prefix, exactly what simpletun and OpenVPN's TCP mode put on the wire
(OpenVPN calls it "packet length prefix", RFC-less but stable since 2002). A zero length is
an empty message, used as a keepalive.

The decoder is a pure state machine: ``feed(data)`` returns the complete messages it now
holds. A length above ``max_message`` cannot be a message we would accept, and since a
stream cannot resynchronise after a bad length the decoder enters a failed state; the
caller drops the connection. Memory held per stream is bounded by ``max_message`` plus the
prefix: we never buffer more than one incomplete message.
"""

import struct

__all__ = ["FramingError", "StreamDecoder", "encode"]

_PREFIX_FORMATS = {2: "!H", 4: "!I"}


class FramingError(Exception):
    """The stream cannot be framed any further; ``reason`` names why."""

    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason = reason


def encode(length, prefix_size=2):
    """The length prefix for a message of ``length`` bytes (callers write it and the message
    without a copy)."""
    return struct.pack(_PREFIX_FORMATS[prefix_size], length)


class StreamDecoder:
    def __init__(self, max_message, prefix_size=2):
        if prefix_size not in _PREFIX_FORMATS:
            raise ValueError("prefix size must be 2 or 4")
        self._unpack = struct.Struct(_PREFIX_FORMATS[prefix_size]).unpack_from
        self._prefix = prefix_size
        self._max = max_message
        self._buffer = bytearray()
        self.failed = None

    @property
    def pending(self):
        """Bytes of an incomplete message (non-zero at EOF means a truncated stream)."""
        return len(self._buffer)

    def feed(self, data):
        """Add bytes; return a list of complete messages, or raise FramingError."""
        if self.failed:
            raise self.failed
        buffer = self._buffer
        buffer += data
        messages = []
        offset = 0
        prefix = self._prefix
        available = len(buffer)
        view = memoryview(buffer)
        while available - offset >= prefix:
            (length,) = self._unpack(buffer, offset)
            if length > self._max:
                self._buffer = bytearray()
                self.failed = FramingError(
                    "oversized_length", "length prefix %d exceeds the %d-byte limit" % (length, self._max))
                if messages:
                    break  # deliver what was good before the bad prefix; fail on the next feed
                raise self.failed
            end = offset + prefix + length
            if end > available:
                break
            messages.append(bytes(view[offset + prefix:end]))   # one copy, not a slice and then a copy
            offset = end
        view.release()   # a bytearray cannot be resized while a view of it is held
        if offset:
            del buffer[:offset]
        return messages
