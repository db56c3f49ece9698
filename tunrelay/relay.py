"""The relay: peers, their paths, the routing table and the switch, and liveness.

Theory of operation
-------------------
The relay has ports: the device (tun or tap), the optional responder, and one per peer. A
peer is reached over *paths*; a path is a (link, address) pair, where a link is one
transport socket or stream (a UDP socket, an AF_PACKET socket, or one TCP connection) and
the address is the remote end on that link. This module keeps that state and the tables
the data path consults for every packet:

- tun: WireGuard's cryptokey routing, the longest-prefix match of allowed IPs
  (``tunrelay.forwarding.allowed_ips``): where a packet goes, and who may have sent it;
- tap: a learning switch whose ports are the device, the responder and the peers
  (``tunrelay.forwarding.switch``);
- liveness: when each peer was last heard from, and ``dead_peer_timeout``.

Frames themselves move through ``tunrelay.datapath`` (built here as ``self.datapath``);
the control plane of handshakes and timers is ``tunrelay.sessions`` (``self.sessions``).
Nothing here touches a socket or reads a clock of its own (the clock is injected), so it
runs unchanged on the in-memory fakes of ``tunrelay.testing``.
"""

from twisted.logger import Logger

from tunrelay import status
from tunrelay.constants import MAX_CONNECTIONS_PER_PEER, MAX_UDP_BINDINGS
from tunrelay.datapath import DEVICE_PORT, RESPONDER_PORT, Datapath
from tunrelay.forwarding.allowed_ips import AllowedIPs
from tunrelay.forwarding.next_hops import NextHopRoutes
from tunrelay.forwarding.switch import LearningSwitch
from tunrelay.logs import log_state_change
from tunrelay.sessions import PlaintextSessions, WireGuardSessions
from tunrelay.stats import Counters, DropReporter

__all__ = ["Peer", "Relay"]


class Peer:
    """A configured peer: its routes, its live paths and its counters."""

    def __init__(self, config):
        self.config = config
        self.name = config.name
        self.counters = Counters()
        self.paths = []           # live (link, address) pairs, oldest first
        self.active_path = None   # where we send: the path we last heard from, else the newest
        self.groups = []          # multicast networks from allowed_ips (set by the relay)
        self.endpoint_hosts = set()  # resolved addresses of a tcp/udp endpoint, for identification
        self.reset_endpoint_hosts()
        self.last_sent = None
        self.last_received = None
        self.dead = False         # declared down by dead_peer_timeout until it is heard again
        self.wg = None            # the WireGuard core's state for this peer (set by the sessions)
        self.super_packets = False  # exchange TSO super-packets whole over TCP (set by the relay)
        self.endpoint_choice = None  # an EndpointChoice when config.endpoint is a list (set by the service)

    @property
    def endpoint(self):
        """The endpoint in use: the configured one, or the one chosen from a list."""
        if self.endpoint_choice is not None:
            return self.config.endpoints[self.endpoint_choice.index]
        return self.config.endpoint

    def reset_endpoint_hosts(self):
        """Forget resolved addresses; an IP-literal endpoint is its own address."""
        self.endpoint_hosts = {endpoint.host for endpoint in self.config.endpoints if endpoint.host is not None}

    def describe_path(self):
        if self.active_path is None:
            return None
        link, address = self.active_path
        return link.describe(address)


