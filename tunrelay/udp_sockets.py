"""The relay's UDP sockets: one per UDP listen address, an outbound one per family, their fwmark.

Theory of operation
-------------------
A UDP link is one socket shared by every peer behind it (``tunrelay.twisted_io.datagram``).
The service binds one per UDP listen address at start; a peer is reached through the first
listener of its address family, else through an ephemeral socket opened when first needed.

wg's ``listen_port`` (and a reload) change the listen addresses of a running relay.
:meth:`UdpSockets.rebind` binds the new sockets first, so a port in use changes nothing;
then it moves every peer path from a socket that goes to its family's new socket, keeping
the remote address (wireguard-go's BindUpdate keeps its endpoints the same way), so a
session survives its relay changing ports; then it closes the old sockets. ``fwmark`` is
SO_MARK on every one of these sockets, present and future (wireguard-go marks only its UDP
sockets too); setting it needs CAP_NET_ADMIN.
"""

import socket

from tunrelay.twisted_io.datagram import UdpLink, bind_udp

__all__ = ["SocketSetupFailed", "UdpSockets"]

SO_MARK = getattr(socket, "SO_MARK", 36)   # <asm-generic/socket.h>


class SocketSetupFailed(Exception):
    """A UDP socket cannot be bound or marked; ``str()`` is one line."""


def _family(host):
    return 6 if ":" in host else 4


class UdpSockets:
    def __init__(self, relay, reactor):
        self.relay = relay
        self.reactor = reactor
        self.listeners = []        # (listen Endpoint, port, link), in listen order
        self.ephemeral = {}        # family -> (port, link): outbound sockets of families nobody listens on
        self.fwmark = 0
        self.started = False       # links read from the loop once the service runs

    # ---- binding -----------------------------------------------------------------------

    def _bind(self, host, port_number):
        """A bound link: (port, link), the same object (a UdpLink is its own listening port)."""
        try:
            sock = bind_udp(host, port_number)
        except OSError as failure:
            raise SocketSetupFailed("cannot listen on udp://%s:%d: %s" % (
                "[%s]" % host if ":" in host else host, port_number, failure.strerror)) from None
        link = UdpLink(self.relay.datapath, sock, self.reactor)
        if self.fwmark:
            try:
                self._mark(link, self.fwmark)
            except SocketSetupFailed:
                link.stopListening()
                raise
        if self.started:
            link.start()
        return link, link

    def start(self):
        """Read every socket bound so far, and from now on every new one as it is bound."""
        self.started = True
        for port in self.ports():
            port.start()

    def listen(self, address):
        """Bind a listen address at start; raise SocketSetupFailed."""
        port, link = self._bind(address.host, address.port)
        self.listeners.append((address, port, link))
        return port

    def link_for(self, family):
        """The link that reaches peers of ``family`` (4 or 6), opening an ephemeral one if needed."""
        for address, _, link in self.listeners:
            if _family(address.host) == family:
                return link
        if family not in self.ephemeral:
            self.ephemeral[family] = self._bind("::" if family == 6 else "0.0.0.0", 0)
        return self.ephemeral[family][1]

    def listen_port(self):
        """The bound port wg shows as ``listen_port``: the first listener's, else an outbound socket's."""
        ports = [port for _, port, _ in self.listeners] + [self.ephemeral[family][0] for family in (4, 6)
                                                           if family in self.ephemeral]
        return ports[0].socket.getsockname()[1] if ports else None

    def ports(self):
        return [port for _, port, _ in self.listeners] + [port for port, _ in self.ephemeral.values()]

    # ---- changes while running ---------------------------------------------------------

    def rebind(self, addresses):
        """Listen on exactly ``addresses`` (UDP Endpoints); raise SocketSetupFailed, changing nothing.

        Returns {old link: new link} for the sockets that went (the service re-points what it
        remembers of them).
        """
        addresses = list(addresses)
        if [address for address, _, _ in self.listeners] == addresses:
            return {}
        kept = {address: (port, link) for address, port, link in self.listeners if address in addresses}
        fresh = {}
        try:
            for address in addresses:
                if address not in kept and address not in fresh:
                    fresh[address] = self._bind(address.host, address.port)
        except SocketSetupFailed:
            for port, _ in fresh.values():
                port.stopListening()
            raise
        going = [(_family(address.host), port, link) for address, port, link in self.listeners if address not in kept]
        self.listeners = [(address, *(kept.get(address) or fresh[address])) for address in addresses]
        families = {_family(address.host) for address in addresses}
        going += [(family, port, link) for family, (port, link) in self.ephemeral.items() if family in families]
        self.ephemeral = {family: entry for family, entry in self.ephemeral.items() if family not in families}
        replacements = {link: self.link_for(family) for family, _, link in going}
        self._move_paths(replacements)
        for _, port, link in going:
            link.flush()
            port.stopListening()
        return replacements

    def _move_paths(self, replacements):
        relay = self.relay
        for peer in list(relay.peers.values()):
            for link, address in list(peer.paths):
                if link in replacements:
                    relay.path_closed(link, address)
                    relay.sessions.path_known(peer, replacements[link], address)

    def set_fwmark(self, mark):
        """SO_MARK ``mark`` (0: none) on every UDP socket; raise SocketSetupFailed, changing nothing."""
        if mark == self.fwmark:
            return
        done = []
        try:
            for port in self.ports():
                self._mark(port, mark)
                done.append(port)
        except SocketSetupFailed:
            for port in done:
                self._mark(port, self.fwmark)
            raise
        self.fwmark = mark

    @staticmethod
    def _mark(port, mark):
        try:
            port.socket.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
        except OSError as failure:
            raise SocketSetupFailed("cannot set fwmark %d on a UDP socket: %s" % (mark, failure.strerror)) from None

    def close(self):
        for port in self.ports():
            port.stopListening()
        self.listeners, self.ephemeral = [], {}
        self.started = False
