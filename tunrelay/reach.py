"""Reaching peers: outbound TCP connections, UDP endpoint resolution, and endpoint lists.

A peer's endpoint says where we reach it. For ``tcp://`` a ClientService keeps one
connection up (reconnecting with capped backoff, on a clock that a returning link or route
moves to now). For ``udp://`` the host is resolved (again on rehandshakes and when the peer
is declared dead, since names move) and the address is handed to the sessions as a path.
For ``ethernet://`` the path is the raw link and the peer's MAC.

A peer whose endpoint is a list gets an ``EndpointChoice`` (tunrelay.endpoint_choice, the
pure decision). Once a second this adapter feeds it the peer's last authenticated receive
and last send and carries out what it says: solicit a handshake on the endpoint in use,
fail over to the next endpoint (closing the old one's path or connection and handshaking
afresh on the new), or probe a preferred endpoint with a lone initiation. When an
authenticated message arrives over a preferred endpoint (its answer to a probe, roamed to
by the sessions), the choice returns there and the fallback's connection is closed.
"""

import socket

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet import defer, threads
from twisted.internet.endpoints import HostnameEndpoint

from tunrelay.constants import ENDPOINT_REFRESH_INTERVAL, RECONNECT_FACTOR, RECONNECT_INITIAL_DELAY, RECONNECT_MAX_DELAY
from tunrelay.endpoint_choice import EndpointChoice, Probe, Reassert, Solicit, Use
from tunrelay.logs import log_state_change
from tunrelay.twisted_io.netlink_watch import RetryClock
from tunrelay.twisted_io.stream import OutboundFactory
from tunrelay.udp_sockets import SocketSetupFailed

__all__ = ["PeerReach", "CHOICE_INTERVAL"]

CHOICE_INTERVAL = 1.0   # how often endpoint lists are looked at


def _announced_backoff(peer_name, endpoint):
    """Capped exponential backoff that logs each reconnect as a state change."""
    policy = backoffPolicy(RECONNECT_INITIAL_DELAY, RECONNECT_MAX_DELAY, RECONNECT_FACTOR)

    def delay_for(attempt):
        delay = policy(attempt)
        log_state_change("reconnect", peer_name, endpoint=endpoint, delay=delay)
        return delay

    return delay_for


def _plain_host(host):
    return host[7:] if host.startswith("::ffff:") else host


