"""The WireGuard device as a pure state machine: bytes and time in, events out.

This ties ``noise`` (handshake), ``cookie`` (mac1/mac2), ``ratelimit``, ``replay``,
``keypair`` and ``messages`` together the way the whitepaper §5-§6 and wireguard-go's
``device`` package do. It never reads a clock, opens a socket or sleeps: every entry point
takes ``now`` (seconds) and returns a list of events; ``next_deadline()`` says when to call
``tick`` next.

Two ways in
-----------
- The control plane: ``datagram_received`` (handshake and cookie messages; transport
  messages too, for callers without a data path of their own), ``send_frame`` (staging a
  frame until a session exists), ``send_keepalive``, ``tick``. Each returns its events.
- The data plane (``tunrelay.datapath``), which seals and opens transport messages itself
  with the peer's ``Keypair`` and only tells the core what happened: ``authenticated``
  after messages decrypted and passed the keypair's replay window (everything else an
  authenticated packet does), ``sent`` after it sealed data for a peer. These return nothing per packet: the
  rare consequences (a key rotation, roaming, a rekey) are queued and collected with
  ``take_events``, and a new deadline earlier than any before is reported by
  ``take_deadline_hint`` so the caller can wake up in time without asking for
  ``next_deadline`` (which walks every peer) after every batch.

Receive path for transport data, in the kernel's order: size check (``messages.parse``) →
index lookup → age of the keypair → decrypt → replay window → roaming/timers → the frame.
The caller then checks the inner source address against the peer's allowed IPs.

Keypairs rotate as in wireguard-go (``peer.PeerState``): an initiator's new keypair becomes
*current* at once; a responder's waits in *next* until the first packet arrives under it
(the key confirmation the Noise IK pattern cannot give by itself), then becomes current;
the keypair it replaced stays as *previous*, so packets in flight across a rekey decrypt.

Timers (whitepaper §6; wireguard-go ``timers.go``) are per-peer timestamps that ``tick``
compares with ``now``; packets only store times, they schedule nothing:

- retransmit_at: REKEY_TIMEOUT + jitter after an initiation; gives up after
  MAX_TIMER_HANDSHAKES retries (REKEY_ATTEMPT_TIME) and drops the staged packets.
- keepalive_at: KEEPALIVE_TIMEOUT after data arrived that we did not answer (passive).
- new_handshake_at: KEEPALIVE_TIMEOUT + REKEY_TIMEOUT after we sent data that got no reply.
- zero_keys_at: 3 × REJECT_AFTER_TIME after the last session was derived.
- last_traversal + the persistent keepalive interval, after any authenticated packet.

Rekeying: the initiator of the current session starts a new handshake when sending on a
keypair older than REKEY_AFTER_TIME or past REKEY_AFTER_MESSAGES, or once when receiving
on one older than REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT. Keypairs are
unusable after REJECT_AFTER_TIME or REJECT_AFTER_MESSAGES.

``now`` is also the wall clock for TAI64N timestamps, offset by ``wall_clock_offset``; pass
``time.time() - time.monotonic()`` there if ``now`` is monotonic. Timestamps must grow
across restarts or peers drop our initiations as replays.
"""

import os
import random
from collections import Counter

from cryptography.exceptions import InvalidTag

from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ip import route_key

from . import keys as _keys
from . import messages, noise, primitives
from .constants import (
    HANDSHAKE_INITIATION_RATE, KEEPALIVE_TIMEOUT, MAX_PLAINTEXT_SIZE, MAX_STAGED_PACKETS,
    MAX_TIMER_HANDSHAKES, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX, UNDER_LOAD_AFTER,
    UNDER_LOAD_HANDSHAKES, UNDER_LOAD_WINDOW, ZERO_KEY_MATERIAL_AFTER,
)
from .cookie import CookieChecker
from .events import (
    Deliver, Drop, EndpointChanged, HandshakeComplete, HandshakeInitiated, PeerConfig, SessionExpired,
    Transmit,
)
from .keypair import Keypair
from .peer import PeerState
from .ratelimit import RateLimiter

