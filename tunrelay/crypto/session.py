"""The WireGuard device as a pure state machine: bytes and time in, events out.

This ties ``noise`` (handshake), ``cookie`` (mac1/mac2), ``ratelimit``, ``replay`` and
``messages`` together the way the whitepaper §5-§6 and wireguard-go's ``device``
package do.  It never reads a clock, opens a socket or sleeps: every entry point takes
``now`` (seconds) and returns a list of ``events``; ``next_deadline()`` says when to call
``tick`` next.

Receive path for transport data, in this order: size check (``messages.parse``) → index
lookup → age of the keypair → decrypt → replay window → roaming/timers → ``Deliver``.
The caller then checks the inner source address against the peer's allowed IPs.

Keypairs rotate as in wireguard-go: an initiator's new keypair becomes *current* at once;
a responder's waits in *next* until the first packet arrives under it (the key
confirmation the Noise IK pattern cannot give by itself), then becomes current.

Timers (whitepaper §6; wireguard-go ``timers.go``) are per-peer deadlines:

- retransmit_handshake: REKEY_TIMEOUT + jitter after an initiation; gives up after
  MAX_TIMER_HANDSHAKES retries (REKEY_ATTEMPT_TIME) and drops the staged packets.
- send_keepalive: KEEPALIVE_TIMEOUT after data arrived that we did not answer (passive).
- new_handshake: KEEPALIVE_TIMEOUT + REKEY_TIMEOUT after we sent data that got no reply.
- zero_key_material: 3 × REJECT_AFTER_TIME after the last session was derived.
- persistent_keepalive: the configured interval after any authenticated packet.

Rekeying: the initiator of the current session starts a new handshake when sending on a
keypair older than REKEY_AFTER_TIME or past REKEY_AFTER_MESSAGES, or once when receiving
on one older than REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT.  Keypairs are
unusable after REJECT_AFTER_TIME or REJECT_AFTER_MESSAGES.

``now`` is also the wall clock for TAI64N timestamps, offset by ``wall_clock_offset``; pass
``time.time() - time.monotonic()`` there if ``now`` is monotonic.  Timestamps must grow
across restarts or peers drop our initiations as replays.
"""

import os
import random
import struct
from collections import Counter, deque

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from . import keys as _keys
from . import messages, noise
from .constants import (
    HANDSHAKE_INITIATION_RATE, KEEPALIVE_TIMEOUT, MAX_FRAME_SIZE, MAX_STAGED_PACKETS,
    MAX_TIMER_HANDSHAKES, PADDING_MULTIPLE, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX, TIMESTAMP_SIZE,
    UNDER_LOAD_AFTER, UNDER_LOAD_HANDSHAKES, UNDER_LOAD_WINDOW, ZERO_KEY_MATERIAL_AFTER,
)
from .cookie import CookieChecker, CookieGenerator
from .events import (
    Deliver, Drop, EndpointChanged, HandshakeComplete, PeerConfig, SessionExpired, Transmit,
)
from .ratelimit import RateLimiter
from .replay import ReplayWindow, StrictCounter

__all__ = ["WireGuardCore", "PeerConfig"]

_NONCE_PREFIX = b"\x00\x00\x00\x00"
_COUNTER = struct.Struct("<Q")
_U16 = struct.Struct("!H")
_IPV6_HEADER_SIZE = 40
_IPV4_HEADER_SIZE = 20

# Fire order within one tick; a peer's handlers may set other timers of the same peer.
_TIMERS = ("retransmit_handshake", "send_keepalive", "new_handshake", "zero_key_material",
           "persistent_keepalive")


def _default_address_bytes(source):
    return repr(source).encode()


class _Keypair:
    __slots__ = ("peer", "local_index", "remote_index", "is_initiator", "created",
                 "send_counter", "replay", "_send", "_receive")

    def __init__(self, peer, session_keys, created, stream):
        self.peer = peer
        self.local_index = session_keys.local_index
        self.remote_index = session_keys.remote_index
        self.is_initiator = session_keys.is_initiator
        self.created = created
        self.send_counter = 0
        self.replay = StrictCounter() if stream else ReplayWindow()
        self._send = ChaCha20Poly1305(session_keys.send_key)
        self._receive = ChaCha20Poly1305(session_keys.receive_key)

    def usable_for_sending(self, now):
        return self.send_counter < REJECT_AFTER_MESSAGES and now - self.created < REJECT_AFTER_TIME

    def seal(self, frame):
        counter = self.send_counter
        self.send_counter += 1
        padded = frame + bytes(-len(frame) % PADDING_MULTIPLE)
        return (messages.pack_transport_header(self.remote_index, counter)
                + self._send.encrypt(_NONCE_PREFIX + _COUNTER.pack(counter), padded, None))

    def open(self, counter, ciphertext):
        return self._receive.decrypt(_NONCE_PREFIX + _COUNTER.pack(counter), ciphertext, None)