class Relay:
    log = Logger()

    def __init__(self, config, clock, device=None, private_key=None, preshared_keys=None, rng=None):
        self.config = config
        self.clock = clock
        self.tun = config.interface.mode == "tun"
        self.forward_between_peers = config.forward_between_peers
        self.drops = DropReporter(clock)
        self.device_counters = Counters()
        self.routes = AllowedIPs()
        self.next_hops = NextHopRoutes(self.routes)   # kernel routes via a peer (set by the service)
        self.switch = LearningSwitch()
        self.peers = {}
        self._bindings = {}           # (link, address) -> Peer
        self.responder = None         # a ResponderPort, attached by the service when configured
        self.responder_owns = None    # responder.owns(version, address), once one is attached
        self.endpoint_refresh = None  # callable(peer): resolve a hostname endpoint again (set by the service)
        self._liveness_call = None
        self._liveness_since = clock.seconds()
        if config.plaintext:
            self.sessions = PlaintextSessions(self)
        else:
            self.sessions = WireGuardSessions(self, private_key, preshared_keys, rng=rng)
        self.datapath = Datapath(self)
        self.datapath.attach_device(device)
        for peer_config in config.peers:
            self.add_peer(peer_config, resolve_routes=False)
        self.next_hops.peers_changed(self.peers.values())   # once: it walks every peer

    @property
    def device(self):
        return self.datapath.device

    # ---- peers -------------------------------------------------------------------------

    def add_peer(self, peer_config, resolve_routes=True):
        """``resolve_routes``: re-resolve the kernel's routes via peers now (a caller adding
        many peers says False and does it once at the end, since it walks every peer)."""
        peer = Peer(peer_config)
        self.peers[peer.name] = peer
        self._install_routes(peer)
        if resolve_routes:
            self.next_hops.peers_changed(self.peers.values())
        self.sessions.peer_added(peer)
        return peer

    def _install_routes(self, peer):
        peer.super_packets = bool(peer.config.offload and self.config.interface.offload)
        # Unicast networks go into the longest-prefix table; group networks are memberships
        # that several peers share, so they are kept per peer.
        peer.groups = [network for network in peer.config.allowed_ips if network.is_multicast]
        for network in peer.config.allowed_ips:
            if not network.is_multicast:
                self.routes.insert(network, peer)

    def remove_peer(self, name, resolve_routes=True):
        peer = self.peers.pop(name)
        self.routes.remove_owner(peer)
        if resolve_routes:
            self.next_hops.peers_changed(self.peers.values())
        self.sessions.peer_removed(peer)
        self.switch.forget_port(peer)
        self._close_paths(peer)
        return peer

    def _close_paths(self, peer):
        for link, address in list(peer.paths):
            self.path_closed(link, address)
            link.close_path(address)

    def reconfigure(self, config):
        """Apply a new configuration's peers in place; untouched peers keep paths and counters.

        Returns (added, removed, moved, updated) peer names; ``moved`` peers changed their
        endpoint and lost their paths, so the caller reconnects them.
        """
        wanted = {peer_config.name: peer_config for peer_config in config.peers}
        removed = [name for name in self.peers if name not in wanted]
        for name in removed:
            self.remove_peer(name, resolve_routes=False)
        added, moved, updated = [], [], []
        for name, peer_config in wanted.items():
            peer = self.peers.get(name)
            if peer is None:
                self.add_peer(peer_config, resolve_routes=False)
                added.append(name)
                continue
            if peer.config == peer_config:
                continue
            endpoint_changed = peer_config.endpoints != peer.config.endpoints
            if endpoint_changed:
                self._close_paths(peer)
            (moved if endpoint_changed else updated).append(name)
            self.routes.remove_owner(peer)
            peer.config = peer_config
            if endpoint_changed:
                peer.reset_endpoint_hosts()
            self._install_routes(peer)
            self.sessions.peer_changed(peer)
        self.next_hops.peers_changed(self.peers.values())
        self.config = config
        self.forward_between_peers = config.forward_between_peers
        return added, removed, moved, updated

    # ---- paths -------------------------------------------------------------------------

    def peer_of_path(self, link, address):
        return self._bindings.get((link, address))

    def path_opened(self, peer, link, address):
        """A new path to ``peer``; beyond the per-peer cap the oldest TCP path is closed."""
        path = (link, address)
        if path in peer.paths:
            return
        if link.kind != "tcp" and len(self._bindings) >= MAX_UDP_BINDINGS:
            self.drops.drop_from("too_many_paths", peer, link, address)
            return
        peer.paths.append(path)
        self._bindings[path] = peer
        if peer.active_path is None:
            # A newer path takes the traffic only once it delivers something (see
            # heard_from): a silent connection must not capture a peer's frames.
            peer.active_path = path
        while sum(1 for existing, _ in peer.paths if existing.kind == "tcp") > MAX_CONNECTIONS_PER_PEER:
            oldest = next(p for p in peer.paths if p[0].kind == "tcp")
            self.drops.drop("connection_replaced", peer, "more than %d connections" % MAX_CONNECTIONS_PER_PEER)
            self.path_closed(*oldest)
            oldest[0].close_path(oldest[1])
        if len(peer.paths) == 1:
            log_state_change("peer_up", peer.name, path=link.describe(address))

    def path_closed(self, link, address):
        peer = self._bindings.pop((link, address), None)
        if peer is None:
            return
        path = (link, address)
        if path in peer.paths:
            peer.paths.remove(path)
        if peer.active_path == path:
            peer.active_path = peer.paths[-1] if peer.paths else None
            self.sessions.path_lost(peer)
        if not peer.paths:
            log_state_change("peer_down", peer.name, reason="%s closed" % link.describe(address))

    def stream_closed(self, link, address):
        self.sessions.stream_closed(link)
        self.path_closed(link, address)

    def stream_links(self):
        """Every live TCP connection (the service closes them on stop)."""
        return [link for link, _ in self._bindings if link.kind == "tcp"]

    def heard_from(self, peer, link, address):
        """An accepted message from (link, address): answer there from now on."""
        self.alive(peer)
        old = peer.active_path
        if old == (link, address):
            return
        peer.active_path = (link, address)
        if old is not None and link.kind != "tcp" and old[1] != address:
            # A datagram peer moved (roaming): its old address is no path any more.
            self.path_closed(*old)
            log_state_change("roaming", peer.name, old_path=old[0].describe(old[1]), new_path=link.describe(address))

    # ---- liveness -----------------------------------------------------------------------

    def alive(self, peer):
        """An authenticated (or, in plaintext, accepted) message arrived from ``peer``."""
        peer.last_received = self.clock.seconds()
        if peer.dead:
            peer.dead = False
            log_state_change("peer_up", peer.name, path=peer.describe_path() or "?")

    def start_liveness(self):
        """Check every few seconds for peers silent longer than ``dead_peer_timeout``."""
        self._liveness_since = self.clock.seconds()
        timeout = self.config.dead_peer_timeout
        if timeout and self._liveness_call is None:
            self._liveness_call = self.clock.callLater(min(timeout / 4.0, 5.0), self._check_liveness)

    def _check_liveness(self):
        self._liveness_call = None
        timeout = self.config.dead_peer_timeout
        now = self.clock.seconds()
        for peer in list(self.peers.values()):
            heard = peer.last_received if peer.last_received is not None else self._liveness_since
            if not peer.dead and now - heard > timeout:
                self._declare_dead(peer, timeout)
        self.start_liveness()

    def _declare_dead(self, peer, timeout):
        """Give up on the peer's paths so they are made again: TCP reconnects, names re-resolve."""
        peer.dead = True
        log_state_change("peer_down", peer.name, reason="nothing received for %gs" % timeout)
        for link, address in [path for path in peer.paths if path[0].kind == "tcp"]:
            self.path_closed(link, address)
            link.close_path(address)
        self.sessions.peer_dead(peer)
        if self.endpoint_refresh is not None:
            self.endpoint_refresh(peer, urgent=True)

    def rehandshaking(self, peer):
        """A new handshake is starting: a hostname endpoint may have moved, look it up again."""
        if self.endpoint_refresh is not None:
            self.endpoint_refresh(peer)

    # ---- ports --------------------------------------------------------------------------

    def attach_responder(self, responder):
        self.responder = responder
        self.responder_owns = responder.owns

    def ports(self):
        """Every port of the switch: the device, the responder if any, then the peers."""
        yield DEVICE_PORT
        if self.responder is not None:
            yield RESPONDER_PORT
        yield from self.peers.values()

    def stop(self):
        self.sessions.stop()
        if self._liveness_call is not None and self._liveness_call.active():
            self._liveness_call.cancel()
        self._liveness_call = None

    def snapshot(self):
        """State and counters as plain data: the schema behind ``tunrelay status --json``."""
        return status.snapshot(self)