__all__ = ["WireGuardCore", "PeerConfig"]

_LAST_MINUTE = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT


def _default_address_bytes(source):
    return repr(source).encode()


class WireGuardCore:
    """One WireGuard interface: a private key and its peers.

    ``rng(n)`` supplies random bytes (indices, ephemerals, cookie secrets); ``jitter`` is a
    ``random.Random`` for timer jitter.  ``address_bytes(source)`` gives the bytes a cookie
    is bound to; ``rate_limit_key(source)`` the key initiations are rate-limited by (pass a
    function returning the IP alone to limit per host, as wireguard-go does).
    ``trim_ip_padding`` cuts received plaintext to its IPv4/IPv6 length and drops non-IP
    payloads, as a layer-3 WireGuard must; turn it off to carry other frames.
    ``padding_limit`` caps WireGuard's padding to 16 bytes (pass the device MTU, as the
    kernel driver does; 0 turns padding off, for a layer-2 carrier whose frames cannot be
    trimmed again). ``is_stream(source)`` tells whether a source is a stream
    transport: a session whose handshake arrived over one checks strictly increasing
    counters instead of a window.
    """

    def __init__(self, private_key, peers=(), rng=os.urandom, jitter=None,
                 wall_clock_offset=0.0, address_bytes=_default_address_bytes,
                 rate_limit_key=None, under_load_handshakes=UNDER_LOAD_HANDSHAKES,
                 trim_ip_padding=True, padding_limit=None, is_stream=None):
        self._rng = rng
        self._jitter = jitter if jitter is not None else random.Random()
        self._wall_clock_offset = wall_clock_offset
        self._address_bytes = address_bytes
        self._rate_limit_key = rate_limit_key or (lambda source: source)
        self._under_load_handshakes = under_load_handshakes
        self._trim_ip_padding = trim_ip_padding
        self._padding_limit = padding_limit
        self._is_stream = is_stream or (lambda source: False)
        self._rate_limiter = RateLimiter()
        self._peers = {}  # peer_id -> PeerState
        self._by_key = {}  # public key -> PeerState
        # local index -> InitiatorHandshake or Keypair; the data path reads it directly.
        self.indices = {}
        self._load_window_start = None
        self._load_count = 0
        self._under_load_until = None
        self._events = []
        self._deadline_hint = None
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
        peer = PeerState(config, peer_id)
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
        if getattr(self, "_private", None) not in (None, private_key):
            primitives.forget_static_key(self._private)
        self._private = private_key
        self.public_key = _keys.public_key(private_key) if private_key is not None else None
        self._cookie_checker = CookieChecker(self.public_key, self._rng) if private_key is not None else None
        for peer in self._peers.values():
            self.forget_sessions(peer.peer_id)

    def remove_peer(self, peer_id):
        peer = self._peers.pop(peer_id)
        del self._by_key[peer.config.public_key]
        self._wipe(peer)

    def peer_handle(self, peer_id):
        """The peer's state object: the data path reads ``.current`` (the keypair to seal with)."""
        return self._peers[peer_id]

    def forget_sessions(self, peer_id):
        """Drop the peer's keys and pending handshake: the next frame starts a new handshake.

        For a peer declared dead (it restarted, or moved): waiting for the rekey timers to
        notice would cost REKEY_TIMEOUT + KEEPALIVE_TIMEOUT; a fresh handshake costs one RTT.
        """
        peer = self._peers[peer_id]
        self._wipe(peer)
        peer.retransmit_at = peer.keepalive_at = peer.new_handshake_at = None
        peer.handshake_attempts = 0
        peer.last_sent_handshake = None  # the REKEY_TIMEOUT spacing guards a live session, not this

    def set_endpoint(self, peer_id, destination):
        """Where to send to ``peer_id`` from now on (a connection we made, a resolved address)."""
        self._peers[peer_id].endpoint = destination

    def peer_ids(self):
        return list(self._peers)

    def peer_status(self, peer_id):
        """A snapshot for status displays: endpoint, last handshake time, session state, and
        the completed handshakes and rekeys so far (``peer.PeerState`` says which count)."""
        peer = self._peers[peer_id]
        return {"endpoint": peer.endpoint, "last_handshake": peer.last_handshake,
                "has_session": peer.current is not None, "staged": len(peer.staged),
                "handshakes": peer.handshakes, "rekeys": peer.rekeys}

    # --- control-plane entry points ---------------------------------------------------

    def datagram_received(self, data, source, now):
        """Handle one received message (a UDP datagram or one stream frame)."""
        try:
            message = messages.parse(data)
        except messages.MalformedMessage as exc:
            self._drop(exc.reason, None, source)
            return self.take_events()
        if type(message) is messages.Transport:
            peer_id, frame = self._receive_transport(message, data, source, now)
            if frame is not None:
                self._events.append(Deliver(peer_id, frame))
        elif isinstance(message, messages.CookieReply):
            self._receive_cookie_reply(message, source, now)
        else:
            self._receive_handshake(bytes(data), message, source, now)
        return self.take_events()

    def send_frame(self, peer_id, frame, now):
        """Encrypt ``frame`` for a peer, starting a handshake and queueing it if needed."""
        peer = self._peers.get(peer_id)
        if peer is None:
            self._drop("unknown_peer", peer_id, None)
        elif len(frame) > MAX_PLAINTEXT_SIZE:
            self._drop("oversize", peer_id, None)
        elif not frame:
            self._drop("empty_frame", peer_id, None)
        else:
            self._stage(peer, bytes(frame))
            self._send_staged(peer, now)
        return self.take_events()

    def send_keepalive(self, peer_id, now):
        """Send an empty message now, handshaking first if there is no session."""
        self._send_keepalive(self._peers[peer_id], now)
        return self.take_events()

    def send_probe(self, peer_id, destination, now):
        """One initiation to ``destination`` alone: the peer's endpoint, session and timers stay
        as they are, so traffic keeps to the path that works while another one is tried (an
        endpoint list's preferred entry, tunrelay.endpoint_choice). A response authenticates
        the peer from ``destination`` and moves the endpoint there, as any roaming does (§2.1)."""
        peer = self._peers[peer_id]
        if self._private is None:
            self._drop("no_private_key", peer_id, None)
        else:
            self._events.append(Transmit(peer_id, destination, self._new_initiation(peer, now)))
        return self.take_events()

    def tick(self, now):
        """Fire every timer whose deadline is at or before ``now``."""
        for peer in list(self._peers.values()):
            if peer.retransmit_at is not None and peer.retransmit_at <= now:
                peer.retransmit_at = None
                self._expired_retransmit_handshake(peer, now)
            if peer.keepalive_at is not None and peer.keepalive_at <= now:
                peer.keepalive_at = None
                self._expired_send_keepalive(peer, now)
            if peer.new_handshake_at is not None and peer.new_handshake_at <= now:
                peer.new_handshake_at = None
                self._send_initiation(peer, now, retry=False)
            if peer.zero_keys_at is not None and peer.zero_keys_at <= now:
                peer.zero_keys_at = None
                if self._wipe(peer):
                    self._events.append(SessionExpired(peer.peer_id))
            persistent_at = peer.persistent_at()
            if persistent_at is not None and persistent_at <= now:
                peer.last_traversal = now   # handled, even if the keepalive cannot leave
                self._send_keepalive(peer, now)
        self._deadline_hint = None
        return self.take_events()

    def next_deadline(self):
        best = None
        for peer in self._peers.values():
            for deadline in (peer.retransmit_at, peer.keepalive_at, peer.new_handshake_at, peer.zero_keys_at,
                             peer.persistent_at()):
                if deadline is not None and (best is None or deadline < best):
                    best = deadline
        return best

    # --- data-plane entry points --------------------------------------------------------

    def accepted(self, keypair, counter, source, now, has_data):
        """A transport message under ``keypair`` decrypted; False if its counter is a replay."""
        if not keypair.replay.accept(counter):
            return False
        self.authenticated(keypair, source, now, has_data)
        return True

    def authenticated(self, keypair, source, now, has_data):
        """Messages under ``keypair`` from ``source`` decrypted and passed the replay window
        (``has_data``: not only keepalives). Everything else an authenticated packet does
        happens here: key confirmation of a responder's next keypair, the receive-side
        last-minute rekey, roaming to ``source``, and the timestamps the timers read. The
        data path calls it once per run of such messages in a batch."""
        peer = keypair.peer
        if keypair is peer.next and peer.confirm(keypair, self._forget_keypair):
            self._handshake_complete(peer, now)
            self._send_staged(peer, now)
        current = peer.current
        if (current is not None and current.is_initiator and not peer.sent_last_minute_handshake
                and now - current.created >= _LAST_MINUTE):
            peer.sent_last_minute_handshake = True
            self._send_initiation(peer, now, retry=False)
        if source != peer.endpoint:
            peer.endpoint = source
            self._events.append(EndpointChanged(peer.peer_id, source))
        peer.last_traversal = now
        peer.new_handshake_at = None
        if has_data:
            if peer.keepalive_at is None:
                peer.keepalive_at = now + KEEPALIVE_TIMEOUT
                self._hint(peer.keepalive_at)
            else:
                peer.need_another_keepalive = True

    def sent(self, peer, now):
        """The data path sealed data for ``peer`` (a handle) with its current keypair."""
        peer.last_traversal = now
        peer.keepalive_at = None
        if peer.new_handshake_at is None:
            peer.new_handshake_at = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + self._rekey_jitter()
            self._hint(peer.new_handshake_at)

    def take_events(self):
        events, self._events = self._events, []
        return events

    def take_deadline_hint(self):
        """The earliest deadline the data-plane calls created since the last call, or None."""
        hint, self._deadline_hint = self._deadline_hint, None
        return hint

    def _hint(self, deadline):
        if self._deadline_hint is None or deadline < self._deadline_hint:
            self._deadline_hint = deadline

    # --- receiving ------------------------------------------------------------------

    def _drop(self, reason, peer_id, source):
        self.drops[reason] += 1
        self._events.append(Drop(reason, peer_id, source))

    def _under_load(self, now):
        if self._load_window_start is None or now - self._load_window_start >= UNDER_LOAD_WINDOW:
            self._load_window_start = now
            self._load_count = 0
        self._load_count += 1
        if self._load_count > self._under_load_handshakes:
            self._under_load_until = now + UNDER_LOAD_AFTER
        return self._under_load_until is not None and now < self._under_load_until

    def _receive_handshake(self, data, message, source, now):
        if self._private is None:
            self._drop("no_private_key", None, source)
            return
        if not self._cookie_checker.check_mac1(data):
            self._drop("bad_mac1", None, source)
            return
        if self._under_load(now):
            if not self._cookie_checker.check_mac2(data, self._address_bytes(source), now):
                reply = self._cookie_checker.create_reply(data, message.sender, self._address_bytes(source), now)
                self._events.append(Transmit(None, source, reply))
                self._drop("cookie_required", None, source)
                return
            if not self._rate_limiter.allow(self._rate_limit_key(source), now):
                self._drop("rate_limited", None, source)
                return
        try:
            if isinstance(message, messages.Initiation):
                self._receive_initiation(message, source, now)
            else:
                self._receive_response(message, source, now)
        except noise.HandshakeError as exc:
            self._drop(exc.reason, None, source)

    def _new_keypair(self, peer, session_keys, now, source):
        keypair = Keypair(peer, session_keys, now, peer.config.stream or self._is_stream(source),
                          padding_limit=self._padding_limit)
        self.indices[keypair.local_index] = keypair
        return keypair

    def _receive_initiation(self, message, source, now):
        consumed = noise.consume_initiation(self._private, message)
        peer = self._by_key.get(consumed.remote_public)
        if peer is None:
            self._drop("unknown_peer", None, source)
            return
        # TAI64N is big-endian, so byte order is time order.
        if consumed.timestamp <= peer.last_timestamp:
            self._drop("stale_timestamp", peer.peer_id, source)
            return
        if (peer.last_initiation_consumed is not None
                and now - peer.last_initiation_consumed <= HANDSHAKE_INITIATION_RATE):
            self._drop("initiation_flood", peer.peer_id, source)
            return
        peer.last_timestamp = consumed.timestamp
        peer.last_initiation_consumed = now
        # Their initiation supersedes ours, as in wireguard-go (one handshake per peer).
        self._forget_handshake(peer)
        self._authenticated_from(peer, source, now)
        response, session_keys = consumed.create_response(peer.config.preshared_key, self._new_index(),
                                                          rng=self._rng)
        data = peer.cookies.stamp(response.pack(), now)
        peer.install(self._new_keypair(peer, session_keys, now, source), self._forget_keypair)
        peer.zero_keys_at = now + ZERO_KEY_MATERIAL_AFTER
        # A response counts as a sent handshake: no initiation of ours for REKEY_TIMEOUT.
        peer.last_sent_handshake = now
        peer.keepalive_at = None
        self._events.append(Transmit(peer.peer_id, peer.endpoint, data))

    def _receive_response(self, message, source, now):
        pending = self.indices.get(message.receiver)
        if not isinstance(pending, noise.InitiatorHandshake):
            self._drop("unknown_index", None, source)
            return
        session_keys = pending.consume_response(message)
        peer = self._by_key[pending.remote_public]
        self._forget_handshake(peer)
        keypair = self._new_keypair(peer, session_keys, now, source)
        self._authenticated_from(peer, source, now)
        peer.install(keypair, self._forget_keypair)
        peer.zero_keys_at = now + ZERO_KEY_MATERIAL_AFTER
        self._handshake_complete(peer, now)
        # Confirm the session to the responder at once: staged data, else a keepalive.
        self._send_keepalive(peer, now)

    def _receive_cookie_reply(self, message, source, now):
        entry = self.indices.get(message.receiver)
        if entry is None:
            self._drop("unknown_index", None, source)
            return
        peer = self._by_key[entry.remote_public] if isinstance(entry, noise.InitiatorHandshake) else entry.peer
        if not peer.cookies.consume_reply(message, now):
            self._drop("bad_cookie_reply", peer.peer_id, source)

    def _receive_transport(self, message, data, source, now):
        keypair = self.indices.get(message.receiver)
        if not isinstance(keypair, Keypair):
            self._drop("unknown_index", None, source)
            return None, None
        peer = keypair.peer
        if now - keypair.created >= REJECT_AFTER_TIME:
            self._drop("expired_keypair", peer.peer_id, source)
            return None, None
        try:
            plaintext = keypair.open_from(data, message.counter)
        except InvalidTag:
            self._drop("decrypt_failed", peer.peer_id, source)
            return None, None
        if not self.accepted(keypair, message.counter, source, now, bool(plaintext)):
            self._drop("replay", peer.peer_id, source)
            return None, None
        if not plaintext:
            return None, None  # keepalive
        if self._trim_ip_padding:
            try:
                plaintext = route_key(plaintext)[3]
            except MalformedPacket:
                self._drop("bad_ip_packet", peer.peer_id, source)
                return None, None
        return peer.peer_id, plaintext

    def _authenticated_from(self, peer, source, now):
        """Roaming and the timers every authenticated packet touches."""
        if source != peer.endpoint:
            peer.endpoint = source
            self._events.append(EndpointChanged(peer.peer_id, source))
        peer.last_traversal = now
        peer.new_handshake_at = None

    # --- sessions ---------------------------------------------------------------------

    def _new_index(self):
        while True:
            index = int.from_bytes(self._rng(4), "little")
            if index not in self.indices:
                return index

    def _forget_handshake(self, peer):
        if peer.handshake is not None:
            self.indices.pop(peer.handshake.local_index, None)
            peer.handshake = None

    def _forget_keypair(self, keypair):
        if keypair is not None:
            self.indices.pop(keypair.local_index, None)

    def _handshake_complete(self, peer, now):
        peer.retransmit_at = None
        peer.handshake_attempts = 0
        peer.sent_last_minute_handshake = False
        peer.last_handshake = now
        self._events.append(HandshakeComplete(peer.peer_id, rekey=peer.last_was_rekey))

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

    def _stage(self, peer, frame):
        if len(peer.staged) >= MAX_STAGED_PACKETS:
            peer.staged.popleft()
            self._drop("staged_overflow", peer.peer_id, None)
        peer.staged.append(frame)

    def _send_keepalive(self, peer, now):
        if not peer.staged:
            peer.staged.append(b"")
        self._send_staged(peer, now)

    def _send_staged(self, peer, now):
        if not peer.staged:
            return
        keypair = peer.current
        if keypair is None or not keypair.usable_for_sending(now):
            self._send_initiation(peer, now, retry=False)
            return
        sent_data = False
        while peer.staged and keypair.send_counter < REJECT_AFTER_MESSAGES:
            frame = peer.staged.popleft()
            sent_data = sent_data or bool(frame)
            self._events.append(Transmit(peer.peer_id, peer.endpoint, keypair.seal_joined(frame), len(frame)))
        if sent_data:
            self.sent(peer, now)
        else:
            peer.last_traversal = now
            peer.keepalive_at = None
        if keypair.send_counter > REKEY_AFTER_MESSAGES or (
                keypair.is_initiator and now - keypair.created >= REKEY_AFTER_TIME):
            self._send_initiation(peer, now, retry=False)
        if peer.staged:  # the counter ran out part-way: the rest waits for a new session
            self._send_initiation(peer, now, retry=False)

    def _send_initiation(self, peer, now, retry):
        if not retry:
            peer.handshake_attempts = 0
        if peer.last_sent_handshake is not None and now - peer.last_sent_handshake < REKEY_TIMEOUT:
            return
        if peer.endpoint is None:
            self._drop("no_endpoint", peer.peer_id, None)
            return
        if self._private is None:
            self._drop("no_private_key", peer.peer_id, None)
            return
        peer.last_sent_handshake = now
        self._events.append(Transmit(peer.peer_id, peer.endpoint, self._new_initiation(peer, now)))
        self._events.append(HandshakeInitiated(peer.peer_id))
        peer.last_traversal = now
        peer.keepalive_at = None
        peer.retransmit_at = now + REKEY_TIMEOUT + self._rekey_jitter()

    def _new_initiation(self, peer, now):
        """A fresh initiation for ``peer``, replacing any pending handshake of ours."""
        self._forget_handshake(peer)
        local_index = self._new_index()
        timestamp = noise.tai64n(now + self._wall_clock_offset)
        handshake, message = noise.create_initiation(
            self._private, peer.config.public_key, peer.config.preshared_key, local_index,
            timestamp, rng=self._rng)
        peer.handshake = handshake
        self.indices[local_index] = handshake
        return peer.cookies.stamp(message.pack(), now)

    # --- timer expiry -----------------------------------------------------------------

    def _expired_retransmit_handshake(self, peer, now):
        if peer.handshake_attempts > MAX_TIMER_HANDSHAKES:
            peer.keepalive_at = None
            for _ in range(len(peer.staged)):
                self._drop("handshake_timeout", peer.peer_id, None)
            peer.staged.clear()
            if peer.zero_keys_at is None:
                peer.zero_keys_at = now + ZERO_KEY_MATERIAL_AFTER
            return
        peer.handshake_attempts += 1
        self._send_initiation(peer, now, retry=True)

    def _expired_send_keepalive(self, peer, now):
        self._send_keepalive(peer, now)
        if peer.need_another_keepalive:
            peer.need_another_keepalive = False
            peer.keepalive_at = now + KEEPALIVE_TIMEOUT
