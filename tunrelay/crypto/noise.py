"""The Noise IK handshake as WireGuard uses it (Noise spec rev. 34 §5, §7, §9; whitepaper §5.4).

Two layers:

1. A generic Noise ``SymmetricState`` and ``HandshakeState`` driven by token lists
   (``e``, ``s``, ``ee``, ``es``, ``se``, ``ss``, ``psk``) for the 25519/ChaChaPoly/BLAKE2s
   suite.  It runs the IK and IKpsk2 patterns and is checked against the public-domain
   cacophony vectors.
2. WireGuard's handshake, which *is* Noise_IKpsk2 with the prologue
   "WireGuard v1 zx2c4 Jason@zx2c4.com", a TAI64N timestamp as the first payload and an
   empty second payload.  The whitepaper's step-by-step equations (C, H, κ) are exactly
   MixKey / MixHash / MixKeyAndHash below, so the same code serves both layers.

Failures raise :class:`HandshakeError` whose ``reason`` is a drop reason
(``decrypt_failed`` or ``low_order_key``).  Nothing here keeps per-peer history: the
caller checks that timestamps increase and owns indices and timers.
"""

import copy
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from . import primitives
from .constants import CONSTRUCTION, HASH_SIZE, IDENTIFIER, KEY_SIZE, TAG_SIZE, TIMESTAMP_SIZE
from .keys import generate_private_key
from .messages import Initiation, Response

__all__ = [
    "HandshakeError", "CipherState", "SymmetricState", "HandshakeState", "PATTERNS",
    "tai64n", "SessionKeys", "InitiatorHandshake", "ConsumedInitiation",
    "create_initiation", "consume_initiation",
]


class HandshakeError(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class CipherState:
    """Noise §5.1: a key and a 64-bit nonce; without a key it passes data through."""

    def __init__(self, key=None):
        self.key = key
        self.nonce = 0

    def encrypt_with_ad(self, ad, plaintext):
        if self.key is None:
            return plaintext
        ciphertext = primitives.aead_encrypt(self.key, self.nonce, plaintext, ad)
        self.nonce += 1
        return ciphertext

    def decrypt_with_ad(self, ad, ciphertext):
        if self.key is None:
            return ciphertext
        try:
            plaintext = primitives.aead_decrypt(self.key, self.nonce, ciphertext, ad)
        except InvalidTag:
            raise HandshakeError("decrypt_failed") from None
        self.nonce += 1
        return plaintext


class SymmetricState:
    """Noise §5.2: chaining key ``ck``, handshake hash ``h`` and a CipherState."""

    def __init__(self, protocol_name):
        if len(protocol_name) <= HASH_SIZE:
            self.h = protocol_name.ljust(HASH_SIZE, b"\x00")
        else:
            self.h = primitives.hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, ikm):
        self.ck, key = primitives.kdf(self.ck, ikm, 2)
        self.cipher = CipherState(key)

    def mix_hash(self, data):
        self.h = primitives.hash(self.h, data)

    def mix_key_and_hash(self, ikm):
        self.ck, temp_h, key = primitives.kdf(self.ck, ikm, 3)
        self.mix_hash(temp_h)
        self.cipher = CipherState(key)

    def encrypt_and_hash(self, plaintext):
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext):
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self):
        first, second = primitives.kdf(self.ck, b"", 2)
        return CipherState(first), CipherState(second)


# name -> (responder pre-message tokens, message token lists); Noise §7.5 and §9.
PATTERNS = {
    "IK": (("s",), (("e", "es", "s", "ss"), ("e", "ee", "se"))),
    "IKpsk2": (("s",), (("e", "es", "s", "ss"), ("e", "ee", "se", "psk"))),
}


class HandshakeState:
    """Noise §5.3 for the IK-family patterns above (responder static known in advance).

    ``s``/``e`` are private keys (``e`` may be None to draw one from ``rng`` when needed);
    ``rs`` is the remote static public key.  ``psk`` may be set before the ``psk`` token.
    """

    def __init__(self, pattern, initiator, prologue, s=None, e=None, rs=None, psk=None,
                 protocol_name=None, rng=None):
        pre_responder, self.messages = PATTERNS[pattern]
        self.initiator = initiator
        self.s, self.e, self.rs, self.re, self.psk = s, e, rs, None, psk
        self.psk_mode = "psk" in pattern
        self.rng = rng
        self.symmetric = SymmetricState(
            protocol_name or b"Noise_%s_25519_ChaChaPoly_BLAKE2s" % pattern.encode())
        self.symmetric.mix_hash(prologue)
        for token in pre_responder:
            assert token == "s"
            self.symmetric.mix_hash(primitives.public_key(s, static=True) if not initiator else rs)
        self.message_index = 0

    @property
    def handshake_hash(self):
        return self.symmetric.h

    @property
    def finished(self):
        return self.message_index == len(self.messages)

    def _dh(self, token):
        # The letters name whose keys meet: first letter initiator's, second responder's.
        mine, theirs = (token[0], token[1]) if self.initiator else (token[1], token[0])
        private = self.e if mine == "e" else self.s
        public = self.re if theirs == "e" else self.rs
        try:
            return primitives.dh(private, public, static=mine == "s")
        except primitives.LowOrderPoint:
            raise HandshakeError("low_order_key") from None

    def _mix_e(self, public):
        self.symmetric.mix_hash(public)
        if self.psk_mode:
            self.symmetric.mix_key(public)

    def write_message(self, payload):
        out = []
        sym = self.symmetric
        for token in self.messages[self.message_index]:
            if token == "e":
                if self.e is None:
                    self.e = generate_private_key(self.rng)
                public = primitives.public_key(self.e)
                out.append(public)
                self._mix_e(public)
            elif token == "s":
                out.append(sym.encrypt_and_hash(primitives.public_key(self.s, static=True)))
            elif token == "psk":
                sym.mix_key_and_hash(self.psk)
            else:
                sym.mix_key(self._dh(token))
        out.append(sym.encrypt_and_hash(payload))
        self.message_index += 1
        return b"".join(out)

    def read_message(self, message):
        sym = self.symmetric
        offset = 0
        for token in self.messages[self.message_index]:
            if token == "e":
                self.re = message[offset:offset + KEY_SIZE]
                offset += KEY_SIZE
                if len(self.re) != KEY_SIZE:
                    raise HandshakeError("truncated")
                self._mix_e(self.re)
            elif token == "s":
                size = KEY_SIZE + (TAG_SIZE if sym.cipher.key is not None else 0)
                self.rs = sym.decrypt_and_hash(message[offset:offset + size])
                offset += size
            elif token == "psk":
                sym.mix_key_and_hash(self.psk)
            else:
                sym.mix_key(self._dh(token))
        payload = sym.decrypt_and_hash(message[offset:])
        self.message_index += 1
        return payload

    def split(self):
        """(initiator-to-responder, responder-to-initiator) cipher states."""
        return self.symmetric.split()


