"""Ethernet II framing (IEEE 802.3 / RFC 894).

A frame is destination MAC, source MAC, a 16-bit EtherType and the payload; the FCS is not
seen on a tap device. Values below 0x0600 in the type field are 802.3 lengths (LLC/SNAP),
which this relay never carries, so they are rejected rather than misread as a protocol.
Minimum-size padding is left in the payload: the network layer trims it using its own
length field (RFC 894).
"""

import struct
from dataclasses import dataclass

from tunrelay.wire.errors import MalformedPacket

__all__ = [
    "ETHERTYPE_IPV4", "ETHERTYPE_ARP", "ETHERTYPE_IPV6", "ETHERTYPE_VLAN",
    "HEADER_LEN", "BROADCAST_MAC", "ZERO_MAC",
    "EthernetHeader", "is_multicast_mac", "is_unicast_mac", "format_mac",
]

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_IPV6 = 0x86DD
_MIN_ETHERTYPE = 0x0600   # smaller values are 802.3 length fields

HEADER_LEN = 14
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
_HEADER = struct.Struct("!6s6sH")


def is_multicast_mac(mac):
    """True for group addresses (the I/G bit), which includes broadcast."""
    return bool(mac[0] & 1)


def is_unicast_mac(mac):
    """True for an individual, non-zero address: the only kind a host may claim."""
    return not is_multicast_mac(mac) and mac != ZERO_MAC


def format_mac(mac):
    return ":".join("%02x" % b for b in mac)


@dataclass(frozen=True)
class EthernetHeader:
    destination: bytes
    source: bytes
    ethertype: int

    @classmethod
    def parse(cls, frame):
        """Return ``(header, payload)``; payload may still carry minimum-size padding."""
        if len(frame) < HEADER_LEN:
            raise MalformedPacket("truncated")
        destination, source, ethertype = _HEADER.unpack_from(frame)
        if ethertype < _MIN_ETHERTYPE:
            raise MalformedPacket("not_ethernet_ii")
        return cls(destination, source, ethertype), bytes(frame[HEADER_LEN:])

    def emit(self, payload):
        if len(self.destination) != 6 or len(self.source) != 6:
            raise ValueError("MAC addresses are 6 bytes")
        return _HEADER.pack(self.destination, self.source, self.ethertype) + bytes(payload)

    @property
    def is_link_broadcast(self):
        """Broadcast or multicast: RFC 1122 §3.2.2 forbids ICMP errors about these."""
        return is_multicast_mac(self.destination)
