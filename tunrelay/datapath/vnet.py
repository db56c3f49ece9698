"""The virtio-net header that leads every read and write of a tun/tap opened with IFF_VNET_HDR.

``struct virtio_net_hdr`` (virtio spec §5.1.6; Linux include/uapi/linux/virtio_net.h) is 10
bytes in host byte order (little-endian here): flags, gso_type, hdr_len, gso_size,
csum_start, csum_offset. On a read it says what the kernel left for us to do: a
``gso_type`` other than NONE is a super-packet to cut into ``gso_size``-byte segments, and
F_NEEDS_CSUM means the checksum field holds only the pseudo-header sum and the rest,
from ``csum_start``, is ours to add. On a write it tells the kernel the same about what we
hand it, which is how one write can carry a whole coalesced TCP or UDP run.

An all-zero header is an ordinary, finished packet in both directions.
"""

import struct

from tunrelay.wire.errors import MalformedPacket

__all__ = ["VNET_HEADER", "PLAIN_HEADER", "F_NEEDS_CSUM", "GSO_NONE", "GSO_TCPV4", "GSO_UDP_L4", "GSO_TCPV6",
           "GSO_ECN", "VnetHeader", "pack"]

VNET_HEADER = 10
PLAIN_HEADER = bytes(VNET_HEADER)
F_NEEDS_CSUM = 1
GSO_NONE, GSO_TCPV4, GSO_UDP_L4, GSO_TCPV6 = 0, 1, 5, 4
GSO_ECN = 0x80
_HEADER = struct.Struct("<BBHHHH")


def pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset):
    return _HEADER.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


class VnetHeader:
    __slots__ = ("flags", "gso_type", "hdr_len", "gso_size", "csum_start", "csum_offset")

    def __init__(self, raw):
        if len(raw) < VNET_HEADER:
            raise MalformedPacket("truncated_vnet_header")
        (self.flags, self.gso_type, self.hdr_len, self.gso_size,
         self.csum_start, self.csum_offset) = _HEADER.unpack_from(raw)

    @property
    def is_plain(self):
        return not self.flags and not self.gso_type
