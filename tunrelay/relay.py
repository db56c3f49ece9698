"""The forwarding core: frames between the device port and the peers' paths.

Theory of operation
-------------------
The relay has ports: the device (tun or tap) and one per peer. A peer is reached over
*paths*; a path is a (link, address) pair, where a link is one transport socket or stream
(a UDP socket, an AF_PACKET socket, or one TCP connection) and the address is the remote
end on that link. Links are thin Twisted adapters (``tunrelay.twisted_io``) that call
:meth:`Relay.message_received` and implement ``send(address, message)``; this module never
touches a socket or reads the clock itself (the clock is injected), so it runs unchanged on
the in-memory fakes of ``tunrelay.testing``.

Inbound order, following the WireGuard kernel driver's receive path: size check, identify
the sender (plaintext: by the path's address), decode, inner packet check, source check
against the sender's ``allowed_ips`` (tun), then the device or, with
``forward_between_peers``, straight to another peer without a round trip through the
kernel. Outbound (tun): longest-prefix match of the destination over all peers'
``allowed_ips`` (WireGuard's cryptokey routing). In tap mode the relay is a learning
switch whose ports are the device and the peers (``tunrelay.forwarding.switch``).

Everything that is dropped is counted by reason and reported at a limited rate; nothing
raises out of the data path.
"""

import ipaddress

from twisted.logger import Logger

from tunrelay.constants import MAX_CONNECTIONS_PER_PEER, MAX_UDP_BINDINGS, OFFLOAD_FRAME_LIMIT
from tunrelay.forwarding.allowed_ips import AllowedIPs
from tunrelay.forwarding.offload import PLAIN_HEADER, VNET_HEADER, VnetHeader, to_packets
from tunrelay.forwarding.switch import LearningSwitch
from tunrelay.logs import log_state_change
from tunrelay.sessions import PlaintextSessions, WireGuardSessions
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ethernet import HEADER_LEN as ETHERNET_HEADER_LEN
from tunrelay.wire.ip import route_key
from tunrelay.stats import Counters, DropReporter

__all__ = ["Peer", "Relay"]


DEVICE_PORT = "device"        # the tun/tap side, as a switch port and a routing ingress
RESPONDER_PORT = "responder"  # the in-process responder stack


