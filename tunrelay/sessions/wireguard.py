"""WireGuard sessions: every message on every transport is a WireGuard message.

Theory of operation
-------------------
The pure core (``tunrelay.crypto.session.WireGuardCore``, after the WireGuard whitepaper
§5-§6) authenticates peers by static key during the Noise_IKpsk2 handshake and by receiver
index afterwards. Sources and destinations are opaque to it; here they are (link, address)
pairs, so one core serves UDP, TCP and Ethernet alike. This adapter only translates:

- ``Transmit`` -> ``link.send(address, data)``;
- ``Deliver`` -> ``relay.frame_from_peer`` (the relay then runs the allowed-IPs source
  check, the last step of the kernel's receive order);
- ``EndpointChanged`` -> the path the peer is reachable on (roaming, RFC-less but as in
  the whitepaper §2.1: the source of the last authenticated packet);
- ``HandshakeComplete`` -> a one-line state change; ``Drop`` -> a counted drop.

Timers are the core's deadlines: one reactor call at ``next_deadline()``, recomputed at
most once per reactor turn so a burst of packets costs one recomputation.

A session whose handshake came over TCP checks strictly increasing counters; UDP and
Ethernet sessions use the RFC 6479 sliding window. A TCP connection that nobody has
authenticated yet is bounded twice: at most MAX_PENDING_STREAMS at once, and each must
carry an authenticated message within HANDSHAKE_DEADLINE seconds or it is closed.
"""

import base64

from tunrelay.crypto.events import (
    Deliver, Drop, EndpointChanged, HandshakeComplete, PeerConfig, SessionExpired, Transmit,
)
from tunrelay.crypto.session import WireGuardCore
from tunrelay.logs import log_state_change
from tunrelay.twisted_io.deadline import CoreTimer

__all__ = ["WireGuardSessions", "MAX_PENDING_STREAMS", "HANDSHAKE_DEADLINE"]

MAX_PENDING_STREAMS = 64
HANDSHAKE_DEADLINE = 15.0       # three REKEY_TIMEOUTs: room for a lost initiation and a cookie round
_FRAME_REFUSALS = ("oversize", "empty_frame", "staged_overflow", "unknown_peer")


def _source_key(source):
    """Rate limits and cookies bind to the sender's host: IP for tcp/udp, MAC for ethernet."""
    address = source[1]
    return address[0] if isinstance(address, tuple) else address


def _source_bytes(source):
    return repr(source[1]).encode()


