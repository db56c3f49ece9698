"""Plaintext sessions: bare frames, the sender known by its address (simpletun's model).

There is no handshake and no authentication. A message belongs to the peer whose endpoint
has the same transport and host, or else to the single peer configured without an endpoint
(the config refuses two). An empty message is a keepalive: it proves the path alive and is
never delivered. Keepalives are sent only to peers with ``keepalive`` set, because stock
simpletun writes whatever it receives to its device and would choke on an empty frame.
"""

from tunrelay.constants import PLAINTEXT_LENGTH_PREFIX

__all__ = ["PlaintextSessions"]


class PlaintextSessions:
    stream_prefix = PLAINTEXT_LENGTH_PREFIX  # simpletun / OpenVPN TCP framing
    message_overhead = 0
    core = None   # no WireGuard: the data path takes frames as they are

    def __init__(self, relay):
        self.relay = relay
        self._endpointless = None
        self._keepalive_calls = {}   # peer -> DelayedCall

    # ---- peers ------------------------------------------------------------------------

    def peer_added(self, peer):
        peer.wg = None
        if peer.config.endpoint is None:
            self._endpointless = peer
        if peer.config.keepalive:
            self._schedule_keepalive(peer)

    def peer_removed(self, peer):
        if self._endpointless is peer:
            self._endpointless = None
        call = self._keepalive_calls.pop(peer, None)
        if call is not None and call.active():
            call.cancel()

    def peer_changed(self, peer):
        self.peer_removed(peer)
        self.peer_added(peer)

    def identify(self, kind, address):
        for peer in self.relay.peers.values():
            endpoint = peer.endpoint
            if endpoint is None or endpoint.transport != kind:
                continue
            if kind == "ethernet" and endpoint.mac == address:
                return peer
            if kind != "ethernet" and address is not None and address[0] in peer.endpoint_hosts:
                return peer
        return self._endpointless

    # ---- paths ------------------------------------------------------------------------

    def stream_opened(self, link, address, peer, probe=False):
        peer = peer or self.identify("tcp", address)
        if peer is None:
            self.relay.drops.drop_from("unknown_peer", None, link, address)
            return False
        self.relay.path_opened(peer, link, address)
        return True

    def stream_closed(self, link):
        pass

    def path_lost(self, peer):
        pass

    def peer_dead(self, peer):
        pass

    def endpoint_moved(self, peer):
        pass  # the relay already switched paths; there is no session to restart

    def probe(self, peer, path=None):
        pass  # no handshake to probe with (the config allows endpoint lists in encrypted mode only)

    def reassert(self, peer):
        pass

    def path_known(self, peer, link, address):
        self.relay.path_opened(peer, link, address)

    # ---- the data path's batch end -----------------------------------------------------

    def after_batch(self):
        pass   # no deferred work: plaintext has no state machine

    # ---- keepalive --------------------------------------------------------------------

    def _schedule_keepalive(self, peer):
        self._keepalive_calls[peer] = self.relay.clock.callLater(peer.config.keepalive, self._keepalive_due, peer)

    def _keepalive_due(self, peer):
        clock = self.relay.clock
        quiet_since = peer.last_sent if peer.last_sent is not None else float("-inf")
        if peer.active_path is not None and clock.seconds() - quiet_since >= peer.config.keepalive - 1e-6:
            link, address = peer.active_path
            if link.send(address, b"") is None:
                peer.last_sent = clock.seconds()
            self.relay.datapath.flush_links()
        self._schedule_keepalive(peer)

    def peer_state(self, peer):
        return {"session": "plaintext", "latest_handshake": None}

    def stop(self):
        for peer in list(self._keepalive_calls):
            self.peer_removed(peer)
