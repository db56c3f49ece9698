"""WireGuard message parser (tunrelay/crypto/messages.py).

Contract: ``messages.parse`` returns one of the four message types or raises
``MalformedMessage`` (reason ``truncated``, ``unknown_type`` or ``bad_size``).
Checks: a parsed message packs back to exactly the input bytes, and parsing a memoryview
(what the stream decoder hands over) gives the same result as parsing bytes.
"""

from tunrelay.crypto import messages

from ._input import accepted

REJECTIONS = (messages.MalformedMessage,)
COVERS = ["tunrelay/crypto/messages.py"]
MAX_LEN = 512

_REASONS = {"truncated", "unknown_type", "bad_size"}


def fuzz_one(data):
    try:
        message = messages.parse(data)
    except messages.MalformedMessage as error:
        assert error.reason in _REASONS, error.reason
        raise
    if isinstance(message, messages.Transport):
        packed = (messages.pack_transport_header(message.receiver, message.counter)
                  + bytes(message.encrypted_packet))
    else:
        packed = message.pack()
    assert packed == data, (message, data)
    again = accepted(messages.MalformedMessage, messages.parse, memoryview(data))
    assert type(again) is type(message) and packed == (
        again.pack() if not isinstance(again, messages.Transport)
        else messages.pack_transport_header(again.receiver, again.counter) + bytes(again.encrypted_packet))
