"""Kernel routes via a gateway choose the peer, and the source check follows them."""

import ipaddress
from types import SimpleNamespace

from tunrelay.forwarding.allowed_ips import AllowedIPs
from tunrelay.forwarding.next_hops import NextHopRoutes


class FakePeer:
    """What the model reads of a relay Peer: its name and configured allowed_ips (hashable, as Peers are)."""

    def __init__(self, name, networks):
        self.name = name
        self.config = SimpleNamespace(allowed_ips=tuple(ipaddress.ip_network(network) for network in networks))


def peer(name, *networks):
    return FakePeer(name, networks)


def owner(table, address):
    return table.lookup_address(address)


def configured(*peers):
    table = AllowedIPs()
    for each in peers:
        for network in each.config.allowed_ips:
            if not network.is_multicast:
                table.insert(network, each)
    routes = NextHopRoutes(table)
    routes.peers_changed(peers)
    return table, routes


B = peer("b", "198.51.100.2/32", "224.0.0.5/32")
C = peer("c", "198.51.100.3/32", "2001:db8:1::3/128")


def test_a_route_via_a_peers_address_goes_to_that_peer_and_is_allowed_from_it():
    table, routes = configured(B, C)
    assert owner(table, "203.0.113.1") is None
    routes.replace_routes([("203.0.113.0/24", ("198.51.100.2",)), ("2001:db8:9::/48", ("2001:db8:1::3",))])
    assert owner(table, "203.0.113.1") is B and owner(table, "2001:db8:9::1") is C
    assert routes.routes()[0] == (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_address("198.51.100.2"), "b")


def test_a_moved_route_moves_and_a_removed_one_goes():
    table, routes = configured(B, C)
    routes.replace_routes([("203.0.113.0/24", ("198.51.100.2",))])
    routes.replace_routes([("203.0.113.0/24", ("198.51.100.3",))])
    assert owner(table, "203.0.113.1") is C
    routes.replace_routes([])
    assert owner(table, "203.0.113.1") is None
    assert owner(table, "198.51.100.3") is C   # the configured network stays


def test_a_route_never_hands_one_peers_configured_addresses_to_another():
    hub = peer("hub", "198.51.100.9/32", "203.0.113.0/24")
    table, routes = configured(B, hub)
    routes.replace_routes([("203.0.113.0/24", ("198.51.100.2",)), ("203.0.113.128/25", ("198.51.100.2",)),
                           ("203.0.113.8/29", ("198.51.100.9",))])
    assert owner(table, "203.0.113.1") is hub     # same network: the config's
    assert owner(table, "203.0.113.200") is hub   # inside the hub's network: B may not take it
    assert owner(table, "203.0.113.9") is hub     # the hub's own route inside its own network: fine
    assert routes.conflicting == 2
    # A route that covers more than another's network takes only what nobody configured.
    routes.replace_routes([("0.0.0.0/0", ("198.51.100.2",))])
    assert owner(table, "192.0.2.7") is B and owner(table, "203.0.113.1") is hub


def test_a_multipath_route_goes_over_its_first_hop_and_every_hop_may_send_from_it():
    table, routes = configured(B, C)
    routes.replace_routes([("203.0.113.0/24", ("198.51.100.3", "198.51.100.2"))])
    address = int(ipaddress.ip_address("203.0.113.1"))
    assert owner(table, "203.0.113.1") is C
    assert routes.also_allowed(B, 4, address) and routes.also_allowed(C, 4, address)
    assert not routes.also_allowed(B, 4, int(ipaddress.ip_address("192.0.2.1")))
    routes.replace_routes([("203.0.113.0/24", ("198.51.100.3",))])
    assert not routes.also_allowed(B, 4, address)


def test_multicast_routes_are_not_mirrored_and_an_unchanged_dump_is_no_work():
    table, routes = configured(B)
    offered = [("224.0.0.0/4", ("198.51.100.2",)), ("203.0.113.0/24", ("198.51.100.2",))]
    routes.replace_routes(offered)
    assert [str(network) for network, _, _ in routes.routes()] == ["203.0.113.0/24"]
    table.insert(ipaddress.ip_network("203.0.113.0/24"), C)   # a change the model did not make...
    routes.replace_routes(list(offered))                       # ...is not redone for the same dump
    assert owner(table, "203.0.113.1") is C


def test_gateways_resolve_against_the_config_only_and_unowned_routes_are_counted():
    table, routes = configured(B, C)
    routes.replace_routes([("203.0.113.0/24", ("198.51.100.2",)),
                           # its gateway is inside a mirrored route, not a configured network
                           ("192.0.2.0/24", ("203.0.113.7",)),
                           ("198.18.0.0/15", ("198.51.100.77",)),
                           ("2001:db8:5::/48", ("198.51.100.2",))])   # families disagree: ignored
    assert owner(table, "192.0.2.1") is None and owner(table, "198.18.0.1") is None
    assert owner(table, "2001:db8:5::1") is None
    assert routes.unowned == 3


def test_a_reload_resolves_again_and_removes_what_no_longer_resolves():
    table, routes = configured(B, C)
    routes.replace_routes([("203.0.113.0/24", ("198.51.100.2",))])
    # B's address moves to C in the new config.
    table.remove_owner(B)
    moved_b = peer("b", "198.51.100.20/32")
    moved_c = peer("c", "198.51.100.3/32", "198.51.100.2/32")
    table.remove_owner(C)
    for each in (moved_b, moved_c):
        for network in each.config.allowed_ips:
            table.insert(network, each)
    routes.peers_changed([moved_b, moved_c])
    assert owner(table, "203.0.113.1") is moved_c
    routes.peers_changed([moved_b])
    assert owner(table, "203.0.113.1") is None


def test_a_mirrored_network_that_becomes_configured_keeps_the_configured_owner():
    table, routes = configured(B, C)
    routes.replace_routes([("203.0.113.0/24", ("198.51.100.2",))])
    table.insert(ipaddress.ip_network("203.0.113.0/24"), C)   # the reload configured it for C
    routes.peers_changed([B, peer("c", "198.51.100.3/32", "203.0.113.0/24")])
    assert owner(table, "203.0.113.1") is C


def test_the_mirror_is_bounded():
    from tunrelay.forwarding import next_hops

    table, routes = configured(B)
    first = int(ipaddress.ip_address("198.18.0.0"))
    offered = [("%s/32" % ipaddress.ip_address(first + i), ("198.51.100.2",))
               for i in range(next_hops.MAX_MIRRORED_ROUTES + 5)]
    routes.replace_routes(offered)
    assert routes.truncated == 5 and len(routes.routes()) == next_hops.MAX_MIRRORED_ROUTES
