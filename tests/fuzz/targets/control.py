"""The control socket protocol (tunrelay/control/protocol.py): framing and decoding.

Contract: ``RequestReader.next_item`` never raises; each line becomes a ``Request`` or a
``RequestError`` value (a fatal one, ``line_too_long``, makes the server close the
connection). ``decode_request`` raises only ``RequestError``. So nothing may escape.

An input picks the line limit and cuts its bytes into fuzzed chunks. Checks: the items
(up to the first fatal one, at most MAX_ITEMS) do not depend on how the stream was cut
(compared with feeding it whole); the reader holds at most one bounded line; a
``Request`` names a known command; every error's reply encodes as one line of JSON.
"""

import json

from tunrelay.control.protocol import (
    COMMANDS, MAX_LINE, Request, RequestError, RequestReader, encode_message)

from ._input import FuzzInput, read_items

REJECTIONS = ()
COVERS = ["tunrelay/control/protocol.py"]
MAX_LEN = 512
MAX_ITEMS = 24

_LIMITS = (8, 64, MAX_LINE)


def _items(reader, chunks):
    """The items up to the first fatal one, at most MAX_ITEMS (a line costs tens of µs)."""
    return read_items(reader, chunks, RequestError, MAX_ITEMS)


def _summary(item, encode=False):
    if isinstance(item, Request):
        assert item.command in COMMANDS, item
        return ("request", item.command)
    assert isinstance(item, RequestError), item
    if encode:
        line = encode_message(item.reply())
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line)["error"] == item.reason
    return ("error", item.reason, item.fatal)


def fuzz_one(data):
    inp = FuzzInput(data)
    limit = inp.choice(_LIMITS)
    stream = inp.rest()
    chunks, offset = [], 0
    cuts = FuzzInput(stream[-8:])   # the tail doubles as the chunk sizes
    while offset < len(stream):
        size = cuts.u8() % 32 or len(stream)
        chunks.append(stream[offset:offset + size])
        offset += size
    whole = [_summary(item, encode=True) for item in _items(RequestReader(limit), [stream])]
    pieces = [_summary(item) for item in _items(RequestReader(limit), chunks)]
    assert pieces == whole, (pieces, whole)
