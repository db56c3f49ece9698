"""WireGuard sessions: the control plane between the relay and the pure WireGuard core.

Theory of operation
-------------------
The pure core (``tunrelay.crypto.session.WireGuardCore``, after the WireGuard whitepaper
§5-§6) authenticates peers by static key during the Noise_IKpsk2 handshake and by receiver
index afterwards. Its peers are the relay's ``Peer`` objects (opaque to it) and its
sources and destinations are (link, address) pairs, so one core serves UDP, TCP and
Ethernet alike. Data messages never come here: the data path (``tunrelay.datapath``)
seals and opens them with the core's keypairs. This adapter feeds the core handshake and
cookie messages (``control_message``), frames that must wait for a session (``stage``),
paths and timers, and carries out the events the core returns:

- ``Transmit`` -> the destination link (a data message counts as sent when the link takes it);
- ``EndpointChanged`` -> the path the peer is reachable on (roaming: the source of the last
  authenticated packet, whitepaper §2.1);
- ``HandshakeInitiated`` -> the relay may look a hostname endpoint up again;
- ``HandshakeComplete`` / ``SessionExpired`` -> a one-line state change; ``Drop`` -> a counted drop.

Timers are the core's deadlines: one clock call at ``next_deadline()``, recomputed at most
once per reactor turn after control events, and moved earlier by the data path's hints.

A session whose handshake came over TCP checks strictly increasing counters; UDP and
Ethernet sessions use the RFC 6479 sliding window. A TCP connection that nobody has
authenticated yet is bounded three ways: at most MAX_PENDING_STREAMS_PER_SOURCE from one IP
address, MAX_PENDING_STREAMS in all, and each must carry an authenticated message within
HANDSHAKE_DEADLINE seconds or it is closed. A bound that is reached evicts the oldest
connection (of that address, or of the address holding the most) rather than refusing the
newest: refusing would let whoever holds the table keep a real peer that dials in out for as
long as it likes (SYN-flood defence's rule, RFC 4987 §3.4: drop the oldest, not the new).
"""

import base64

from tunrelay.constants import (
    ENCRYPTED_LENGTH_PREFIX, HANDSHAKE_DEADLINE, MAX_PENDING_STREAMS, MAX_PENDING_STREAMS_PER_SOURCE,
)
from tunrelay.crypto.constants import PADDING_MULTIPLE, TAG_SIZE, TRANSPORT_HEADER_SIZE
from tunrelay.crypto.events import (
    Deliver, Drop, EndpointChanged, HandshakeComplete, HandshakeInitiated, PeerConfig, SessionExpired, Transmit,
)
from tunrelay.crypto.session import WireGuardCore
from tunrelay.logs import log_state_change
from tunrelay.timers import CoreTimer

__all__ = ["WireGuardSessions"]


def _source_key(source):
    """Rate limits and cookies bind to the sender's host: IP for tcp/udp, MAC for ethernet."""
    address = source[1]
    return address[0] if isinstance(address, tuple) else address


def _source_bytes(source):
    return repr(source[1]).encode()


