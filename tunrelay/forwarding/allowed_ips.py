"""Longest-prefix match from IP address to owner (WireGuard's cryptokey routing table).

WireGuard's allowedips (whitepaper §2) maps each peer's allowed networks to the peer: an
outgoing packet goes to the owner of the longest prefix containing its destination, and an
incoming packet is accepted only if the owner of its source is the sender.

Representation: per address family, one dict per prefix length, keyed by the network's
integer address. A lookup probes the distinct prefix lengths in use, longest first, so it
costs at most 33 (IPv4) or 129 (IPv6) dict probes however many peers there are, and in
practice only a handful: constant in the number of routes, like a trie, but every probe
is a C-level dict lookup.
"""

import ipaddress

__all__ = ["AllowedIPs"]


class _Family:
    def __init__(self, bits):
        self.bits = bits
        self.by_length = {}      # prefix length -> {network int: owner}
        self.lengths = ()        # prefix lengths in use, longest first

    def _reindex(self):
        self.lengths = tuple(sorted((n for n, table in self.by_length.items() if table), reverse=True))

    def insert(self, network, owner):
        self.by_length.setdefault(network.prefixlen, {})[int(network.network_address)] = owner
        self._reindex()

    def remove_owner(self, owner):
        for table in self.by_length.values():
            for key in [key for key, value in table.items() if value is owner]:
                del table[key]
        self._reindex()

    def lookup(self, address_int):
        bits = self.bits
        for length in self.lengths:
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
        self._families = {4: _Family(32), 6: _Family(128)}

    def insert(self, network, owner):
        """Route ``network`` (an ip_network) to ``owner``; a later insert replaces the owner."""
        network = ipaddress.ip_network(network)
        self._families[network.version].insert(network, owner)

    def remove_owner(self, owner):
        for family in self._families.values():
            family.remove_owner(owner)

    def lookup(self, version, address_int):
        """Owner of the longest prefix containing the address, or None."""
        return self._families[version].lookup(address_int)

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