class WireGuardSessions:
    stream_prefix = 4   # encrypted TCP: 4-byte length, so 64 KiB frames fit with their overhead
    message_overhead = 16 + 15 + 16   # transport header, padding to 16, Poly1305 tag

    def __init__(self, relay, private_key, preshared_keys=None, rng=None):
        self.relay = relay
        self.clock = relay.clock
        self.preshared_keys = dict(preshared_keys or {})
        options = {"rng": rng} if rng is not None else {}
        self.core = WireGuardCore(
            # The relay trims padding itself (route_key parses the IP header anyway, also behind
            # a vnet header), so the core need not parse it a second time.
            private_key, trim_ip_padding=False, is_stream=lambda source: source[0].kind == "tcp",
            rate_limit_key=_source_key, address_bytes=_source_bytes, **options)
        self._core_configs = {}     # peer name -> PeerConfig given to the core
        self._pending = {}          # unauthenticated TCP link -> (address, DelayedCall)
        self._timer = CoreTimer(self.clock, self.core.next_deadline, self._fire)
        self._handshakes = {}       # peer name -> completed handshakes (first one is not a rekey)

    # ---- peers ------------------------------------------------------------------------

    def _core_config(self, peer):
        config = peer.config
        return PeerConfig(public_key=base64.b64decode(config.public_key),
                          preshared_key=self.preshared_keys.get(config.name, bytes(32)),
                          persistent_keepalive=float(config.keepalive or 0), peer_id=config.name)

    def peer_added(self, peer):
        core_config = self._core_config(peer)
        self.core.add_peer(core_config)
        self._core_configs[peer.name] = core_config
        self._schedule()

    def peer_removed(self, peer):
        if self._core_configs.pop(peer.name, None) is not None:
            self.core.remove_peer(peer.name)
        self._handshakes.pop(peer.name, None)

    def peer_changed(self, peer):
        # A new key or keepalive needs a fresh core peer (and so a new handshake); a change
        # of allowed_ips or endpoint alone keeps the session.
        if self._core_configs.get(peer.name) != self._core_config(peer):
            self.peer_removed(peer)
            self.peer_added(peer)

    def set_private_key(self, private_key):
        """A new interface key (the UAPI's private_key, or a reload): sessions start over."""
        self.core.set_private_key(private_key)
        self._schedule()

    # ---- paths ------------------------------------------------------------------------

    def path_known(self, peer, link, address):
        self.relay.path_opened(peer, link, address)
        self.core.set_endpoint(peer.name, (link, address))
        self._schedule()

    def stream_opened(self, link, address, peer):
        if peer is not None:
            # We dialled again: the far side may have restarted and lost our session, and
            # would drop data under the old keys until the rekey timers noticed (15 s). A
            # fresh handshake costs one round trip.
            self.core.forget_sessions(peer.name)
            self.path_known(peer, link, address)
            self._apply(self.core.send_keepalive(peer.name, self.clock.seconds()))
            return True
        if len(self._pending) >= MAX_PENDING_STREAMS:
            self.relay.drops.drop("too_many_unauthenticated", None, link.describe(address))
            return False
        self._pending[link] = (address, self.clock.callLater(HANDSHAKE_DEADLINE, self._no_handshake, link))
        return True

    def _no_handshake(self, link):
        address, _ = self._pending.pop(link)
        self.relay.drops.drop("no_handshake", None, "%s authenticated nothing in %gs" % (
            link.describe(address), HANDSHAKE_DEADLINE))
        link.close_path(address)

    def stream_closed(self, link):
        _, call = self._pending.pop(link, (None, None))
        if call is not None and call.active():
            call.cancel()

    def endpoint_moved(self, peer):
        """The peer's name now resolves elsewhere: handshake with the new address at once."""
        if peer.name in self._core_configs:
            self.core.forget_sessions(peer.name)
            self._apply(self.core.send_keepalive(peer.name, self.clock.seconds()))

    def peer_dead(self, peer):
        """Silence past dead_peer_timeout: start over with a new handshake on the next frame."""
        if peer.name in self._core_configs:
            self.core.forget_sessions(peer.name)
            self._schedule()

    def path_lost(self, peer):
        """The peer's active path closed: send over whatever path it has left."""
        if peer.name in self._core_configs:
            self.core.set_endpoint(peer.name, peer.active_path)

    # ---- data -------------------------------------------------------------------------

    def message_received(self, link, address, message):
        events = []
        peer_id, frame = self.core.receive(message, (link, address), self.clock.seconds(), events)
        self._apply(events)   # before the frame, as a Deliver event would have come last
        if frame is not None:
            self._deliver(peer_id, frame)

    def _deliver(self, peer_id, frame):
        peer = self.relay.peers.get(peer_id)
        if peer is not None:
            self.relay.alive(peer)
            self.relay.frame_from_peer(peer, frame)

    def send(self, peer, frame):
        events = self.core.send_frame(peer.name, frame, self.clock.seconds())
        for event in events:
            if type(event) is Drop and event.reason in _FRAME_REFUSALS:
                break
        else:
            self.relay.sent_to(peer, len(frame))
        self._apply(events)

    def _apply(self, events):
        relay = self.relay
        peers = relay.peers
        for event in events:
            kind = type(event)
            if kind is Transmit:
                self._transmit(event, peers.get(event.peer_id))
            elif kind is Deliver:
                self._deliver(event.peer_id, event.frame)
            elif kind is Drop:
                source = event.source
                relay.drops.drop(event.reason, peers.get(event.peer_id),
                                 source[0].describe(source[1]) if source is not None else "")
            elif kind is EndpointChanged:
                self._authenticated(peers.get(event.peer_id), *event.new_source)
            elif kind is HandshakeComplete:
                count = self._handshakes.get(event.peer_id, 0) + 1
                self._handshakes[event.peer_id] = count
                log_state_change("handshake" if count == 1 else "rekey", event.peer_id)
            elif kind is SessionExpired:
                log_state_change("peer_down", event.peer_id, reason="session expired")
        self._schedule()

    def _transmit(self, event, peer):
        if event.destination is None:
            self.relay.drops.drop("no_endpoint", peer)
            return
        if peer is not None and event.data[:1] == b"\x01":  # an initiation: a rehandshake
            self.relay.rehandshaking(peer)
        link, address = event.destination
        reason = link.send(address, event.data)
        if reason is not None:
            self.relay.drops.drop(reason, peer)

    def _authenticated(self, peer, link, address):
        """An authenticated message arrived from (link, address): that is where the peer is."""
        if peer is None:
            return
        self.stream_closed(link)  # a pending TCP connection is pending no more
        self.relay.path_opened(peer, link, address)
        self.relay.heard_from(peer, link, address)

    # ---- timers -----------------------------------------------------------------------

    def _schedule(self):
        self._timer.rearm_soon()

    def _fire(self):
        self._apply(self.core.tick(self.clock.seconds()))

    # ---- status -----------------------------------------------------------------------

    def peer_state(self, peer):
        status = self.core.peer_status(peer.name)
        if status["has_session"]:
            session = "established"
        elif status["staged"]:
            session = "handshaking"
        else:
            session = "none"
        return {"session": session, "latest_handshake": status["last_handshake"]}

    def stop(self):
        for link in list(self._pending):
            self.stream_closed(link)
        self._timer.cancel()