class WireGuardSessions:
    stream_prefix = ENCRYPTED_LENGTH_PREFIX
    message_overhead = TRANSPORT_HEADER_SIZE + PADDING_MULTIPLE - 1 + TAG_SIZE

    def __init__(self, relay, private_key, preshared_keys=None, rng=None):
        self.relay = relay
        self.clock = relay.clock
        self.preshared_keys = dict(preshared_keys or {})
        options = {"rng": rng} if rng is not None else {}
        interface = relay.config.interface
        self.core = WireGuardCore(
            # The data path trims padding itself (it parses the IP header anyway), and a tap
            # frame is sent unpadded, since nothing could trim it again.
            private_key, trim_ip_padding=False, padding_limit=0 if interface.mode == "tap" else interface.mtu,
            is_stream=lambda source: source[0].kind == "tcp", rate_limit_key=_source_key,
            address_bytes=_source_bytes, **options)
        self._core_configs = {}     # Peer -> PeerConfig given to the core
        self._pending = {}          # unauthenticated TCP link -> (address, DelayedCall)
        self._timer = CoreTimer(self.clock, self.core.next_deadline, self._fire)

    # ---- peers ------------------------------------------------------------------------

    def _core_config(self, peer):
        config = peer.config
        return PeerConfig(public_key=base64.b64decode(config.public_key),
                          preshared_key=self.preshared_keys.get(config.name, bytes(32)),
                          persistent_keepalive=float(config.keepalive or 0), peer_id=peer)

    def peer_added(self, peer):
        core_config = self._core_config(peer)
        self.core.add_peer(core_config)
        self._core_configs[peer] = core_config
        peer.wg = self.core.peer_handle(peer)
        self._timer.rearm_soon()

    def peer_removed(self, peer):
        if self._core_configs.pop(peer, None) is not None:
            self.core.remove_peer(peer)
        peer.wg = None

    def peer_changed(self, peer):
        # A new key or keepalive needs a fresh core peer (and so a new handshake); a change
        # of allowed_ips or endpoint alone keeps the session.
        if self._core_configs.get(peer) != self._core_config(peer):
            self.peer_removed(peer)
            self.peer_added(peer)

    def set_private_key(self, private_key):
        """A new interface key (the UAPI's private_key, or a reload): sessions start over."""
        self.core.set_private_key(private_key)
        self._timer.rearm_soon()

    # ---- paths ------------------------------------------------------------------------

    def path_known(self, peer, link, address):
        self.relay.path_opened(peer, link, address)
        self.core.set_endpoint(peer, (link, address))
        self._timer.rearm_soon()

    def stream_opened(self, link, address, peer, probe=False):
        if peer is not None and probe:
            # A preferred endpoint answers a dial: one initiation there, and the session and
            # traffic stay where they work until the peer answers it (tunrelay.endpoint_choice).
            self.relay.path_opened(peer, link, address)
            self.probe(peer, (link, address))
            return True
        if peer is not None:
            # We dialled again: the far side may have restarted and lost our session, and
            # would drop data under the old keys until the rekey timers noticed (15 s). A
            # fresh handshake costs one round trip.
            self.core.forget_sessions(peer)
            self.path_known(peer, link, address)
            self._control(self.core.send_keepalive(peer, self.clock.seconds()))
            return True
        self._make_room_for(address[0])
        self._pending[link] = (address, self.clock.callLater(HANDSHAKE_DEADLINE, self._no_handshake, link))
        return True

    def _make_room_for(self, host):
        """Evict the oldest unauthenticated connection of ``host`` if it holds its share, else
        the oldest of the host holding the most if the table is full. (``_pending`` is in
        arrival order, and at most MAX_PENDING_STREAMS long: a walk is cheap.)"""
        by_host = {}
        for pending_link, (pending_address, _) in self._pending.items():
            by_host.setdefault(pending_address[0], []).append(pending_link)
        own = by_host.get(host, ())
        if len(own) >= MAX_PENDING_STREAMS_PER_SOURCE:
            self._evict(own[0])
        elif len(self._pending) >= MAX_PENDING_STREAMS:
            self._evict(max(by_host.values(), key=len)[0])

    def _evict(self, link):
        address, call = self._pending.pop(link)
        call.cancel()
        self.relay.drops.drop_from("too_many_unauthenticated", None, link, address)
        link.close_path(address)

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
        if peer in self._core_configs:
            self.core.forget_sessions(peer)
            self._control(self.core.send_keepalive(peer, self.clock.seconds()))

    def probe(self, peer, path=None):
        """One handshake initiation to ``path``, by default where the peer's traffic goes,
        leaving its session and endpoint alone (an endpoint list's probe or solicitation)."""
        if peer in self._core_configs:
            destination = path or self.core.peer_status(peer)["endpoint"]
            if destination is not None:
                self._control(self.core.send_probe(peer, destination, self.clock.seconds()))

    def reassert(self, peer):
        """An authenticated keepalive where the peer's traffic goes: the far side roams back
        here if an unanswered probe had drawn it elsewhere."""
        if peer in self._core_configs:
            self._control(self.core.send_keepalive(peer, self.clock.seconds()))

    def peer_dead(self, peer):
        """Silence past dead_peer_timeout: start over with a new handshake on the next frame."""
        if peer in self._core_configs:
            self.core.forget_sessions(peer)
            self._timer.rearm_soon()

    def path_lost(self, peer):
        """The peer's active path closed: send over whatever path it has left."""
        if peer in self._core_configs:
            self.core.set_endpoint(peer, peer.active_path)

    # ---- from the data path -------------------------------------------------------------

    def control_message(self, link, address, message, now):
        """A handshake, cookie or malformed message from a link (inside a batch)."""
        self.apply(self.core.datagram_received(message, (link, address), now))

    def stage(self, peer, frame, now):
        """A frame for a peer without a usable keypair: the core queues it and handshakes."""
        self.apply(self.core.send_frame(peer, frame, now))

    def after_batch(self):
        """The batch's deferred core events (key rotations, roaming, rekeys) and deadline hint."""
        core = self.core
        events = core.take_events()
        if events:
            self.apply(events)
        hint = core.take_deadline_hint()
        if hint is not None:
            self._timer.ensure_by(hint)

    # ---- events -------------------------------------------------------------------------

    def _control(self, events):
        """Events produced outside a batch: apply them and send what they queued."""
        self.apply(events)
        self.relay.datapath.flush_links()

    def apply(self, events):
        relay = self.relay
        for event in events:
            kind = type(event)
            if kind is Transmit:
                self._transmit(event)
            elif kind is Drop:
                if event.source:
                    relay.drops.drop_from(event.reason, event.peer_id, *event.source)
                else:
                    relay.drops.drop(event.reason, event.peer_id)
            elif kind is EndpointChanged:
                self._authenticated(event.peer_id, *event.new_source)
            elif kind is HandshakeInitiated:
                relay.rehandshaking(event.peer_id)
            elif kind is HandshakeComplete:
                log_state_change("rekey" if event.rekey else "handshake", event.peer_id.name)
            elif kind is SessionExpired:
                log_state_change("peer_down", event.peer_id.name, reason="session expired")
            elif kind is Deliver:   # only from a transport message the core opened itself
                relay.datapath.receiver.deliver(event.peer_id, event.frame)
        self._timer.rearm_soon()

    def _transmit(self, event):
        peer = event.peer_id
        if event.destination is None:
            self.relay.drops.drop("no_endpoint", peer)
            return
        link, address = event.destination
        reason = link.send(address, event.data)
        if reason is not None:
            self.relay.drops.drop(reason, peer)
        elif event.payload and peer is not None:   # a staged frame, sealed at last
            counters = peer.counters
            counters.tx_packets += 1
            counters.tx_bytes += event.payload
            peer.last_sent = self.clock.seconds()

    def _authenticated(self, peer, link, address):
        """An authenticated message arrived from (link, address): that is where the peer is."""
        self.stream_closed(link)  # a pending TCP connection is pending no more
        self.relay.path_opened(peer, link, address)
        self.relay.heard_from(peer, link, address)

    # ---- timers -----------------------------------------------------------------------

    def _fire(self):
        self._control(self.core.tick(self.clock.seconds()))

    # ---- status -----------------------------------------------------------------------

    def peer_state(self, peer):
        status = self.core.peer_status(peer)
        if status["has_session"]:
            session = "established"
        elif status["staged"]:
            session = "handshaking"
        else:
            session = "none"
        return {"session": session, "latest_handshake": status["last_handshake"],
                "handshakes": status["handshakes"], "rekeys": status["rekeys"]}

    def stop(self):
        for link in list(self._pending):
            self.stream_closed(link)
        self._timer.cancel()
