"""SYN cookies (RFC 4987 §3.6) in Linux's encoding (net/ipv4/syncookies.c), time injected.

When a listener's SYN queue is full the stack answers a SYN without keeping any state:
everything the returning ACK needs to rebuild the connection is in our ISN and, when the
SYN offered timestamps, in the low bits of our TSval, both of which the peer echoes.

The ISN (what Linux's secure_tcp_syn_cookie computes, with a different hash)::

    cookie = H(key, 4-tuple, 0) + SEG.SEQ + (count << 24)
             + ((H(key, 4-tuple, count) + mss_index) mod 2^24)        (all mod 2^32)

``count`` is the injected clock in minutes (COUNTER_PERIOD): its low eight bits travel in
the cookie, the whole of it goes into the hash (so an old cookie never comes back to life
when the eight bits wrap); a cookie is valid while the current count is at most MAX_COOKIE_AGE - 1 ahead of its own, so one to
two minutes. ``mss_index`` picks the largest entry of a four-entry table (Linux's
``msstab``, one per family) that does not exceed the peer's MSS. Checking reverses the
sum: strip the first hash and SEG.SEQ - 1, read the count from the top byte, strip the
second hash for that count and what is left must be a valid table index. A forged ACK
thus passes with probability about MAX_COOKIE_AGE / 256 * 4 / 2^24 (about 2^-29): the top
byte is hidden behind the first hash too. As in Linux, SEG.SEQ is only
added in, not authenticated: an ACK whose sequence number is off by less than the table
size decodes to another table MSS, which gains its sender nothing.

The hash H is keyed BLAKE2b (hashlib, 4-byte digest; Linux uses SipHash, which hashlib
lacks), its key 32 random bytes per stack (``os.urandom``), so cookies are neither
predictable off-path nor valid across restarts.

The TSval of a cookie SYN-ACK (Linux's cookie_init_timestamp) is the current TSval with
its low six bits replaced by the options the connection needs later:

    bits 0-3: the peer's window shift, or 15 for "no window scaling";
    bit 4: SACK permitted; bit 5: ECN (always 0 here: the responder does not negotiate ECN);

lowered by 64 if that would put it ahead of the clock, so TSval never runs backwards on the
peer's side. ``decode_timestamp`` reads them back from the ACK's TSecr. Without timestamps
there is nowhere to keep them, so, as in Linux, such a SYN-ACK offers neither window
scaling nor SACK and the connection runs without both.
"""

import hashlib
import struct
from dataclasses import dataclass

from tunrelay.wire.tcp import MAX_WINDOW_SHIFT

__all__ = ["SynCookies", "CookieOptions", "mss_table", "encode_timestamp",
           "decode_timestamp", "COUNTER_PERIOD", "MAX_COOKIE_AGE"]

COOKIE_BITS = 24
COOKIE_MASK = (1 << COOKIE_BITS) - 1
COUNT_MASK = 0xFF                      # what is left of 32 bits above COOKIE_BITS
SEQ_MASK = 0xFFFFFFFF
COUNTER_PERIOD = 60.0                  # Linux's tcp_cookie_time(): minutes
MAX_COOKIE_AGE = 2                     # Linux's MAX_SYNCOOKIE_AGE, in counts
# Linux's msstab (IPv4) and msstab of syncookies.c's IPv6 twin (1280, 1480, 1500, 9000 - 60).
MSS_TABLE_IPV4 = (536, 1300, 1440, 1460)
MSS_TABLE_IPV6 = (1220, 1420, 1440, 8940)

TIMESTAMP_OPTION_BITS = 6
TIMESTAMP_OPTION_MASK = (1 << TIMESTAMP_OPTION_BITS) - 1
TS_WINDOW_SCALE_MASK = 0x0F            # 15 means "no window scaling"
TS_SACK = 1 << 4
TS_ECN = 1 << 5


@dataclass(frozen=True)
class CookieOptions:
    """What a returning ACK's cookie (and TSecr) says the SYN negotiated."""
    mss: int
    window_scale: "int | None" = None
    sack_permitted: bool = False


def mss_table(family_address_length):
    return MSS_TABLE_IPV6 if family_address_length == 16 else MSS_TABLE_IPV4


def _mss_index(table, mss):
    index = 0
    for position, value in enumerate(table):
        if value <= mss:
            index = position
    return index


class SynCookies:
    def __init__(self, secret):
        if not isinstance(secret, (bytes, bytearray)) or not 16 <= len(secret) <= 64:
            raise ValueError("the SYN cookie secret must be 16 to 64 bytes")
        self._secret = bytes(secret)

    def _hash(self, identifier, count, which):
        digest = hashlib.blake2b(identifier + struct.pack("!BI", which, count),
                                 key=self._secret, digest_size=4).digest()
        return struct.unpack("!I", digest)[0]

    @staticmethod
    def _identifier(local_address, local_port, remote_address, remote_port):
        return (bytes(remote_address) + bytes(local_address)
                + struct.pack("!HH", remote_port, local_port))

    @staticmethod
    def count(now):
        """The full minute counter. Only its low eight bits travel in the cookie, but the
        hash takes all of it (as Linux's does): hashing the eight bits alone would make a
        captured cookie valid again every 256 minutes."""
        return int(now // COUNTER_PERIOD) & SEQ_MASK

    def make(self, local_address, local_port, remote_address, remote_port, their_isn, mss, now):
        """The cookie ISN for a SYN with ``their_isn`` and MSS ``mss`` (the value the
        connection will use: the table entry at or below it)."""
        table = mss_table(len(local_address))
        identifier = self._identifier(local_address, local_port, remote_address, remote_port)
        count = self.count(now)
        data = (self._hash(identifier, count, 1) + _mss_index(table, mss)) & COOKIE_MASK
        return (self._hash(identifier, 0, 0) + their_isn + ((count & COUNT_MASK) << COOKIE_BITS) + data) & SEQ_MASK

    def check(self, local_address, local_port, remote_address, remote_port, their_isn, cookie,
              now):
        """The MSS a cookie (SEG.ACK - 1 of the returning ACK) carries, or None if it is
        forged, for another 4-tuple or sequence number, or stale."""
        table = mss_table(len(local_address))
        identifier = self._identifier(local_address, local_port, remote_address, remote_port)
        stripped = (cookie - self._hash(identifier, 0, 0) - their_isn) & SEQ_MASK
        count = self.count(now)
        age = (count - (stripped >> COOKIE_BITS)) & COUNT_MASK
        if age >= MAX_COOKIE_AGE:
            return None
        index = (stripped - self._hash(identifier, (count - age) & SEQ_MASK, 1)) & COOKIE_MASK
        return table[index] if index < len(table) else None


def encode_timestamp(ts_now, window_scale, sack_permitted):
    """The TSval for a cookie SYN-ACK: ``ts_now`` with the options in its low six bits."""
    options = TS_WINDOW_SCALE_MASK if window_scale is None else min(window_scale, MAX_WINDOW_SHIFT)
    if sack_permitted:
        options |= TS_SACK
    value = (ts_now & ~TIMESTAMP_OPTION_MASK & SEQ_MASK) | options
    if value > ts_now:
        value = (value - (1 << TIMESTAMP_OPTION_BITS)) & SEQ_MASK
    return value


def decode_timestamp(tsecr):
    """(window_scale or None, sack_permitted) from the TSecr of a cookie's ACK."""
    window_scale = tsecr & TS_WINDOW_SCALE_MASK
    if window_scale == TS_WINDOW_SCALE_MASK:
        window_scale = None
    return window_scale, bool(tsecr & TS_SACK)
