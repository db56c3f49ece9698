"""Longest-prefix match, checked against a naive reference on random tables."""

import ipaddress

from hypothesis import given, settings, strategies as st

from tunrelay.forwarding.allowed_ips import AllowedIPs


def naive_lookup(table, address):
    best = None
    for network, owner in table.items():
        if address.version == network.version and address in network:
            if best is None or network.prefixlen > best[0].prefixlen:
                best = (network, owner)
    return best[1] if best else None


def networks(version):
    bits = 32 if version == 4 else 128
    return st.builds(
        lambda value, length: ipaddress.ip_network((value >> (bits - length) << (bits - length), length)),
        st.integers(0, 2 ** bits - 1), st.integers(0, bits))


@settings(max_examples=200)
@given(st.lists(st.tuples(st.one_of(networks(4), networks(6)), st.integers(0, 9)), max_size=40),
       st.lists(st.one_of(st.integers(0, 2 ** 32 - 1).map(ipaddress.IPv4Address),
                          st.integers(0, 2 ** 128 - 1).map(ipaddress.IPv6Address)), max_size=40))
def test_matches_naive_reference(entries, addresses):
    table = {}
    trie = AllowedIPs()
    for network, owner in entries:
        table[network] = owner
        trie.insert(network, owner)
    for network, _ in entries:  # addresses inside the networks, not only random ones
        addresses.append(network.network_address)
        addresses.append(network.broadcast_address)
    for address in addresses:
        assert trie.lookup_address(address) == naive_lookup(table, address)


def test_remove_owner_and_networks_of():
    table = AllowedIPs()
    b, c = object(), object()
    table.insert("198.51.100.0/24", b)
    table.insert("198.51.100.7/32", c)
    table.insert("2001:db8::/64", c)
    assert table.lookup_address("198.51.100.7") is c
    assert [str(n) for n in table.networks_of(c)] == ["198.51.100.7/32", "2001:db8::/64"]
    table.remove_owner(c)
    assert table.lookup_address("198.51.100.7") is b
    assert table.lookup_address("2001:db8::1") is None



def test_remembered_answers_follow_every_change_and_stay_bounded():
    from tunrelay.forwarding.allowed_ips import LOOKUP_CACHE_LIMIT

    table = AllowedIPs()
    table.insert("198.51.100.0/24", "wide")
    assert table.lookup_address("198.51.100.7") == "wide"
    table.insert("198.51.100.7/32", "narrow")      # a longer prefix arrives: the memo must not answer
    assert table.lookup_address("198.51.100.7") == "narrow"
    table.remove_owner("narrow")
    assert table.lookup_address("198.51.100.7") == "wide"
    assert table.lookup_address("203.0.113.1") is None
    table.insert("203.0.113.0/24", "late")          # a remembered miss is forgotten too
    assert table.lookup_address("203.0.113.1") == "late"
    for host in range(3 * LOOKUP_CACHE_LIMIT):      # a flood of new addresses
        table.lookup(4, 0x0A000000 + host)
    assert len(table._families[4].memo) <= LOOKUP_CACHE_LIMIT
