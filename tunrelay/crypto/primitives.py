"""Cryptographic primitives of WireGuard, as named in the whitepaper §5.4.

- ``hash``: BLAKE2s-256.  ``mac``: keyed BLAKE2s with a 16-byte output.
- ``hmac``/``kdf``: HMAC-BLAKE2s and the HKDF of the whitepaper (RFC 5869 with the
  extract step folded in): τ0 = HMAC(C, input), τi = HMAC(τ0, τ(i-1) ‖ i).
- ``aead_*``: ChaCha20-Poly1305 (RFC 7539) with the nonce 32 zero bits ‖ 64-bit
  little-endian counter.
- ``dh``: X25519.  An all-zero shared secret (a low-order point) raises
  :class:`LowOrderPoint`; WireGuard must reject such peers.
- ``xaead_*``: XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03) for cookie replies, built
  from a pure-Python HChaCha20 and the library's ChaCha20-Poly1305 so that no new
  dependency is needed.

AEAD failure is reported as :class:`cryptography.exceptions.InvalidTag`.
"""

import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization

from .constants import MAC_SIZE

__all__ = [
    "LowOrderPoint", "hash", "mac", "hmac", "kdf", "aead_encrypt", "aead_decrypt",
    "dh", "public_key", "hchacha20", "xaead_encrypt", "xaead_decrypt",
]

_RAW = serialization.Encoding.Raw
_RAW_PUBLIC = serialization.PublicFormat.Raw


class LowOrderPoint(ValueError):
    """X25519 produced the all-zero output: the peer's public value has low order."""


def hash(*parts):  # noqa: A001 - the whitepaper's name
    h = hashlib.blake2s()
    for part in parts:
        h.update(part)
    return h.digest()


def mac(key, data):
    return hashlib.blake2s(data, key=key, digest_size=MAC_SIZE).digest()


_BLOCK = 64   # BLAKE2s block size
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


def hmac(key, data):
    """HMAC-BLAKE2s (RFC 2104), written out: the stdlib's hmac object costs ten times the
    two hashes here, and a handshake makes about fifty of these."""
    if len(key) > _BLOCK:
        key = hashlib.blake2s(key).digest()
    key = key.ljust(_BLOCK, b"\x00")
    inner = hashlib.blake2s(key.translate(_INNER_PAD))
    inner.update(data)
    outer = hashlib.blake2s(key.translate(_OUTER_PAD))
    outer.update(inner.digest())
    return outer.digest()


def kdf(chaining_key, data, count):
    """Return ``count`` 32-byte outputs of the whitepaper's KDF_n."""
    prk = hmac(chaining_key, data)
    outputs = []
    previous = b""
    for i in range(1, count + 1):
        previous = hmac(prk, previous + bytes([i]))
        outputs.append(previous)
    return outputs


def _nonce(counter):
    return b"\x00\x00\x00\x00" + struct.pack("<Q", counter)


def aead_encrypt(key, counter, plaintext, associated_data):
    return ChaCha20Poly1305(key).encrypt(_nonce(counter), plaintext, associated_data)


def aead_decrypt(key, counter, ciphertext, associated_data):
    return ChaCha20Poly1305(key).decrypt(_nonce(counter), ciphertext, associated_data)


_STATIC_KEYS_KEPT = 16
_static_keys = {}   # static private key bytes -> (X25519PrivateKey, public bytes)


def _private(private_key, static):
    """The key object (and its public value) for ``private_key``. Loading one costs as much
    as an exchange, so a *static* key's is kept (a few, bounded: one per interface, and
    more only in tests and load generators); an ephemeral key's is not, so that it lives
    no longer than its handshake."""
    if static:
        private_key = bytes(private_key)
        kept = _static_keys.get(private_key)
        if kept is not None:
            return kept
    key = X25519PrivateKey.from_private_bytes(private_key)
    pair = (key, key.public_key().public_bytes(_RAW, _RAW_PUBLIC))
    if static:
        if len(_static_keys) >= _STATIC_KEYS_KEPT:
            _static_keys.clear()
        _static_keys[private_key] = pair
    return pair


def forget_static_key(private_key):
    """A static key retired (a new interface key): its loaded form goes too."""
    if private_key is not None:
        _static_keys.pop(bytes(private_key), None)


def public_key(private_key, static=False):
    return _private(private_key, static)[1]


def dh(private_key, public_value, static=False):
    """X25519; ``static``: ``private_key`` is a long-lived key whose loaded form is kept."""
    private = _private(private_key, static)[0] if static else X25519PrivateKey.from_private_bytes(private_key)
    public = X25519PublicKey.from_public_bytes(public_value)  # ValueError on a wrong length
    try:
        return private.exchange(public)
    except ValueError as exc:
        # With lengths already checked, OpenSSL refuses exactly the all-zero result.
        raise LowOrderPoint("X25519 result is all zeros (low-order public key)") from exc


# HChaCha20: the ChaCha20 block function without the final feed-forward addition,
# keeping words 0..3 and 12..15 of the state as the subkey (draft §2.2).
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")
_MASK = 0xFFFFFFFF


def _rotl(v, c):
    return ((v << c) & _MASK) | (v >> (32 - c))


def _quarter_round(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & _MASK
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & _MASK
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & _MASK
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & _MASK
    s[b] = _rotl(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    if len(key) != 32 or len(nonce16) != 16:
        raise ValueError("HChaCha20 needs a 32-byte key and a 16-byte nonce")
    s = list(_SIGMA) + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _quarter_round(s, 0, 4, 8, 12)
        _quarter_round(s, 1, 5, 9, 13)
        _quarter_round(s, 2, 6, 10, 14)
        _quarter_round(s, 3, 7, 11, 15)
        _quarter_round(s, 0, 5, 10, 15)
        _quarter_round(s, 1, 6, 11, 12)
        _quarter_round(s, 2, 7, 8, 13)
        _quarter_round(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def _xchacha_parts(key, nonce24):
    if len(nonce24) != 24:
        raise ValueError("XChaCha20 needs a 24-byte nonce")
    return ChaCha20Poly1305(hchacha20(key, nonce24[:16])), b"\x00\x00\x00\x00" + nonce24[16:]


def xaead_encrypt(key, nonce24, plaintext, associated_data):
    cipher, nonce = _xchacha_parts(key, nonce24)
    return cipher.encrypt(nonce, plaintext, associated_data)


def xaead_decrypt(key, nonce24, ciphertext, associated_data):
    cipher, nonce = _xchacha_parts(key, nonce24)
    return cipher.decrypt(nonce, ciphertext, associated_data)

