"""The minimum the forwarding plane must know about a frame: is it sane, and where does it go.

For tun frames that is the IP version and the source and destination addresses
(RFC 791 §3.1, RFC 8200 §3); the packet is trimmed to its declared length so link padding
never reaches the device. For tap frames it is the Ethernet header (IEEE 802.3): 14 bytes,
destination then source MAC. Anything shorter or self-inconsistent is malformed and is
dropped before it reaches the device or a peer.
"""

__all__ = ["MalformedFrame", "ip_route_key", "ethernet_addresses", "ETHERNET_HEADER"]

ETHERNET_HEADER = 14
_IPV4_MIN = 20
_IPV6_HEADER = 40


class MalformedFrame(ValueError):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def ip_route_key(packet):
    """Return (version, source int, destination int, trimmed packet) for an IP packet."""
    size = len(packet)
    if not size:
        raise MalformedFrame("empty_packet")
    version = packet[0] >> 4
    if version == 4:
        if size < _IPV4_MIN:
            raise MalformedFrame("truncated_ip_header")
        header_length = (packet[0] & 0x0F) * 4
        total = (packet[2] << 8) | packet[3]
        if header_length < _IPV4_MIN or total < header_length or total > size:
            raise MalformedFrame("bad_ip_length")
        return (4, int.from_bytes(packet[12:16], "big"), int.from_bytes(packet[16:20], "big"),
                packet if total == size else packet[:total])
    if version == 6:
        if size < _IPV6_HEADER:
            raise MalformedFrame("truncated_ip_header")
        total = _IPV6_HEADER + ((packet[4] << 8) | packet[5])
        if total > size:
            raise MalformedFrame("bad_ip_length")
        return (6, int.from_bytes(packet[8:24], "big"), int.from_bytes(packet[24:40], "big"),
                packet if total == size else packet[:total])
    raise MalformedFrame("not_ip")


def ethernet_addresses(frame):
    """Return (destination MAC, source MAC) of an Ethernet frame."""
    if len(frame) < ETHERNET_HEADER:
        raise MalformedFrame("truncated_ethernet_header")
    return bytes(frame[0:6]), bytes(frame[6:12])
