"""mac1, mac2 and cookie replies: WireGuard's DoS defences (whitepaper §5.3, §5.4.4, §5.4.7).

Every handshake message ends with two 16-byte MACs:

- ``mac1 = MAC(HASH("mac1----" ‖ S_pub(receiver)), msg before mac1)`` is always checked.
  It proves the sender knows the receiver's public key, so a scanner gets no answer.
- ``mac2 = MAC(cookie, msg before mac2)`` is only required when the receiver is under
  load.  Without a valid mac2 it answers with a cookie reply instead of doing any DH.

The cookie is ``MAC(R, source address)`` where the secret ``R`` is redrawn every
COOKIE_SECRET_MAX_AGE seconds.  It travels encrypted with XChaCha20-Poly1305 under
``HASH("cookie--" ‖ S_pub(responder))``, a random 24-byte nonce, and the mac1 of the
message it answers as associated data, so only the real initiator of that message can
use it.  The source address is whatever bytes the caller derives from its opaque
source value; the initiator never needs to know them.

``CookieChecker`` is the receiving side (one per local key), ``CookieGenerator`` the sending
side (one per peer).  Time is always passed in.
"""

import hmac as _hmac
import os

from cryptography.exceptions import InvalidTag

from . import primitives
from .constants import (
    COOKIE_NONCE_SIZE, COOKIE_REFRESH_TIME, COOKIE_SECRET_MAX_AGE, COOKIE_SIZE, HASH_SIZE,
    LABEL_COOKIE, LABEL_MAC1, MAC_SIZE,
)
from .messages import CookieReply

__all__ = ["CookieChecker", "CookieGenerator", "mac1_key", "cookie_key"]

_MAC1_END = -2 * MAC_SIZE  # mac1 covers the message up to itself
_MAC2_END = -MAC_SIZE


def mac1_key(public_key):
    return primitives.hash(LABEL_MAC1, public_key)


def cookie_key(public_key):
    return primitives.hash(LABEL_COOKIE, public_key)


class CookieChecker:
    def __init__(self, local_public, rng=os.urandom):
        self._mac1_key = mac1_key(local_public)
        self._cookie_key = cookie_key(local_public)
        self._rng = rng
        self._secret = None
        self._secret_born = None

    def check_mac1(self, message):
        expected = primitives.mac(self._mac1_key, message[:_MAC1_END])
        return _hmac.compare_digest(expected, message[_MAC1_END:_MAC2_END])

    def _cookie(self, source_bytes):
        return primitives.mac(self._secret, source_bytes)

    def check_mac2(self, message, source_bytes, now):
        # An expired secret means any cookie the sender holds is stale too.
        if self._secret is None or now - self._secret_born > COOKIE_SECRET_MAX_AGE:
            return False
        expected = primitives.mac(self._cookie(source_bytes), message[:_MAC2_END])
        return _hmac.compare_digest(expected, message[_MAC2_END:])

    def create_reply(self, message, sender_index, source_bytes, now):
        """A cookie reply (bytes) answering handshake ``message`` from ``source_bytes``."""
        if self._secret is None or now - self._secret_born > COOKIE_SECRET_MAX_AGE:
            self._secret = self._rng(HASH_SIZE)
            self._secret_born = now
        nonce = self._rng(COOKIE_NONCE_SIZE)
        encrypted = primitives.xaead_encrypt(
            self._cookie_key, nonce, self._cookie(source_bytes), message[_MAC1_END:_MAC2_END])
        return CookieReply(sender_index, nonce, encrypted).pack()


class CookieGenerator:
    def __init__(self, remote_public):
        self._mac1_key = mac1_key(remote_public)
        self._cookie_key = cookie_key(remote_public)
        self._cookie = None
        self._cookie_received = None
        self._last_mac1 = None

    def stamp(self, message, now):
        """Return ``message`` with mac1 and (if we hold a fresh cookie) mac2 filled in."""
        body = message[:_MAC1_END]
        mac1 = primitives.mac(self._mac1_key, body)
        self._last_mac1 = mac1
        if self._cookie is not None and now - self._cookie_received <= COOKIE_REFRESH_TIME:
            mac2 = primitives.mac(self._cookie, body + mac1)
        else:
            mac2 = bytes(MAC_SIZE)
        return body + mac1 + mac2

    def consume_reply(self, reply, now):
        """Decrypt a ``CookieReply``; False if it does not answer our last message."""
        if self._last_mac1 is None:
            return False
        try:
            cookie = primitives.xaead_decrypt(
                self._cookie_key, reply.nonce, reply.encrypted_cookie, self._last_mac1)
        except InvalidTag:
            return False
        if len(cookie) != COOKIE_SIZE:
            return False
        self._cookie = cookie
        self._cookie_received = now
        # One reply per message: a replayed reply must not refresh the cookie.
        self._last_mac1 = None
        return True
