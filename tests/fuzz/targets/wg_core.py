"""The WireGuard core's receive path (tunrelay/crypto/session.py, ``WireGuardCore``).

Contract: ``datagram_received`` never raises; every bad message becomes a ``Drop`` event.
So no exception may escape (``REJECTIONS`` is empty).

An input is a short program run against a fresh core that knows one peer ``P``. Raw
bytes alone would almost never get past mac1, so most operations build structurally
valid messages from the fuzz bytes, with a correct mac1 (and mac2 once the core has
handed out a cookie), and the harness can play the peer for real: a genuine initiation
with a fuzzed timestamp and ephemeral, a genuine response to an initiation the core sent,
a genuine cookie reply, and transport messages sealed with the session's key under a
fuzzed counter. Time moves and timers fire in between.

Checks: every event is an ``Event``; everything the core transmits is a well-formed
message; a ``Deliver`` carries only (a prefix of) a plaintext the harness sealed and
names the peer.
"""

import functools
import random

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tunrelay.crypto import keys, messages, noise, primitives
from tunrelay.crypto.cookie import CookieChecker, CookieGenerator
from tunrelay.crypto.events import Deliver, Drop, Event, PeerConfig, Transmit
from tunrelay.crypto.session import WireGuardCore

from ._input import FuzzInput

REJECTIONS = ()
COVERS = ["tunrelay/crypto/session.py", "tunrelay/crypto/noise.py",
          "tunrelay/crypto/cookie.py", "tunrelay/crypto/messages.py",
          "tunrelay/crypto/replay.py", "tunrelay/crypto/ratelimit.py"]
MAX_LEN = 2048

_keys = random.Random(15)
CORE_PRIVATE = keys.generate_private_key(_keys.randbytes)
CORE_PUBLIC = keys.public_key(CORE_PRIVATE)
PEER_PRIVATE = keys.generate_private_key(_keys.randbytes)
PEER_PUBLIC = keys.public_key(PEER_PRIVATE)
STRANGER_PRIVATE = keys.generate_private_key(_keys.randbytes)
PSK = _keys.randbytes(32)
SOURCES = ("P", "Q", ("tcp", "192.0.2.7", 40000))
START = 1_700_000_000.0
MAX_OPERATIONS = 8



def _remembered(function):
    """``function`` with its results remembered; exceptions are not, so they recur."""
    cached = functools.lru_cache(maxsize=16384)(function)

    def call(*args, **options):   # options: dh's and public_key's ``static``
        try:
            return cached(*args, **options)
        except TypeError:   # an unhashable argument (a memoryview)
            return function(*args, **options)

    return call


# The cryptography is most of the cost of an input (a genuine handshake takes about 13
# X25519 multiplications and dozens of BLAKE2s HMACs), and the same keys, ephemerals and
# transcripts recur from input to input. These functions are pure: remember their results.
for _name in ("public_key", "dh", "hash", "hmac", "kdf", "xaead_encrypt", "xaead_decrypt"):
    setattr(primitives, _name, _remembered(getattr(primitives, _name)))


class _Session:
    """The peer's sending half of a session: the core's index and the key to seal with."""

    def __init__(self, receiver, send_key):
        self.receiver = receiver
        self.aead = ChaCha20Poly1305(send_key)
        self.next_counter = 0

    def seal(self, counter, padded):
        nonce = bytes(4) + counter.to_bytes(8, "little")
        return messages.pack_transport_header(self.receiver, counter) + self.aead.encrypt(
            nonce, padded, None)


