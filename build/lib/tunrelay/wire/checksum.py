"""Internet checksum (RFC 1071) and the TCP/UDP pseudo-header sums (RFC 793 §3.1, RFC 8200 §8.1).

The one's-complement sum is computed over big-endian 16-bit words; an odd trailing byte is
padded with zero. ``internet_checksum`` returns the value to store in a header; a header
whose stored checksum is correct makes ``internet_checksum`` over the whole header return 0.
"""

import struct

__all__ = ["ones_complement_sum", "internet_checksum", "pseudo_header_sum"]


def ones_complement_sum(data, initial=0):
    """Folded 16-bit one's-complement sum of ``data`` plus ``initial`` (not inverted)."""
    data = bytes(data)
    if len(data) % 2:
        data += b"\x00"
    total = initial + sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data, initial=0):
    """The checksum field value for ``data`` (with its checksum field zeroed)."""
    return ~ones_complement_sum(data, initial) & 0xFFFF


def pseudo_header_sum(source, destination, protocol, length):
    """Unfolded-safe sum of the IPv4 or IPv6 pseudo-header.

    ``source`` and ``destination`` are packed addresses (4 or 16 bytes); the result is
    passed as ``initial`` to :func:`internet_checksum` over the transport segment.
    """
    if len(source) == 4:
        header = source + destination + struct.pack("!BBH", 0, protocol, length)
    else:
        header = source + destination + struct.pack("!I3xB", length, protocol)
    return ones_complement_sum(header)
