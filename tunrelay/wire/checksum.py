"""Internet checksum (RFC 1071) and the TCP/UDP pseudo-header sums (RFC 9293 §3.1, RFC 8200 §8.1).

The one's-complement sum of big-endian 16-bit words is congruent to the whole byte string
read as one integer, modulo 0xFFFF (because 2**16 ≡ 1), so Python computes it in C with
``int.from_bytes`` and one modulo instead of a loop over words. The same congruence gives
the two identities the data path uses to combine sums without touching the bytes again:
sums add, and a sum taken one byte out of step (an odd offset) is the sum times 256.

An odd trailing byte is padded with zero. ``ones_complement_sum`` is the folded sum (never
0 for data that is not all zero, as RFC 1071's end-around carry gives 0xFFFF there);
``internet_checksum`` is the value to store in a header: a header whose stored checksum
is correct makes ``internet_checksum`` over the whole header return 0.
"""

import struct

__all__ = ["ones_complement_sum", "internet_checksum", "pseudo_header_sum", "fold"]

_IPV4_PSEUDO_TAIL = struct.Struct("!BBH")
_IPV6_PSEUDO_TAIL = struct.Struct("!I3xB")


def fold(total):
    """Fold an unfolded non-negative sum to 16 bits as one's-complement addition would."""
    folded = total % 0xFFFF
    return 0xFFFF if folded == 0 and total else folded


def ones_complement_sum(data, initial=0):
    """Folded 16-bit one's-complement sum of ``data`` plus an unfolded ``initial`` (not inverted)."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    return fold(int.from_bytes(data, "big") + initial)


def internet_checksum(data, initial=0):
    """The checksum field value for ``data`` (with its checksum field zeroed)."""
    return 0xFFFF - ones_complement_sum(data, initial)


def pseudo_header_sum(source, destination, protocol, length):
    """Folded sum of the IPv4 or IPv6 pseudo-header.

    ``source`` and ``destination`` are packed addresses (4 or 16 bytes); the result is
    passed as ``initial`` to :func:`internet_checksum` over the transport segment, or
    stored as it is in the checksum field of a packet whose checksum is left to offload.
    """
    if len(source) == 4:
        tail = _IPV4_PSEUDO_TAIL.pack(0, protocol, length)
    else:
        tail = _IPV6_PSEUDO_TAIL.pack(length, protocol)
    return fold(int.from_bytes(bytes(source) + bytes(destination) + tail, "big"))
