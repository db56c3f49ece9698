"""Kernel routes via a gateway on our tun device choose the peer: one relay per site in a mesh.

Theory of operation
-------------------
In tun mode a packet reaches the relay without the kernel's next hop (a tun device has no
link layer), so the relay chooses the peer by the destination's allowed_ips. A routing
daemon (BIRD, FRR: OSPF, BGP) steering traffic between several peers on one device needs
the kernel's choice instead. The kernel states it in its routing table: ``PREFIX via
GATEWAY dev tr0``. The relay mirrors the main table's routes on its device
(tunrelay.twisted_io.route_mirror) into this model, which folds them into the cryptokey
routing table (WireGuard whitepaper §2):

- a route's owner is the peer whose *configured* allowed_ips contain its gateway (a
  neighbour's tunnel address, e.g. 198.51.100.2/32); gateways resolve against the
  configured table only, never against other mirrored routes;
- the route's prefix is then routed to that peer, and, because the same table is the
  source check, that peer may send from the prefix: the source check follows the dynamic
  routes, as strict reverse-path filtering (RFC 3704 §2.2) does in the kernel;
- a configured prefix always wins over a mirrored one of the same length: the config is
  what the operator wrote; longer prefixes win as always;
- a route whose gateway no peer owns, one without a gateway (``dev tr0`` only, e.g.
  ``interface.routes``), and routes of other tables are not mirrored.

The model is pure: ``replace_routes`` takes the whole current set (the adapter dumps the
table after each burst of change notices) and ``peers_changed`` re-resolves after a reload.
"""

import ipaddress

__all__ = ["NextHopRoutes", "MAX_MIRRORED_ROUTES"]

MAX_MIRRORED_ROUTES = 65536   # bounded: a full BGP table belongs in a router, not in this dict


class NextHopRoutes:
    """Mirrored kernel routes (network -> gateway), applied to ``table`` (an AllowedIPs)."""

    def __init__(self, table):
        self.table = table
        self._configured = None        # AllowedIPs of the configured allowed_ips alone
        self._configured_networks = set()
        self._routes = {}              # ip_network -> ip_address of the gateway
        self._installed = {}           # ip_network -> peer we routed it to
        self.unowned = 0               # routes whose gateway no peer owns, at the last update
        self.truncated = False         # more than MAX_MIRRORED_ROUTES were offered

    def peers_changed(self, peers):
        """The configured allowed_ips changed (start, reload): resolve every route again.

        The caller has already put the configured networks into ``table``."""
        from tunrelay.forwarding.allowed_ips import AllowedIPs

        configured = AllowedIPs()
        networks = set()
        for peer in peers:
            for network in peer.config.allowed_ips:
                if not network.is_multicast:
                    configured.insert(network, peer)
                    networks.add(network)
        for network, owner in self._installed.items():
            if network not in networks:   # a configured network now: the caller's entry stays
                self.table.remove(network, owner)
        self._configured, self._configured_networks = configured, networks
        self._installed = {}
        self._apply()

    def replace_routes(self, routes):
        """The kernel's routes via a gateway on our device now: an iterable of (network, gateway)."""
        wanted = {}
        for network, gateway in routes:
            if len(wanted) >= MAX_MIRRORED_ROUTES:
                self.truncated = True
                break
            wanted[ipaddress.ip_network(network)] = ipaddress.ip_address(gateway)
        else:
            self.truncated = False
        self._routes = wanted
        self._apply()

    def routes(self):
        """(network, gateway, peer name or None) of every mirrored route, for status."""
        return [(network, gateway, getattr(self._installed.get(network), "name", None))
                for network, gateway in sorted(self._routes.items(), key=lambda item: (item[0].version, item[0]))]

    def _apply(self):
        if self._configured is None:
            return
        target = {}
        unowned = 0
        for network, gateway in self._routes.items():
            if network in self._configured_networks or network.version != gateway.version:
                continue
            owner = self._configured.lookup_address(gateway)
            if owner is None:
                unowned += 1
            else:
                target[network] = owner
        for network, owner in list(self._installed.items()):
            if target.get(network) is not owner:
                self.table.remove(network, owner)
                del self._installed[network]
        for network, owner in target.items():
            if self._installed.get(network) is not owner:
                self.table.insert(network, owner)
                self._installed[network] = owner
        self.unowned = unowned