class _Peer:
    def __init__(self, config, peer_id):
        self.config = config
        self.peer_id = peer_id
        self.endpoint = config.endpoint
        self.cookies = CookieGenerator(config.public_key)
        self.handshake = None  # our pending noise.InitiatorHandshake
        self.last_timestamp = bytes(TIMESTAMP_SIZE)
        self.last_initiation_consumed = None
        self.last_sent_handshake = None
        self.last_handshake = None  # when a session last completed, for status displays
        self.handshake_attempts = 0
        self.sent_last_minute_handshake = False
        self.need_another_keepalive = False
        self.current = self.previous = self.next = None
        self.staged = deque()
        self.timers = dict.fromkeys(_TIMERS)

    def keypairs(self):
        return [kp for kp in (self.current, self.previous, self.next) if kp is not None]


class WireGuardCore:
    """One WireGuard interface: a private key and its peers.

    ``rng(n)`` supplies random bytes (indices, ephemerals, cookie secrets); ``jitter`` is a
    ``random.Random`` for timer jitter.  ``address_bytes(source)`` gives the bytes a cookie
    is bound to; ``rate_limit_key(source)`` the key initiations are rate-limited by (pass a
    function returning the IP alone to limit per host, as wireguard-go does).
    ``trim_ip_padding`` cuts received plaintext to its IPv4/IPv6 length and drops non-IP
    payloads, as a layer-3 WireGuard must; turn it off to carry other frames.
    ``is_stream(source)`` tells whether a source is a stream transport: a session whose
    handshake arrived over one checks strictly increasing counters instead of a window.
    """

    def __init__(self, private_key, peers=(), rng=os.urandom, jitter=None,
                 wall_clock_offset=0.0, address_bytes=_default_address_bytes,
                 rate_limit_key=None, under_load_handshakes=UNDER_LOAD_HANDSHAKES,
                 trim_ip_padding=True, is_stream=None):
        self._rng = rng
        self._jitter = jitter if jitter is not None else random.Random()
        self._wall_clock_offset = wall_clock_offset
        self._address_bytes = address_bytes
        self._rate_limit_key = rate_limit_key or (lambda source: source)
        self._under_load_handshakes = under_load_handshakes
        self._trim_ip_padding = trim_ip_padding
        # A session made over a stream (TCP) must see strictly increasing counters there.
        self._is_stream = is_stream or (lambda source: False)
        self._rate_limiter = RateLimiter()
        self._peers = {}  # peer_id -> _Peer
        self._by_key = {}  # public key -> _Peer
        self._indices = {}  # local index -> InitiatorHandshake or _Keypair
        self._load_window_start = None
        self._load_count = 0
        self._under_load_until = None
        self.drops = Counter()
        self.set_private_key(private_key)   # None: handshakes wait for a key (tunrelay-wg before wg setconf)
        for config in peers:
            self.add_peer(config)

    # --- peers ----------------------------------------------------------------------

    def add_peer(self, config):
        if len(config.public_key) != 32 or len(config.preshared_key) != 32:
            raise _keys.InvalidKey("peer public and preshared keys are 32 bytes")
        if config.public_key == self.public_key:
            raise ValueError("a peer cannot have the interface's own public key")
        if config.public_key in self._by_key:
            raise ValueError("duplicate peer public key")
        if _keys.is_low_order(config.public_key):
            raise _keys.InvalidKey("peer public key has low order")
        peer_id = config.peer_id if config.peer_id is not None else _keys.encode_key(config.public_key)
        if peer_id in self._peers:
            raise ValueError("duplicate peer id %r" % (peer_id,))
        peer = _Peer(config, peer_id)
        self._peers[peer_id] = peer
        self._by_key[config.public_key] = peer
        return peer_id

    def set_private_key(self, private_key):
        """A new interface key (None: none yet; wg's ``private_key``). As wireguard-go's
        SetPrivateKey: what was made with the old key is void, so every peer's sessions and
        pending handshake go; the next frame handshakes with the new key. Peers keep their
        endpoints and timers; without a key no handshake can start or be answered."""
        if private_key is not None and len(private_key) != 32:
            raise _keys.InvalidKey("a private key is 32 bytes")
        self._private = private_key
        self.public_key = _keys.public_key(private_key) if private_key is not None else None
        self._cookie_checker = CookieChecker(self.public_key, self._rng) if private_key is not None else None
        for peer in self._peers.values():
            self.forget_sessions(peer.peer_id)

    def remove_peer(self, peer_id):
        peer = self._peers.pop(peer_id)
        del self._by_key[peer.config.public_key]
        self._wipe(peer)

    def forget_sessions(self, peer_id):
        """Drop the peer's keys and pending handshake: the next frame starts a new handshake.

        For a peer declared dead (it restarted, or moved): waiting for the rekey timers to
        notice would cost REKEY_TIMEOUT + KEEPALIVE_TIMEOUT; a fresh handshake costs one RTT.
        """
        peer = self._peers[peer_id]
        self._wipe(peer)
        peer.timers.update(dict.fromkeys(("retransmit_handshake", "send_keepalive", "new_handshake")))
        peer.handshake_attempts = 0
        peer.last_sent_handshake = None  # the REKEY_TIMEOUT spacing guards a live session, not this

    def set_endpoint(self, peer_id, destination):
        """Where to send to ``peer_id`` from now on (a connection we made, a resolved address)."""
        self._peers[peer_id].endpoint = destination

    def peer_ids(self):
        return list(self._peers)

    def peer_status(self, peer_id):
        """A snapshot for status displays: endpoint, last handshake time, session state."""
        peer = self._peers[peer_id]
        return {"endpoint": peer.endpoint, "last_handshake": peer.last_handshake,
                "has_session": peer.current is not None, "staged": len(peer.staged)}

    # --- entry points ---------------------------------------------------------------

    def datagram_received(self, data, source, now):
        """Handle one received message (a UDP datagram or one stream frame)."""
        events = []
        peer_id, frame = self.receive(data, source, now, events)
        if frame is not None:
            events.append(Deliver(peer_id, frame))
        return events

    def receive(self, data, source, now, events):
        """``datagram_received`` for the data path: the authenticated frame, if any, comes back
        as ``(peer_id, frame)`` instead of as a Deliver event (which would come last), so a
        packet costs no event object; everything else is appended to ``events``."""
        try:
            message = messages.parse(data)
        except messages.MalformedMessage as exc:
            self._drop(events, exc.reason, None, source)
            return None, None
        if type(message) is messages.Transport:
            return self._receive_transport(message, source, now, events)
        if isinstance(message, messages.CookieReply):
            self._receive_cookie_reply(message, source, now, events)
        else:
            self._receive_handshake(bytes(data), message, source, now, events)
        return None, None

    def send_frame(self, peer_id, frame, now):
        """Encrypt ``frame`` for a peer, starting a handshake and queueing it if needed."""
        events = []
        peer = self._peers.get(peer_id)
        if peer is None:
            return self._drop(events, "unknown_peer", peer_id, None)
        if len(frame) > MAX_FRAME_SIZE:
            return self._drop(events, "oversize", peer_id, None)
        if not frame:
            return self._drop(events, "empty_frame", peer_id, None)
        self._stage(peer, bytes(frame), events)
        self._send_staged(peer, now, events)
        return events

    def send_keepalive(self, peer_id, now):
        """Send an empty message now, handshaking first if there is no session."""
        events = []
        self._send_keepalive(self._peers[peer_id], now, events)
        return events

    def tick(self, now):
        """Fire every timer whose deadline is at or before ``now``."""
        events = []
        for peer in list(self._peers.values()):
            for name in _TIMERS:
                deadline = peer.timers[name]
                if deadline is not None and deadline <= now:
                    peer.timers[name] = None
                    getattr(self, "_expired_" + name)(peer, now, events)
        return events

    def next_deadline(self):
        deadlines = [d for peer in self._peers.values() for d in peer.timers.values()
                     if d is not None]
        return min(deadlines) if deadlines else None

    # --- receiving ------------------------------------------------------------------

    def _drop(self, events, reason, peer_id, source):
        self.drops[reason] += 1
        events.append(Drop(reason, peer_id, source))
        return events

    def _under_load(self, now):
        if self._load_window_start is None or now - self._load_window_start >= UNDER_LOAD_WINDOW:
            self._load_window_start = now
            self._load_count = 0
        self._load_count += 1
        if self._load_count > self._under_load_handshakes:
            self._under_load_until = now + UNDER_LOAD_AFTER
        return self._under_load_until is not None and now < self._under_load_until

    def _receive_handshake(self, data, message, source, now, events):
        if self._private is None:
            self._drop(events, "no_private_key", None, source)
            return
        if not self._cookie_checker.check_mac1(data):
            self._drop(events, "bad_mac1", None, source)
            return
        if self._under_load(now):
            if not self._cookie_checker.check_mac2(data, self._address_bytes(source), now):
                reply = self._cookie_checker.create_reply(
                    data, message.sender, self._address_bytes(source), now)
                events.append(Transmit(None, source, reply))
                self._drop(events, "cookie_required", None, source)
                return
            if not self._rate_limiter.allow(self._rate_limit_key(source), now):
                self._drop(events, "rate_limited", None, source)
                return
        try:
            if isinstance(message, messages.Initiation):
                self._receive_initiation(message, source, now, events)
            else:
                self._receive_response(message, source, now, events)
        except noise.HandshakeError as exc:
            self._drop(events, exc.reason, None, source)

    def _receive_initiation(self, message, source, now, events):
        consumed = noise.consume_initiation(self._private, message)
        peer = self._by_key.get(consumed.remote_public)
        if peer is None:
            self._drop(events, "unknown_peer", None, source)
            return
        # TAI64N is big-endian, so byte order is time order.
        if consumed.timestamp <= peer.last_timestamp:
            self._drop(events, "stale_timestamp", peer.peer_id, source)
            return
        if (peer.last_initiation_consumed is not None
                and now - peer.last_initiation_consumed <= HANDSHAKE_INITIATION_RATE):
            self._drop(events, "initiation_flood", peer.peer_id, source)
            return
        peer.last_timestamp = consumed.timestamp
        peer.last_initiation_consumed = now
        # Their initiation supersedes ours, as in wireguard-go (one handshake per peer).
        self._forget_handshake(peer)
        self._authenticated_from(peer, source, now, events)
        local_index = self._new_index()
        response, session_keys = consumed.create_response(
            peer.config.preshared_key, local_index, rng=self._rng)
        data = peer.cookies.stamp(response.pack(), now)
        keypair = _Keypair(peer, session_keys, now, peer.config.stream or self._is_stream(source))
        self._indices[local_index] = keypair
        self._begin_session(peer, keypair, now)
        # A response counts as a sent handshake: no initiation of ours for REKEY_TIMEOUT.
        peer.last_sent_handshake = now
        self._traversal(peer, now)
        peer.timers["send_keepalive"] = None
        events.append(Transmit(peer.peer_id, peer.endpoint, data))

    def _receive_response(self, message, source, now, events):
        pending = self._indices.get(message.receiver)
        if not isinstance(pending, noise.InitiatorHandshake):
            self._drop(events, "unknown_index", None, source)
            return
        session_keys = pending.consume_response(message)
        peer = self._by_key[pending.remote_public]
        self._forget_handshake(peer)
        keypair = _Keypair(peer, session_keys, now, peer.config.stream or self._is_stream(source))
        self._indices[keypair.local_index] = keypair
        self._authenticated_from(peer, source, now, events)
        self._begin_session(peer, keypair, now)
        self._handshake_complete(peer, now, events)
        # Confirm the session to the responder at once: staged data, else a keepalive.
        self._send_keepalive(peer, now, events)

    def _receive_cookie_reply(self, message, source, now, events):
        entry = self._indices.get(message.receiver)
        if entry is None:
            self._drop(events, "unknown_index", None, source)
            return
        peer = self._by_key[entry.remote_public] if isinstance(
            entry, noise.InitiatorHandshake) else entry.peer
        if not peer.cookies.consume_reply(message, now):
            self._drop(events, "bad_cookie_reply", peer.peer_id, source)

    def _receive_transport(self, message, source, now, events):
        keypair = self._indices.get(message.receiver)
        if not isinstance(keypair, _Keypair):
            self._drop(events, "unknown_index", None, source)
            return None, None
        peer = keypair.peer
        if now - keypair.created >= REJECT_AFTER_TIME:
            self._drop(events, "expired_keypair", peer.peer_id, source)
            return None, None
        try:
            plaintext = keypair.open(message.counter, message.encrypted_packet)
        except InvalidTag:
            self._drop(events, "decrypt_failed", peer.peer_id, source)
            return None, None
        if not keypair.replay.accept(message.counter):
            self._drop(events, "replay", peer.peer_id, source)
            return None, None
        if keypair is peer.next:
            self._forget_keypair(peer.previous)
            peer.previous, peer.current, peer.next = peer.current, keypair, None
            self._handshake_complete(peer, now, events)
            self._send_staged(peer, now, events)
        self._keep_key_fresh_receiving(peer, now, events)
        self._authenticated_from(peer, source, now, events)
        if not plaintext:
            return None, None  # keepalive
        if peer.timers["send_keepalive"] is None:
            peer.timers["send_keepalive"] = now + KEEPALIVE_TIMEOUT
        else:
            peer.need_another_keepalive = True
        if self._trim_ip_padding:
            plaintext = _trim_to_ip_length(plaintext)
            if plaintext is None:
                self._drop(events, "bad_ip_packet", peer.peer_id, source)
                return None, None
        return peer.peer_id, plaintext

    def _authenticated_from(self, peer, source, now, events):
        """Roaming and the timers every authenticated packet touches."""
        if source != peer.endpoint:
            peer.endpoint = source
            events.append(EndpointChanged(peer.peer_id, source))
        self._traversal(peer, now)
        peer.timers["new_handshake"] = None

    # --- sessions ---------------------------------------------------------------------

    def _new_index(self):
        while True:
            index = int.from_bytes(self._rng(4), "little")
            if index not in self._indices:
                return index

    def _forget_handshake(self, peer):
        if peer.handshake is not None:
            self._indices.pop(peer.handshake.local_index, None)
            peer.handshake = None

    def _forget_keypair(self, keypair):
        if keypair is not None:
            self._indices.pop(keypair.local_index, None)

    def _begin_session(self, peer, keypair, now):
        # wireguard-go's BeginSymmetricSession rotation.
        if keypair.is_initiator:
            if peer.next is not None:
                self._forget_keypair(peer.previous)
                self._forget_keypair(peer.current)
                peer.previous, peer.next = peer.next, None
            else:
                self._forget_keypair(peer.previous)
                peer.previous = peer.current
            peer.current = keypair
        else:
            self._forget_keypair(peer.next)
            self._forget_keypair(peer.previous)
            peer.next, peer.previous = keypair, None
        peer.timers["zero_key_material"] = now + ZERO_KEY_MATERIAL_AFTER

    def _handshake_complete(self, peer, now, events):
        peer.timers["retransmit_handshake"] = None
        peer.handshake_attempts = 0
        peer.sent_last_minute_handshake = False
        peer.last_handshake = now
        events.append(HandshakeComplete(peer.peer_id))

    def _wipe(self, peer):
        had_keys = bool(peer.keypairs())
        for keypair in peer.keypairs():
            self._forget_keypair(keypair)
        peer.current = peer.previous = peer.next = None
        self._forget_handshake(peer)
        peer.staged.clear()
        return had_keys

    # --- sending ----------------------------------------------------------------------

    def _rekey_jitter(self):
        return self._jitter.uniform(0.0, REKEY_TIMEOUT_JITTER_MAX)

    def _traversal(self, peer, now):
        if peer.config.persistent_keepalive > 0:
            peer.timers["persistent_keepalive"] = now + peer.config.persistent_keepalive

    def _stage(self, peer, frame, events):
        if len(peer.staged) >= MAX_STAGED_PACKETS:
            peer.staged.popleft()
            self._drop(events, "staged_overflow", peer.peer_id, None)
        peer.staged.append(frame)

    def _send_keepalive(self, peer, now, events):
        if not peer.staged:
            peer.staged.append(b"")
        self._send_staged(peer, now, events)

    def _send_staged(self, peer, now, events):
        if not peer.staged:
            return
        keypair = peer.current
        if keypair is None or not keypair.usable_for_sending(now):
            self._send_initiation(peer, now, events, retry=False)
            return
        sent_data = False
        while peer.staged and keypair.send_counter < REJECT_AFTER_MESSAGES:
            frame = peer.staged.popleft()
            sent_data = sent_data or bool(frame)
            events.append(Transmit(peer.peer_id, peer.endpoint, keypair.seal(frame)))
        self._traversal(peer, now)
        peer.timers["send_keepalive"] = None
        if sent_data and peer.timers["new_handshake"] is None:
            peer.timers["new_handshake"] = (now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT
                                            + self._rekey_jitter())
        if keypair.send_counter > REKEY_AFTER_MESSAGES or (
                keypair.is_initiator and now - keypair.created >= REKEY_AFTER_TIME):
            self._send_initiation(peer, now, events, retry=False)
        if peer.staged:  # the counter ran out part-way: the rest waits for a new session
            self._send_initiation(peer, now, events, retry=False)

    def _keep_key_fresh_receiving(self, peer, now, events):
        keypair = peer.current
        if (not peer.sent_last_minute_handshake and keypair is not None and keypair.is_initiator
                and now - keypair.created >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT):
            peer.sent_last_minute_handshake = True
            self._send_initiation(peer, now, events, retry=False)

    def _send_initiation(self, peer, now, events, retry):
        if not retry:
            peer.handshake_attempts = 0
        if peer.last_sent_handshake is not None and now - peer.last_sent_handshake < REKEY_TIMEOUT:
            return
        if peer.endpoint is None:
            self._drop(events, "no_endpoint", peer.peer_id, None)
            return
        if self._private is None:
            self._drop(events, "no_private_key", peer.peer_id, None)
            return
        peer.last_sent_handshake = now
        self._forget_handshake(peer)
        local_index = self._new_index()
        timestamp = noise.tai64n(now + self._wall_clock_offset)
        handshake, message = noise.create_initiation(
            self._private, peer.config.public_key, peer.config.preshared_key, local_index,
            timestamp, rng=self._rng)
        peer.handshake = handshake
        self._indices[local_index] = handshake
        events.append(Transmit(peer.peer_id, peer.endpoint, peer.cookies.stamp(message.pack(), now)))
        self._traversal(peer, now)
        peer.timers["send_keepalive"] = None
        peer.timers["retransmit_handshake"] = now + REKEY_TIMEOUT + self._rekey_jitter()

    # --- timer expiry -----------------------------------------------------------------

    def _expired_retransmit_handshake(self, peer, now, events):
        if peer.handshake_attempts > MAX_TIMER_HANDSHAKES:
            peer.timers["send_keepalive"] = None
            for _ in range(len(peer.staged)):
                self._drop(events, "handshake_timeout", peer.peer_id, None)
            peer.staged.clear()
            if peer.timers["zero_key_material"] is None:
                peer.timers["zero_key_material"] = now + ZERO_KEY_MATERIAL_AFTER
            return
        peer.handshake_attempts += 1
        self._send_initiation(peer, now, events, retry=True)

    def _expired_send_keepalive(self, peer, now, events):
        self._send_keepalive(peer, now, events)
        if peer.need_another_keepalive:
            peer.need_another_keepalive = False
            peer.timers["send_keepalive"] = now + KEEPALIVE_TIMEOUT

    def _expired_new_handshake(self, peer, now, events):
        self._send_initiation(peer, now, events, retry=False)

    def _expired_zero_key_material(self, peer, now, events):
        if self._wipe(peer):
            events.append(SessionExpired(peer.peer_id))

    def _expired_persistent_keepalive(self, peer, now, events):
        if peer.config.persistent_keepalive > 0:
            self._send_keepalive(peer, now, events)


def _trim_to_ip_length(packet):
    """The IP packet without WireGuard's padding, or None if it is not a sane IP packet."""
    version = packet[0] >> 4
    if version == 4 and len(packet) >= _IPV4_HEADER_SIZE:
        length = _U16.unpack_from(packet, 2)[0]
    elif version == 6 and len(packet) >= _IPV6_HEADER_SIZE:
        length = _IPV6_HEADER_SIZE + _U16.unpack_from(packet, 4)[0]
    else:
        return None
    if length > len(packet):
        return None
    return packet[:length]