class PeerReach(MultiService):
    """The service's part that dials, resolves and chooses; its children are the TCP clients."""

    def __init__(self, relay, udp, reactor, ethernet_links):
        MultiService.__init__(self)
        self.relay = relay
        self.udp = udp
        self.reactor = reactor
        self.ethernet_links = ethernet_links   # interface -> EthernetLink (the service's dict)
        self.clients = {}              # peer name -> {Endpoint: ClientService}
        # Their retries are on a clock that a returning link or route moves to now.
        self.retry_clock = RetryClock(reactor)
        self._last_refresh = {}        # peer name -> when its hostname was last resolved again
        self._resolved = {}            # peer name -> the (link, address) its UDP endpoint gave last
        self._hosts = {}               # (peer name, Endpoint) -> addresses its name resolved to
        self._choice_call = None

    # ---- peers --------------------------------------------------------------------------

    def add(self, peer):
        """Set the peer's endpoint choice up and dial its TCP endpoint (before start, too)."""
        endpoints = peer.config.endpoints
        peer.endpoint_choice = EndpointChoice([str(e) for e in endpoints], self.reactor.seconds()) \
            if len(endpoints) > 1 else None
        if peer.endpoint is not None and peer.endpoint.transport == "tcp":
            self._start_client(peer, peer.endpoint)

    def connect_datagram(self, peer, fresh=False):
        """Hand the peer's UDP or Ethernet endpoint to the sessions (after start)."""
        endpoint = peer.endpoint
        if endpoint is None:
            return
        if endpoint.transport == "udp":
            self._resolve_udp(peer, fresh=fresh)
        elif endpoint.transport == "ethernet":
            self.relay.sessions.path_known(peer, self.ethernet_links[endpoint.interface], endpoint.mac)
            if fresh:
                self.relay.sessions.endpoint_moved(peer)

    def remove(self, name):
        for client in self.clients.pop(name, {}).values():
            client.disownServiceParent()
        self._resolved.pop(name, None)
        self._last_refresh.pop(name, None)
        for key in [key for key in self._hosts if key[0] == name]:
            del self._hosts[key]

    def rebound(self, replacements):
        """UDP sockets were replaced by a reload: resolved paths move to the new links."""
        for name, (link, address) in list(self._resolved.items()):
            if link in replacements:
                self._resolved[name] = (replacements[link], address)

    def _start_client(self, peer, endpoint):
        clients = self.clients.setdefault(peer.name, {})
        if endpoint in clients:
            return
        # A connection made while another endpoint is in use only probes this one.
        client = ClientService(
            HostnameEndpoint(self.reactor, endpoint.host, endpoint.port),
            OutboundFactory(self.relay, peer, probing=lambda: peer.endpoint != endpoint),
            retryPolicy=_announced_backoff(peer.name, str(endpoint)),
            clock=self.retry_clock)
        endpoints = peer.config.endpoints
        client.setName("connect-" + peer.name if len(endpoints) < 2 else
                       "connect-%s-%d" % (peer.name, endpoints.index(endpoint)))
        client.setServiceParent(self)  # starts it at once when we are already running
        clients[endpoint] = client

    def _stop_client(self, peer, endpoint):
        client = self.clients.get(peer.name, {}).pop(endpoint, None)
        if client is not None:
            client.disownServiceParent()   # stopService closes its connection

    # ---- UDP names ----------------------------------------------------------------------

    def refresh(self, peer, urgent=False):
        """Resolve a UDP hostname endpoint again (TCP's HostnameEndpoint does it per connect).

        Rehandshakes ask at most every ENDPOINT_REFRESH_INTERVAL; a peer declared dead asks
        ``urgent``ly, because that is exactly when a moved name matters.
        """
        endpoint = peer.endpoint
        if endpoint is None or endpoint.transport != "udp" or endpoint.family is not None:
            return
        now = self.reactor.seconds()
        if not urgent and now - self._last_refresh.get(peer.name, float("-inf")) < ENDPOINT_REFRESH_INTERVAL:
            return
        self._last_refresh[peer.name] = now
        self._resolve_udp(peer)

    @defer.inlineCallbacks
    def _udp_path(self, peer, endpoint):
        """(link, (address, port)) for a UDP endpoint, or None with the failure counted."""
        try:
            if endpoint.family is not None:
                address, family = endpoint.host, endpoint.family
            else:
                infos = yield threads.deferToThreadPool(
                    self.reactor, self.reactor.getThreadPool(), socket.getaddrinfo,
                    endpoint.host, endpoint.port, 0, socket.SOCK_DGRAM)
                family_code, _, _, _, sockaddr = infos[0]
                address, family = sockaddr[0], 6 if family_code == socket.AF_INET6 else 4
        except OSError as failure:
            self.relay.drops.drop("resolve_failed", peer, "%s: %s" % (endpoint.host, failure))
            return None
        try:
            link = self.udp.link_for(family)
        except SocketSetupFailed as failure:
            self.relay.drops.drop("no_udp_socket", peer, str(failure))
            return None
        if self.relay.peers.get(peer.name) is not peer or endpoint not in peer.config.endpoints:
            return None  # removed or changed by a reload while we were resolving
        peer.endpoint_hosts.add(address)
        self._hosts.setdefault((peer.name, endpoint), set()).add(address)
        return link, (address, endpoint.port)

    @defer.inlineCallbacks
    def _resolve_udp(self, peer, fresh=False):
        endpoint = peer.endpoint
        path = yield self._udp_path(peer, endpoint)
        if path is None or peer.endpoint != endpoint:
            return
        previous = self._resolved.get(peer.name)
        self._resolved[peer.name] = path
        self.relay.sessions.path_known(peer, *path)
        if previous is not None and previous != path:
            # The name moved: forget the old address and greet the new one now.
            self.relay.path_closed(*previous)
            fresh = True
        if fresh:
            self.relay.sessions.endpoint_moved(peer)

    # ---- endpoint lists -------------------------------------------------------------------

    def startService(self):
        MultiService.startService(self)
        self._schedule_choices()

    def stopService(self):
        if self._choice_call is not None and self._choice_call.active():
            self._choice_call.cancel()
        self._choice_call = None
        return MultiService.stopService(self)

    def _schedule_choices(self):
        self._choice_call = self.reactor.callLater(CHOICE_INTERVAL, self._check_choices)

    def _check_choices(self):
        now = self.reactor.seconds()
        for peer in list(self.relay.peers.values()):
            if peer.endpoint_choice is not None:
                self._check_choice(peer, now)
        self._schedule_choices()

    def _check_choice(self, peer, now):
        choice = peer.endpoint_choice
        answered = self._endpoint_index(peer, peer.active_path)
        actions = [choice.answered(answered, now)] if answered is not None else []
        handle = peer.wg
        sent = [time for time in (peer.last_sent, getattr(handle, "last_sent_handshake", None)) if time is not None]
        actions += choice.check(now, peer.last_received, max(sent) if sent else None)
        for action in actions:
            kind = type(action)
            if kind is Use:
                self._use(peer, action)
            elif kind is Solicit:
                self.relay.sessions.probe(peer)
            elif kind is Reassert:
                self.relay.sessions.reassert(peer)
            elif kind is Probe:
                self._probe(peer, action.index)
        # Only the endpoint in use and the better ones being probed may be dialled.
        endpoints = peer.config.endpoints
        for endpoint in list(self.clients.get(peer.name, {})):
            if endpoint not in endpoints or endpoints.index(endpoint) > choice.index:
                self._stop_client(peer, endpoint)

    def _endpoint_index(self, peer, path):
        """Which of the peer's endpoints ``path`` (link, address) goes to, or None."""
        if path is None:
            return None
        link, address = path
        candidates = []
        for index, endpoint in enumerate(peer.config.endpoints):
            if endpoint.transport != link.kind:
                continue
            if endpoint.transport == "ethernet":
                if address == endpoint.mac:
                    return index
                continue
            if address[1] != endpoint.port:
                continue
            host = _plain_host(address[0])
            if host == endpoint.host or host in self._hosts.get((peer.name, endpoint), ()):
                return index
            candidates.append(index)
        # A hostname dialled over TCP resolves inside HostnameEndpoint: the port must tell.
        return candidates[0] if len(candidates) == 1 and link.kind == "tcp" else None

    def _use(self, peer, action):
        endpoints = peer.config.endpoints
        old, new = endpoints[action.previous], endpoints[action.index]
        log_state_change("endpoint", peer.name, endpoint=str(new), reason=peer.endpoint_choice.reason)
        # A failover: nothing more goes to the endpoint that stopped answering. (After an
        # answer, the fallbacks' clients go in _check_choice's reconciliation, like any
        # client of an endpoint worse than the one in use.)
        if action.fresh and old.transport == "tcp":
            self._stop_client(peer, old)
        elif action.fresh and old.transport == "udp":
            resolved = self._resolved.pop(peer.name, None)
            if resolved is not None:
                self.relay.path_closed(*resolved)
        if new.transport == "tcp":
            self._start_client(peer, new)   # its connection handshakes afresh when it is made
        else:
            self.connect_datagram(peer, fresh=action.fresh)

    @defer.inlineCallbacks
    def _probe(self, peer, index):
        """A lone initiation to endpoint ``index`` (a TCP endpoint is probed by dialling it)."""
        endpoint = peer.config.endpoints[index]
        if endpoint.transport == "tcp":
            self._start_client(peer, endpoint)
            return
        if endpoint.transport == "ethernet":
            path = (self.ethernet_links[endpoint.interface], endpoint.mac)
        else:
            path = yield self._udp_path(peer, endpoint)
            if path is None or peer.endpoint_choice is None or peer.endpoint_choice.index <= index:
                return   # gone, changed, or no longer better than what is in use
        self.relay.sessions.probe(peer, path)
