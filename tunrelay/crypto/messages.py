"""Exact-size pack and parse of the four WireGuard messages (whitepaper §5.4).

All integers are little-endian.  The first four bytes are read as one 32-bit type, so
non-zero "reserved" bytes make a message of unknown type (wireguard-go does the same).
Handshake messages have one exact size each; transport messages are a 16-byte header
followed by an AEAD ciphertext of at least the 16-byte tag (the keepalive).

``parse`` returns a frozen dataclass or raises :class:`MalformedMessage` whose
``reason`` is a drop-reason string: ``truncated``, ``unknown_type``, ``bad_size``.
Parsing never authenticates; see ``cookie`` (macs) and ``noise``/``session``.
"""

import struct
from dataclasses import dataclass
from typing import NamedTuple

from .constants import (
    COOKIE_NONCE_SIZE, COOKIE_REPLY_SIZE, COOKIE_SIZE, INITIATION_SIZE, KEY_SIZE, MAC_SIZE,
    MAX_TRANSPORT_SIZE, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE,
    MESSAGE_TRANSPORT, RESPONSE_SIZE, TAG_SIZE, TIMESTAMP_SIZE, TRANSPORT_HEADER_SIZE,
    TRANSPORT_MIN_SIZE,
)

__all__ = [
    "MalformedMessage", "Initiation", "Response", "CookieReply", "Transport", "parse",
    "pack_transport_header", "MACS_SIZE",
]

# mac1 and mac2 close both handshake messages; they cover everything before them.
MACS_SIZE = 2 * MAC_SIZE
_ZERO_MAC = bytes(MAC_SIZE)

_INITIATION = struct.Struct("<II%ds%ds%ds%ds%ds" % (
    KEY_SIZE, KEY_SIZE + TAG_SIZE, TIMESTAMP_SIZE + TAG_SIZE, MAC_SIZE, MAC_SIZE))
_RESPONSE = struct.Struct("<III%ds%ds%ds%ds" % (KEY_SIZE, TAG_SIZE, MAC_SIZE, MAC_SIZE))
_COOKIE_REPLY = struct.Struct("<II%ds%ds" % (COOKIE_NONCE_SIZE, COOKIE_SIZE + TAG_SIZE))
_TRANSPORT_HEADER = struct.Struct("<IIQ")
_TYPE = struct.Struct("<I")

assert _INITIATION.size == INITIATION_SIZE
assert _RESPONSE.size == RESPONSE_SIZE
assert _COOKIE_REPLY.size == COOKIE_REPLY_SIZE
assert _TRANSPORT_HEADER.size == TRANSPORT_HEADER_SIZE


class MalformedMessage(ValueError):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _check_len(name, value, size):
    if len(value) != size:
        raise ValueError("%s must be %d bytes, got %d" % (name, size, len(value)))


@dataclass(frozen=True)
class Initiation:
    sender: int
    ephemeral: bytes
    encrypted_static: bytes
    encrypted_timestamp: bytes
    mac1: bytes = _ZERO_MAC
    mac2: bytes = _ZERO_MAC

    def pack(self):
        _check_len("ephemeral", self.ephemeral, KEY_SIZE)
        _check_len("encrypted static", self.encrypted_static, KEY_SIZE + TAG_SIZE)
        _check_len("encrypted timestamp", self.encrypted_timestamp, TIMESTAMP_SIZE + TAG_SIZE)
        _check_len("mac1", self.mac1, MAC_SIZE)
        _check_len("mac2", self.mac2, MAC_SIZE)
        return _INITIATION.pack(MESSAGE_INITIATION, self.sender, self.ephemeral,
                                self.encrypted_static, self.encrypted_timestamp,
                                self.mac1, self.mac2)

    @property
    def noise_message(self):
        return self.ephemeral + self.encrypted_static + self.encrypted_timestamp


@dataclass(frozen=True)
class Response:
    sender: int
    receiver: int
    ephemeral: bytes
    encrypted_nothing: bytes
    mac1: bytes = _ZERO_MAC
    mac2: bytes = _ZERO_MAC

    def pack(self):
        _check_len("ephemeral", self.ephemeral, KEY_SIZE)
        _check_len("encrypted nothing", self.encrypted_nothing, TAG_SIZE)
        _check_len("mac1", self.mac1, MAC_SIZE)
        _check_len("mac2", self.mac2, MAC_SIZE)
        return _RESPONSE.pack(MESSAGE_RESPONSE, self.sender, self.receiver, self.ephemeral,
                              self.encrypted_nothing, self.mac1, self.mac2)

    @property
    def noise_message(self):
        return self.ephemeral + self.encrypted_nothing


@dataclass(frozen=True)
class CookieReply:
    receiver: int
    nonce: bytes
    encrypted_cookie: bytes

    def pack(self):
        _check_len("nonce", self.nonce, COOKIE_NONCE_SIZE)
        _check_len("encrypted cookie", self.encrypted_cookie, COOKIE_SIZE + TAG_SIZE)
        return _COOKIE_REPLY.pack(MESSAGE_COOKIE_REPLY, self.receiver, self.nonce,
                                  self.encrypted_cookie)


class Transport(NamedTuple):
    # A named tuple, not a frozen dataclass: one is parsed per data packet, and it builds in
    # half the time.
    receiver: int
    counter: int
    # WireGuard's transport AEAD has empty associated data: the header is bound only
    # through the receiver's key lookup and the counter used as nonce.
    encrypted_packet: memoryview   # a view into the received message


def pack_transport_header(receiver, counter):
    return _TRANSPORT_HEADER.pack(MESSAGE_TRANSPORT, receiver, counter)


_FIXED_SIZES = {
    MESSAGE_INITIATION: INITIATION_SIZE,
    MESSAGE_RESPONSE: RESPONSE_SIZE,
    MESSAGE_COOKIE_REPLY: COOKIE_REPLY_SIZE,
}


def message_type(data):
    """The 32-bit type of ``data``, or raise ``truncated``."""
    if len(data) < _TYPE.size:
        raise MalformedMessage("truncated")
    return _TYPE.unpack_from(data)[0]


def parse(data):
    """Parse one message; raise :class:`MalformedMessage` with a drop reason."""
    data = bytes(data)
    kind = message_type(data)
    if kind == MESSAGE_TRANSPORT:
        if len(data) < TRANSPORT_MIN_SIZE:
            raise MalformedMessage("truncated")
        if len(data) > MAX_TRANSPORT_SIZE:
            raise MalformedMessage("bad_size")
        _, receiver, counter = _TRANSPORT_HEADER.unpack_from(data)
        # A view: a 64 KiB frame is decrypted in place of being copied first.
        return Transport(receiver, counter, memoryview(data)[TRANSPORT_HEADER_SIZE:])
    size = _FIXED_SIZES.get(kind)
    if size is None:
        raise MalformedMessage("unknown_type")
    if len(data) != size:
        raise MalformedMessage("truncated" if len(data) < size else "bad_size")
    if kind == MESSAGE_INITIATION:
        return Initiation(*_INITIATION.unpack(data)[1:])
    if kind == MESSAGE_RESPONSE:
        return Response(*_RESPONSE.unpack(data)[1:])
    return CookieReply(*_COOKIE_REPLY.unpack(data)[1:])
