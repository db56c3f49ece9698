"""Longest-prefix match from IP address to owner (WireGuard's cryptokey routing table).

WireGuard's allowedips (whitepaper §2) maps each peer's allowed networks to the peer: an
outgoing packet goes to the owner of the longest prefix containing its destination, and an
incoming packet is accepted only if the owner of its source is the sender.

Representation: per address family, one dict per prefix length, keyed by the network's
integer address. A lookup probes the distinct prefix lengths in use, longest first, so it
costs at most 33 (IPv4) or 129 (IPv6) dict probes however many peers there are, and in
practice only a handful: constant in the number of routes, like a trie, but every probe
is a C-level dict lookup. In front of that, each family remembers the answers it gave (up to
LOOKUP_CACHE_LIMIT addresses, forgotten whenever the table changes or the memo is full), since
the packets of a batch mostly share their addresses: one dict probe instead of several.
"""

import ipaddress

__all__ = ["AllowedIPs", "LOOKUP_CACHE_LIMIT"]

LOOKUP_CACHE_LIMIT = 4096
_UNKNOWN = object()


class _Family:
    def __init__(self, bits):
        self.bits = bits
        self.by_length = {}      # prefix length -> {network int: owner}
        self.lengths = ()        # prefix lengths in use, longest first
        self.memo = {}           # address int -> owner (or None) already looked up

    def _reindex(self):
        self.lengths = tuple(sorted((n for n, table in self.by_length.items() if table), reverse=True))
        self.memo.clear()

    def insert(self, network, owner):
        self.by_length.setdefault(network.prefixlen, {})[int(network.network_address)] = owner
        self._reindex()

    def remove(self, network, owner):
        table = self.by_length.get(network.prefixlen, {})
        key = int(network.network_address)
        if table.get(key) is owner:
            del table[key]
            self._reindex()

    def remove_owner(self, owner):
        for table in self.by_length.values():
            for key in [key for key, value in table.items() if value is owner]:
                del table[key]
        self._reindex()

    def lookup(self, address_int):
        owner = self.memo.get(address_int, _UNKNOWN)
        return self.remember(address_int) if owner is _UNKNOWN else owner

    def remember(self, address_int):
        owner = self._search(address_int)
        if len(self.memo) >= LOOKUP_CACHE_LIMIT:
            self.memo.clear()   # bounded: a flood of new addresses only costs the search
        self.memo[address_int] = owner
        return owner

    def _search(self, address_int):
        bits = self.bits
        for length in self.lengths:
            host_bits = bits - length
            owner = self.by_length[length].get((address_int >> host_bits) << host_bits)
            if owner is not None:
                return owner
        return None

    def covering(self, address_int, prefix_length):
        """Owner of the longest prefix of at most ``prefix_length`` bits holding the address."""
        bits = self.bits
        for length in self.lengths:
            if length <= prefix_length:
                host_bits = bits - length
                owner = self.by_length[length].get((address_int >> host_bits) << host_bits)
                if owner is not None:
                    return owner
        return None

    def entries(self):
        for length, table in self.by_length.items():
            for key, owner in table.items():
                yield length, key, owner


class AllowedIPs:
    def __init__(self):
        self._v4, self._v6 = _Family(32), _Family(128)
        self._families = {4: self._v4, 6: self._v6}

    def insert(self, network, owner):
        """Route ``network`` (an ip_network) to ``owner``; a later insert replaces the owner."""
        network = ipaddress.ip_network(network)
        self._families[network.version].insert(network, owner)

    def remove(self, network, owner):
        """Unroute ``network`` if ``owner`` still owns it (a mirrored route that went away)."""
        network = ipaddress.ip_network(network)
        self._families[network.version].remove(network, owner)

    def remove_owner(self, owner):
        for family in self._families.values():
            family.remove_owner(owner)

    def clear(self):
        for family in self._families.values():
            family.by_length.clear()
            family._reindex()

    def covering(self, network):
        """Owner of the most specific network in the table that contains all of ``network``."""
        return self._families[network.version].covering(int(network.network_address), network.prefixlen)

    def lookup(self, version, address_int):
        """Owner of the longest prefix containing the address, or None."""
        # Every packet asks once or twice: the family's memo is read here, without another call.
        family = self._v4 if version == 4 else self._v6
        owner = family.memo.get(address_int, _UNKNOWN)
        return family.remember(address_int) if owner is _UNKNOWN else owner

    def lookup_address(self, address):
        address = ipaddress.ip_address(address)
        return self.lookup(address.version, int(address))

    def networks_of(self, owner):
        result = []
        for version, family in self._families.items():
            for length, key, value in family.entries():
                if value is owner:
                    result.append(ipaddress.ip_network((key, length)) if version == 4
                                  else ipaddress.IPv6Network((key, length)))
        return sorted(result, key=lambda network: (network.version, network))