# --- WireGuard ----------------------------------------------------------------------

# TAI64 labels seconds since 1970 TAI with 2^62 added; wireguard-go adds 10 s more
# (the TAI-UTC offset of 1970).  Nanoseconds are rounded down to 2^24 ns so a timestamp
# does not leak fine timing (wireguard-go's "whitener").
_TAI64_BASE = 2**62 + 10
_TAI64N_WHITENER = 0xFFFFFF


def tai64n(unix_time):
    seconds = int(unix_time // 1)
    nanoseconds = int(round((unix_time - seconds) * 1e9)) % 1_000_000_000
    return struct.pack(">QI", _TAI64_BASE + seconds, nanoseconds & ~_TAI64N_WHITENER)


@dataclass(frozen=True)
class SessionKeys:
    send_key: bytes
    receive_key: bytes
    local_index: int
    remote_index: int
    is_initiator: bool


def _wireguard_state(initiator, local_private, remote_public=None, psk=None, ephemeral=None,
                     rng=None):
    return HandshakeState("IKpsk2", initiator, IDENTIFIER, s=local_private, e=ephemeral,
                          rs=remote_public, psk=psk, protocol_name=CONSTRUCTION, rng=rng)


class InitiatorHandshake:
    """An initiation we sent, waiting for its response."""

    def __init__(self, state, local_index, remote_public):
        self._state = state
        self.local_index = local_index
        self.remote_public = remote_public

    def consume_response(self, response):
        """Finish the handshake with a ``Response`` (macs already checked)."""
        if response.receiver != self.local_index:
            raise HandshakeError("unknown_index")
        # Work on a copy: a forged response must not spoil the genuine one still to come.
        state = copy.deepcopy(self._state)
        state.read_message(response.noise_message)
        first, second = state.split()
        return SessionKeys(first.key, second.key, self.local_index, response.sender, True)


def create_initiation(local_private, remote_public, psk, local_index, timestamp,
                      ephemeral=None, rng=None):
    """Return ``(InitiatorHandshake, Initiation)``; macs are left zero for ``cookie``."""
    if len(timestamp) != TIMESTAMP_SIZE:
        raise ValueError("a TAI64N timestamp is %d bytes" % TIMESTAMP_SIZE)
    state = _wireguard_state(True, local_private, remote_public, psk, ephemeral, rng)
    body = state.write_message(timestamp)
    state.rng = None  # the initiator needs no more randomness; keeps the copies cheap
    message = Initiation(local_index, body[:KEY_SIZE], body[KEY_SIZE:2 * KEY_SIZE + TAG_SIZE],
                         body[2 * KEY_SIZE + TAG_SIZE:])
    return InitiatorHandshake(state, local_index, remote_public), message


class ConsumedInitiation:
    """A decrypted initiation: who sent it and when, ready to be answered."""

    def __init__(self, state, remote_index, timestamp):
        self._state = state
        self.remote_index = remote_index
        self.remote_public = state.rs
        self.timestamp = timestamp

    def create_response(self, psk, local_index, ephemeral=None, rng=None):
        """Return ``(Response, SessionKeys)``; macs are left zero for ``cookie``."""
        self._state.psk = psk
        self._state.rng = rng
        if ephemeral is not None:
            self._state.e = ephemeral
        body = self._state.write_message(b"")
        first, second = self._state.split()
        keys = SessionKeys(second.key, first.key, local_index, self.remote_index, False)
        return Response(local_index, self.remote_index, body[:KEY_SIZE], body[KEY_SIZE:]), keys


def consume_initiation(local_private, initiation):
    """Decrypt an ``Initiation`` (macs already checked); the caller identifies the peer."""
    state = _wireguard_state(False, local_private)
    timestamp = state.read_message(initiation.noise_message)
    return ConsumedInitiation(state, initiation.sender, timestamp)
