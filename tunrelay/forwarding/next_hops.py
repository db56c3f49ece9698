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
  routes, as strict reverse-path filtering (RFC 3704 §2.2) does in the kernel. It is then
  only as strong as the routing protocol's own authentication and filters;
- a route never takes space that the config gives another peer: if the most specific
  configured network covering the route's prefix belongs to a different peer, the route is
  not followed (counted as ``conflicting``), so a route injected into the daemon cannot
  let one peer spoof another's configured addresses;
- a multipath (ECMP) route is sent over its first next hop, and every hop's peer may send
  from its prefix (``also_allowed``, read only when the main table says no: the common
  path pays nothing);
- a route whose gateway no peer owns (``unowned``), one without a gateway (``dev tr0``
  only, e.g. ``interface.routes``), multicast routes, and routes of other tables are not
  followed.

The model is pure: ``replace_routes`` takes the whole current set (the adapter dumps the
table after each burst of change notices) and ``peers_changed`` re-resolves after a reload.
"""

import ipaddress

__all__ = ["NextHopRoutes", "MAX_MIRRORED_ROUTES"]

MAX_MIRRORED_ROUTES = 8192   # bounded: a full BGP table belongs in a router, not in this dict


class NextHopRoutes:
    """Mirrored kernel routes (network -> gateways), applied to ``table`` (an AllowedIPs)."""

    def __init__(self, table):
        from tunrelay.forwarding.allowed_ips import AllowedIPs

        self.table = table
        self._configured = None        # AllowedIPs of the configured allowed_ips alone
        self._configured_networks = set()
        self._offered = None           # the last routes offered, as given: an unchanged dump is no work
        self._routes = {}              # ip_network -> (ip_address, ...) of its gateways
        self._installed = {}           # ip_network -> peer we routed it to
        self._multipath = AllowedIPs()   # ip_network -> frozenset of every hop's peer (ECMP only)
        self.unowned = 0               # routes whose gateway no peer owns, at the last update
        self.conflicting = 0           # routes inside another peer's configured network
        self.truncated = 0             # routes beyond MAX_MIRRORED_ROUTES in the last dump

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
        """The kernel's routes via a gateway on our device now: a list of (network, gateways),
        ``gateways`` a tuple of addresses, the first the one traffic takes."""
        routes = list(routes)
        if routes == self._offered:
            return
        self._offered = routes
        wanted = {}
        for network, gateways in routes[:MAX_MIRRORED_ROUTES]:
            network = ipaddress.ip_network(network)
            if not network.is_multicast:
                wanted[network] = tuple(ipaddress.ip_address(gateway) for gateway in gateways)
        self.truncated = max(0, len(routes) - MAX_MIRRORED_ROUTES)
        self._routes = wanted
        self._apply()

    def also_allowed(self, peer, version, address):
        """True if ``peer`` is a later hop of a multipath route holding ``address``."""
        owners = self._multipath.lookup(version, address)
        return owners is not None and peer in owners

    def routes(self):
        """(network, gateway, peer name or None) of every mirrored route, for status."""
        return [(network, gateways[0], getattr(self._installed.get(network), "name", None))
                for network, gateways in sorted(self._routes.items(), key=lambda item: (item[0].version, item[0]))]

    def _owner(self, network, gateways):
        """The peer the route goes to, or a reason it goes nowhere."""
        owners = [self._configured.lookup_address(gateway) for gateway in gateways
                  if gateway.version == network.version]
        owners = [owner for owner in owners if owner is not None]
        if not owners:
            return None, "unowned"
        covering = self._configured.covering(network)
        if covering is not None and covering is not owners[0]:
            return None, "conflicting"
        if network in self._configured_networks:
            return None, None   # the config says the same already
        # Inside the route's own peer's configured space, its later hops get nothing either.
        return (owners if covering is None else owners[:1]), None

    def _apply(self):
        if self._configured is None:
            return
        target, multipath = {}, []
        counts = {"unowned": 0, "conflicting": 0}
        for network, gateways in self._routes.items():
            owners, reason = self._owner(network, gateways)
            if reason is not None:
                counts[reason] += 1
            elif owners is not None:
                target[network] = owners[0]
                if len(set(owners)) > 1:
                    multipath.append((network, frozenset(owners)))
        for network, owner in list(self._installed.items()):
            if target.get(network) is not owner:
                self.table.remove(network, owner)
                del self._installed[network]
        for network, owner in target.items():
            if self._installed.get(network) is not owner:
                self.table.insert(network, owner)
                self._installed[network] = owner
        self._multipath.clear()
        for network, owners in multipath:
            self._multipath.insert(network, owners)
        self.unowned, self.conflicting = counts["unowned"], counts["conflicting"]