class _Peer:
    """The harness side: peer P's keys, cookies and sessions, and what the core sent it."""

    def __init__(self, inp):
        self.inp = inp
        self.now = START + inp.u16()
        self.cookies = CookieGenerator(CORE_PUBLIC)      # P stamping messages to the core
        self.checker = CookieChecker(PEER_PUBLIC, random.Random(2).randbytes)
        self.handshake = None                             # P's pending InitiatorHandshake
        self.handshake_psk_ok = False                     # ... made with the right psk
        self.sessions = []
        self.core_initiations = []                        # bytes the core sent to P
        self.indices = []                                 # the core's indices seen so far
        self.sealed = []                                  # padded plaintexts P sealed

    # -- what the core does -----------------------------------------------------------
    def absorb(self, events):
        for event in events:
            assert isinstance(event, Event), event
            if isinstance(event, Transmit):
                self._transmitted(event)
            elif isinstance(event, Deliver):
                assert event.peer_id == "p", event
                # An IP header claiming length 0 trims to b"": delivered, and the relay counts
                # it as empty_packet (commit 7de747e keeps that on purpose).
                assert any(padded.startswith(event.frame) for padded in self.sealed), \
                    "delivered a frame the peer never sealed"
            elif isinstance(event, Drop):
                assert isinstance(event.reason, str) and event.reason, event

    def _transmitted(self, event):
        message = messages.parse(event.data)   # the core only ever sends well-formed messages
        if isinstance(message, messages.CookieReply):
            self.cookies.consume_reply(message, self.now)
        elif isinstance(message, messages.Initiation):
            self.indices.append(message.sender)
            self.core_initiations = (self.core_initiations + [event.data])[-2:]
        elif isinstance(message, messages.Response):
            self.indices.append(message.sender)
            if self.handshake is not None and message.receiver == self.handshake.local_index:
                handshake, self.handshake = self.handshake, None
                try:
                    session_keys = handshake.consume_response(message)
                except noise.HandshakeError:
                    assert not self.handshake_psk_ok, "the core's response does not decrypt"
                    return
                self.sessions.append(_Session(session_keys.remote_index, session_keys.send_key))

    # -- building messages to the core -------------------------------------------------
    def index(self):
        pick = self.inp.u8()
        if pick < 0x80 and self.indices:
            return self.indices[pick % len(self.indices)]
        return self.inp.u32()

    def stamped(self, packed):
        return self.cookies.stamp(packed, self.now)

    def forged_handshake(self):
        inp = self.inp
        if inp.flag():
            packed = messages.Initiation(inp.u32(), inp.exact(32), inp.exact(48), inp.exact(28)).pack()
        else:
            packed = messages.Response(inp.u32(), self.index(), inp.exact(32), inp.exact(16)).pack()
        return self.stamped(packed)

    def genuine_initiation(self):
        inp = self.inp
        who = inp.u8()
        private = STRANGER_PRIVATE if who & 1 else PEER_PRIVATE
        psk = bytes(32) if who & 2 else PSK
        if who & 4:
            timestamp = inp.exact(12)
        else:
            timestamp = noise.tai64n(self.now + (inp.u16() - 0x8000) / 16.0)
        ephemeral = keys.clamp(inp.exact(32)) if who & 8 else None
        handshake, message = noise.create_initiation(
            private, CORE_PUBLIC, psk, inp.u32(), timestamp, ephemeral=ephemeral,
            rng=random.Random(inp.u8()).randbytes)
        if private is PEER_PRIVATE:
            self.handshake, self.handshake_psk_ok = handshake, psk is PSK
        return self.stamped(message.pack())

    def genuine_response(self):
        if not self.core_initiations:
            return None
        initiation = messages.parse(self.core_initiations[-1])
        consumed = noise.consume_initiation(PEER_PRIVATE, initiation)
        response, session_keys = consumed.create_response(
            PSK, self.inp.u32(), rng=random.Random(self.inp.u8()).randbytes)
        self.sessions.append(_Session(session_keys.remote_index, session_keys.send_key))
        return self.stamped(response.pack())

    def cookie_reply(self):
        inp = self.inp
        if inp.flag() and self.core_initiations:
            message = self.core_initiations[-1]
            return self.checker.create_reply(message, messages.parse(message).sender,
                                             inp.take(8), self.now)
        return messages.CookieReply(self.index(), inp.exact(24), inp.exact(32)).pack()

    def transport(self):
        inp = self.inp
        if not self.sessions or inp.flag():
            return messages.pack_transport_header(self.index(), inp.u64()) + inp.sized(96)
        session = self.sessions[inp.u8() % len(self.sessions)]
        how = inp.u8() % 3
        if how == 0:
            counter = min(session.next_counter, 2**64 - 1)
        elif how == 1:
            counter = max(0, session.next_counter - 1 - inp.u8() * 64)
        else:
            counter = inp.u64()
        session.next_counter = max(session.next_counter, counter + 1)
        plaintext = inp.sized(300)
        padded = plaintext + bytes(-len(plaintext) % 16)
        if plaintext:
            self.sealed.append(padded)
        return session.seal(counter, padded)


def fuzz_one(data):
    inp = FuzzInput(data)
    options = inp.u8()
    core = WireGuardCore(
        CORE_PRIVATE,
        [PeerConfig(PEER_PUBLIC, PSK, endpoint="P", peer_id="p", stream=bool(options & 1),
                    persistent_keepalive=25.0 if options & 8 else 0.0)],
        rng=random.Random(0).randbytes, jitter=random.Random(1),
        trim_ip_padding=not options & 2, under_load_handshakes=0 if options & 4 else 64)
    peer = _Peer(inp)
    for _ in range(MAX_OPERATIONS):
        if not inp.remaining:
            break
        operation = inp.u8()
        source = SOURCES[(operation >> 4) % len(SOURCES)]
        kind = operation % 9
        message = None
        if kind == 0:
            message = inp.sized(300)
        elif kind == 1:
            message = peer.forged_handshake()
        elif kind == 2:
            message = peer.genuine_initiation()
        elif kind == 3:
            message = peer.genuine_response()
        elif kind == 4:
            message = peer.cookie_reply()
        elif kind == 5:
            message = peer.transport()
        elif kind == 6:
            peer_id = "p" if inp.u8() else "nobody"
            peer.absorb(core.send_frame(peer_id, inp.sized(200), peer.now))
        elif kind == 7:
            peer.now += inp.u16() / 64.0
            if operation & 0x80:
                deadline = core.next_deadline()
                if deadline is not None:
                    peer.now = max(peer.now, deadline)
            peer.absorb(core.tick(peer.now))
        else:
            action = inp.u8() % 3
            if action == 0:
                core.forget_sessions("p")
            elif action == 1:
                peer.absorb(core.send_keepalive("p", peer.now))
            else:
                core.set_endpoint("p", source)
        if message is not None:
            peer.absorb(core.datagram_received(message, source, peer.now))
