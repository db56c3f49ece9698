"""Carving structured values out of a fuzz input, front to back.

Structured targets read their choices (an operation, a length, a field) from the start of
the input, so libFuzzer's mutations map onto small, local changes of what the target
does. Past the end every read returns zeros or empty bytes: any input is a valid program.
"""

import struct

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


class FuzzInput:
    def __init__(self, data):
        self._data = bytes(data)
        self._offset = 0

    @property
    def remaining(self):
        return len(self._data) - self._offset

    def take(self, count):
        """Up to ``count`` bytes (fewer at the end of the input)."""
        chunk = self._data[self._offset:self._offset + count]
        self._offset += len(chunk)
        return chunk

    def exact(self, count):
        """Exactly ``count`` bytes, zero-padded past the end of the input."""
        return self.take(count).ljust(count, b"\x00")

    def u8(self):
        return self.exact(1)[0]

    def u16(self):
        return _U16.unpack(self.exact(2))[0]

    def u32(self):
        return _U32.unpack(self.exact(4))[0]

    def u64(self):
        return _U64.unpack(self.exact(8))[0]

    def choice(self, options):
        return options[self.u8() % len(options)]

    def flag(self):
        return bool(self.u8() & 1)

    def sized(self, limit):
        """A length byte (or two when ``limit`` > 255), then that many bytes, at most ``limit``."""
        length = self.u16() if limit > 255 else self.u8()
        return self.take(length % (limit + 1))

    def rest(self):
        return self.take(self.remaining)


def accepted(rejection, parse, *args):
    """``parse(*args)`` where a refusal is a finding, not an answer: an oracle's own parse of
    what the product emitted, or a second parser that must take what the first took. It
    raises ``AssertionError`` for ``rejection``, which the target's REJECTIONS would hide."""
    try:
        return parse(*args)
    except rejection as error:
        raise AssertionError("%s refused what it must accept: %r" % (getattr(parse, "__qualname__", parse), error))


def read_items(reader, chunks, error_type, max_items, line_slack=0, end=False):
    """The items a line reader yields for ``chunks`` fed one by one, up to the first fatal
    ``error_type`` or ``max_items``; after each chunk the reader must hold at most one line
    (``max_line + line_slack`` bytes). ``end``: then also what it says at end of input."""
    items = []
    for chunk in chunks:
        reader.feed(chunk)
        while True:
            item = reader.next_item()
            if item is None:
                break
            items.append(item)
            if isinstance(item, error_type) and item.fatal or len(items) == max_items:
                return items
        assert len(reader._buffer) <= reader.max_line + line_slack, "the reader holds more than one line"
    if end:
        item = reader.end_of_input()
        if item is not None:
            items.append(item)
    return items