def _is_multicast(version, address):
    return address >> 28 == 0xE if version == 4 else address >> 120 == 0xFF


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

    @property
    def endpoint(self):
        return self.config.endpoint

    def reset_endpoint_hosts(self):
        """Forget resolved addresses; an IP-literal endpoint is its own address."""
        self.endpoint_hosts = set()
        if self.config.endpoint is not None and self.config.endpoint.host is not None:
            self.endpoint_hosts.add(self.config.endpoint.host)

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
        self.device = device          # has write(frame) -> drop reason or None
        self.tun = config.interface.mode == "tun"
        self.offload = self.tun and config.interface.offload   # frames carry a virtio-net header
        self.forward_between_peers = config.forward_between_peers
        self.drops = DropReporter(clock)
        self.device_counters = Counters()
        self.routes = AllowedIPs()
        self.switch = LearningSwitch()
        self.peers = {}
        self._bindings = {}           # (link, address) -> Peer
        self.responder = None         # a ResponderPort, attached by the service when configured
        self.endpoint_refresh = None  # callable(peer): resolve a hostname endpoint again (set by the service)
        self._liveness_call = None
        self._liveness_since = clock.seconds()
        if config.plaintext:
            self.sessions = PlaintextSessions(self)
        else:
            self.sessions = WireGuardSessions(self, private_key, preshared_keys, rng=rng)
        for peer_config in config.peers:
            self.add_peer(peer_config)

    # ---- peers -------------------------------------------------------------------------

    def add_peer(self, peer_config):
        peer = Peer(peer_config)
        self.peers[peer.name] = peer
        self._install_routes(peer)
        self.sessions.peer_added(peer)
        return peer

    def _install_routes(self, peer):
        # Unicast networks go into the longest-prefix table; group networks are memberships
        # that several peers share, so they are kept per peer.
        peer.groups = [network for network in peer.config.allowed_ips if network.is_multicast]
        for network in peer.config.allowed_ips:
            if not network.is_multicast:
                self.routes.insert(network, peer)

    def remove_peer(self, name):
        peer = self.peers.pop(name)
        self.routes.remove_owner(peer)
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
            self.remove_peer(name)
        added, moved, updated = [], [], []
        for name, peer_config in wanted.items():
            peer = self.peers.get(name)
            if peer is None:
                self.add_peer(peer_config)
                added.append(name)
                continue
            if peer.config == peer_config:
                continue
            endpoint_changed = peer_config.endpoint != peer.config.endpoint
            if endpoint_changed:
                self._close_paths(peer)
            (moved if endpoint_changed else updated).append(name)
            self.routes.remove_owner(peer)
            peer.config = peer_config
            if endpoint_changed:
                peer.reset_endpoint_hosts()
            self._install_routes(peer)
            self.sessions.peer_changed(peer)
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
            self.drops.drop("too_many_paths", peer, link.describe(address))
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

    # ---- inbound: from a peer ----------------------------------------------------------

    def message_received(self, link, address, message):
        self.sessions.message_received(link, address, message)

    def frame_from_peer(self, peer, frame):
        """A frame the sessions layer accepted from ``peer``: check it and forward it."""
        try:
            if not self.tun:
                self._learn_source(frame, peer)
                self._count_received(peer, frame)
                self._switch(frame, peer)
                return
            if self.offload and not peer.config.offload:
                frame = PLAIN_HEADER + frame   # the device expects a virtio-net header on every write
            version, source, destination, frame = self._ip_key(frame)
        except MalformedPacket as error:
            self.drops.drop(error.reason, peer)
            return
        if self.routes.lookup(version, source) is not peer:
            self.drops.drop("source_not_allowed", peer)
            return
        self._count_received(peer, frame)
        self._route(version, destination, frame, peer)

    def _count_received(self, peer, frame):
        counters = peer.counters
        counters.rx_packets += 1
        counters.rx_bytes += len(frame)

    # ---- tun: routing by IP ------------------------------------------------------------

    def _route(self, version, destination, frame, ingress):
        """The responder's address, else the owner of the destination's allowed IPs, else the kernel."""
        if self.responder is not None and self.responder.owns(version, destination):
            for packet in (self._packets(frame) if self.offload else (frame,)):
                self.responder.frame_received(packet)
            return
        from_peer = isinstance(ingress, Peer)
        if _is_multicast(version, destination):
            self._multicast(version, destination, frame, ingress, from_peer)
            return
        target = self.routes.lookup(version, destination)
        if target is not None and target is not ingress and (self.forward_between_peers or not from_peer):
            self._send(target, frame)
        elif ingress is DEVICE_PORT:
            self.drops.drop("no_route", None)
        else:
            self._to_device(frame, ingress if from_peer else None)

    def _multicast(self, version, destination, frame, ingress, from_peer):
        """A group address goes to every peer whose allowed_ips cover it (OSPF's 224.0.0.5 to
        each neighbour), and from a peer also to the kernel, which may be a member."""
        group = ipaddress.ip_address(destination) if version == 4 else ipaddress.IPv6Address(destination)
        targets = [peer for peer in self.peers.values()
                   if peer is not ingress and any(group in network for network in peer.groups)]
        if from_peer:
            self._to_device(frame, ingress)
            if not self.forward_between_peers:
                return
        elif not targets and ingress is DEVICE_PORT:
            self.drops.drop("no_route", None)
            return
        for peer in targets:
            self._send(peer, frame)

    # ---- tap: a learning switch --------------------------------------------------------

    def _learn_source(self, frame, port):
        if len(frame) < ETHERNET_HEADER_LEN:
            raise MalformedPacket("truncated_ethernet_header")
        if frame[6] & 1:
            raise MalformedPacket("multicast_source_mac")
        refused = self.switch.learn(frame[6:12], port, self.clock.seconds())
        if refused is not None:
            self.drops.drop(refused, port if isinstance(port, Peer) else None)

    def _switch(self, frame, ingress):
        """Deliver by the destination MAC's learned port; flood group and unknown destinations."""
        port = None if frame[0] & 1 else self.switch.lookup(frame[0:6], self.clock.seconds())
        peer_to_peer_allowed = self.forward_between_peers or not isinstance(ingress, Peer)
        if port is None:
            for other in self._ports():
                if other is not ingress and (peer_to_peer_allowed or not isinstance(other, Peer)):
                    self._deliver(other, frame, ingress)
        elif port is ingress:
            self.drops.drop("hairpin", ingress if isinstance(ingress, Peer) else None)
        elif isinstance(port, Peer) and not peer_to_peer_allowed:
            self._deliver(DEVICE_PORT, frame, ingress)  # the kernel may bridge it
        else:
            self._deliver(port, frame, ingress)

    def _ports(self):
        yield DEVICE_PORT
        if self.responder is not None:
            yield RESPONDER_PORT
        yield from self.peers.values()

    def _deliver(self, port, frame, ingress):
        if port is DEVICE_PORT:
            self._to_device(frame, ingress if isinstance(ingress, Peer) else None)
        elif port is RESPONDER_PORT:
            self.responder.frame_received(frame)
        else:
            self._send(port, frame)

    def _to_device(self, frame, peer):
        if self.device is None:
            self.drops.drop("device_down", peer)
            return
        reason = self.device.write(frame)
        if reason is not None:
            self.drops.drop(reason, peer)
            return
        self.device_counters.tx_packets += 1
        self.device_counters.tx_bytes += len(frame)

    # ---- from the device and from the responder ----------------------------------------

    def device_frame(self, frame):
        counters = self.device_counters
        counters.rx_packets += 1
        counters.rx_bytes += len(frame)
        self._frame_from_port(frame, DEVICE_PORT)

    def responder_output(self, frame):
        """A frame the responder emits: to the kernel or a peer, like any other port's."""
        self._frame_from_port(frame, RESPONDER_PORT)

    def attach_responder(self, responder):
        self.responder = responder

    def _frame_from_port(self, frame, ingress):
        try:
            if not self.tun:
                self._learn_source(frame, ingress)
                self._switch(frame, ingress)
                return
            if self.offload and ingress is RESPONDER_PORT:
                frame = PLAIN_HEADER + frame
            version, _, destination, frame = self._ip_key(frame)
        except MalformedPacket as error:
            self.drops.drop(error.reason, None)
            return
        self._route(version, destination, frame, ingress)

    def _ip_key(self, frame):
        """route_key for tun frames, which carry a virtio-net header in offload mode."""
        if not self.offload:
            return route_key(frame)
        # A view, not a slice: a 64 KiB super-packet is routed without being copied.
        version, source, destination, packet = route_key(memoryview(frame)[VNET_HEADER:])
        if len(packet) + VNET_HEADER != len(frame):
            frame = frame[:VNET_HEADER + len(packet)]
        return version, source, destination, frame

    def _packets(self, frame):
        """Finished, MTU-sized packets from an offload frame (for peers and the responder)."""
        try:
            return to_packets(VnetHeader(frame), frame[VNET_HEADER:])
        except MalformedPacket as error:
            self.drops.drop(error.reason, None)
            return []

    def _send(self, peer, frame):
        if not self.offload:
            self.sessions.send(peer, frame)
        elif not peer.config.offload:
            for packet in self._packets(frame):
                self.sessions.send(peer, packet)
        elif len(frame) > OFFLOAD_FRAME_LIMIT:
            # gso_max_size keeps the kernel's super-packets below the limit; a frame from
            # elsewhere (a device whose limit could not be set) is cut rather than lost.
            for packet in self._packets(frame):
                self.sessions.send(peer, PLAIN_HEADER + packet)
        else:
            self.sessions.send(peer, frame)

    def sent_to(self, peer, size):
        peer.last_sent = self.clock.seconds()
        counters = peer.counters
        counters.tx_packets += 1
        counters.tx_bytes += size

    def stop(self):
        self.sessions.stop()
        if self._liveness_call is not None and self._liveness_call.active():
            self._liveness_call.cancel()
        self._liveness_call = None

    def snapshot(self):
        """State and counters as plain data: the schema behind ``tunrelay status --json``.

        Times are the injected clock's seconds (Unix time under a real reactor) or None.
        """
        config = self.config
        return {
            "interface": {"name": config.interface.name, "mode": config.interface.mode,
                          "mtu": config.interface.mtu,
                          "addresses": [str(address) for address in config.interface.addresses]},
            "listen": [str(address) for address in config.listen],
            "plaintext": config.plaintext,
            "device": self.device_counters.as_dict(),
            "drops": dict(self.drops.counters.drops),
            "peers": [self._peer_snapshot(peer) for peer in self.peers.values()],
            "responder": self.responder.snapshot() if self.responder is not None else None,
        }

    def _peer_snapshot(self, peer):
        link = peer.active_path[0] if peer.active_path is not None else None
        return dict(
            name=peer.name,
            endpoint=peer.describe_path() or (str(peer.endpoint) if peer.endpoint else None),
            transport=link.kind if link is not None else (peer.endpoint.transport if peer.endpoint else None),
            **self.sessions.peer_state(peer),
            last_received=peer.last_received,
            alive=not peer.dead,
            paths=len(peer.paths),
            allowed_ips=[str(network) for network in peer.config.allowed_ips],
            keepalive=peer.config.keepalive,
            **peer.counters.as_dict())
