"""One WireGuard transport keypair: the sealing and opening of data messages (whitepaper §5.4.6).

A keypair holds the two ChaCha20-Poly1305 keys a handshake derived, the sender's 64-bit
counter (the AEAD nonce is four zero bytes then that counter, little-endian) and the
receive-side replay check. It is the one piece of WireGuard the data path touches for every
packet, so it is kept small and its hot methods do one thing each:

- ``seal(plaintext)`` returns the 16-byte transport header and the ciphertext as two
  buffers, so a link can hand both to one gathering ``sendmsg`` without joining them;
- ``open_from(message, counter)`` authenticates and decrypts a whole received message
  (the data path calls ``decrypt`` itself, once per message, for speed); the receive-side
  replay check is ``replay.accept(counter)``, after decryption.

Padding (whitepaper §5.4.6): a layer-3 peer pads its plaintext with zeros to a multiple of
16 bytes, which hides a little about packet sizes; the receiver finds the real length in
the IP header. Like the kernel driver, a packet that fits the device MTU is padded at most
to the MTU (``padding_limit``), so an MTU-sized packet's message still fits the path. An
Ethernet frame has no length of its own, so a keypair made with ``padding_limit=0`` (tap
mode) sends frames unpadded and they arrive byte-exact.

``fast_until`` is the time after which sending needs the state machine again: the
initiator must start a rekey after REKEY_AFTER_TIME, the responder may not send after
REJECT_AFTER_TIME. Until then (and below REKEY_AFTER_MESSAGES) the data path seals without
asking the core anything.
"""

import struct

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .constants import (
    MESSAGE_TRANSPORT, PADDING_MULTIPLE, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME, REKEY_AFTER_TIME,
    TRANSPORT_HEADER_SIZE,
)
from .replay import ReplayWindow, StrictCounter

__all__ = ["Keypair", "NONCE", "PADDING"]

_HEADER_START = struct.Struct("<II")   # type (with three reserved zero bytes), receiver index; the counter follows
NONCE = struct.Struct("<IQ")           # four zero bytes, then the counter
_NONCE_START = bytes(4)
PADDING = bytes(PADDING_MULTIPLE)


class Keypair:
    __slots__ = ("peer", "local_index", "remote_index", "is_initiator", "created", "send_counter",
                 "fast_until", "replay", "padding_limit", "_encrypt", "decrypt", "_header_start")

    def __init__(self, peer, session_keys, created, stream, padding_limit=None):
        self.peer = peer
        self.local_index = session_keys.local_index
        self.remote_index = session_keys.remote_index
        self.is_initiator = session_keys.is_initiator
        self.created = created
        self.send_counter = 0
        self.fast_until = created + (REKEY_AFTER_TIME if self.is_initiator else REJECT_AFTER_TIME)
        # A session made over a stream (TCP) cannot see reordering: strictly increasing counters.
        self.replay = StrictCounter() if stream else ReplayWindow()
        self.padding_limit = padding_limit   # None: always to 16; 0: never; else not beyond it
        self._header_start = _HEADER_START.pack(MESSAGE_TRANSPORT, self.remote_index)
        self._encrypt = ChaCha20Poly1305(session_keys.send_key).encrypt
        # decrypt(NONCE.pack(0, counter), ciphertext, None): the data path calls it directly.
        self.decrypt = ChaCha20Poly1305(session_keys.receive_key).decrypt

    def usable_for_sending(self, now):
        return self.send_counter < REJECT_AFTER_MESSAGES and now - self.created < REJECT_AFTER_TIME

    def seal(self, plaintext):
        """(header, ciphertext) of the next transport message carrying ``plaintext``."""
        counter = self.send_counter
        self.send_counter = counter + 1
        size = len(plaintext)
        short = -size % PADDING_MULTIPLE
        limit = self.padding_limit
        if short and limit is not None:
            if not limit:
                short = 0
            elif size <= limit < size + short:
                short = limit - size
        if short:
            plaintext = b"".join((plaintext, PADDING[:short]))
        # The header is type, receiver index and counter; the nonce four zero bytes and the counter.
        counter_bytes = counter.to_bytes(8, "little")
        return self._header_start + counter_bytes, self._encrypt(_NONCE_START + counter_bytes, plaintext, None)

    def seal_joined(self, plaintext):
        """The whole transport message as one bytes object (for the core's own sends)."""
        return b"".join(self.seal(plaintext))

    def open_from(self, message, counter):
        """Decrypt a received transport message (a bytes-like holding header and ciphertext);
        raises cryptography's InvalidTag if it does not authenticate."""
        # A slice, not a memoryview: cheaper to make, and decryption copies the bytes anyway.
        return self.decrypt(NONCE.pack(0, counter), message[TRANSPORT_HEADER_SIZE:], None)
