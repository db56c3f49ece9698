"""Offload-sized frames: the virtio-net header, checksum completion and userspace segmentation.

With IFF_VNET_HDR and TUNSETOFFLOAD(CSUM|TSO4|TSO6) a tun device hands us TCP
"super-packets" of up to 64 KiB, each behind a 10-byte ``struct virtio_net_hdr``
(virtio spec §5.1.6: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset; host
byte order, little-endian here). One read then carries what would otherwise be ~45
packets, and one write of a super-packet with its header lets the kernel deliver it
whole (GRO-style) instead of paying its receive path per segment.

Peers that cannot take super-packets (UDP, Ethernet, wireguard-go, simpletun) still get
ordinary packets: ``segment`` cuts a super-packet into MSS-sized TCP segments exactly as
the kernel's GSO would (RFC 9293 §3.1 header; IPv4 ID incremented per segment, FIN/PSH on
the last segment only, CWR on the first only), and ``complete_checksum`` finishes a
partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM: the field holds the pseudo-header sum and
the rest is ours to add, RFC 1071).
"""

import struct

from tunrelay.wire.errors import MalformedPacket

__all__ = ["VNET_HEADER", "PLAIN_HEADER", "VnetHeader", "complete_checksum", "segment", "to_packets"]

VNET_HEADER = 10
PLAIN_HEADER = bytes(VNET_HEADER)      # no offload: a finished, ordinary packet
F_NEEDS_CSUM = 1
GSO_NONE, GSO_TCPV4, GSO_TCPV6 = 0, 1, 4
GSO_ECN = 0x80
_HEADER = struct.Struct("<BBHHHH")
_FIN, _PSH, _CWR = 0x01, 0x08, 0x80


class VnetHeader:
    __slots__ = ("flags", "gso_type", "hdr_len", "gso_size", "csum_start", "csum_offset")

    def __init__(self, raw):
        if len(raw) < VNET_HEADER:
            raise MalformedPacket("truncated_vnet_header")
        (self.flags, self.gso_type, self.hdr_len, self.gso_size,
         self.csum_start, self.csum_offset) = _HEADER.unpack_from(raw)


def checksum(data, initial=0):
    """RFC 1071 checksum field value of ``data`` plus an unfolded ``initial`` sum.

    The 16-bit one's-complement sum of big-endian words is congruent to the whole byte
    string read as one integer, modulo 0xFFFF; Python computes that in C, far faster than
    a loop over words. (0x0000 and 0xFFFF are the same one's-complement zero.)
    """
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    return 0xFFFF - (int.from_bytes(data, "big") + initial) % 0xFFFF


def complete_checksum(packet, header):
    """Finish a partial checksum as the kernel's skb_checksum_help does: the field already
    holds the pseudo-header sum, so sum from csum_start to the end and store the result."""
    start, offset = header.csum_start, header.csum_start + header.csum_offset
    if offset + 2 > len(packet):
        raise MalformedPacket("bad_vnet_checksum_offsets")
    packet = bytearray(packet)
    packet[offset:offset + 2] = checksum(packet[start:]).to_bytes(2, "big")
    return bytes(packet)


def _pseudo_sum(packet, version, tcp_length):
    if version == 4:
        pseudo = packet[12:20] + struct.pack("!BBH", 0, 6, tcp_length)
    else:
        pseudo = packet[8:40] + struct.pack("!I3xB", tcp_length, 6)
    return int.from_bytes(pseudo, "big") % 0xFFFF


def segment(packet, header):
    """Cut a TCP super-packet into segments of at most ``gso_size`` payload bytes."""
    version = packet[0] >> 4
    if version == 4:
        ip_length = (packet[0] & 0x0F) * 4
    elif version == 6:
        ip_length = 40  # extension headers never appear in the kernel's TSO output
    else:
        raise MalformedPacket("not_ip")
    protocol = packet[9] if version == 4 else packet[6]
    if len(packet) < ip_length + 20 or protocol != 6:
        raise MalformedPacket("gso_not_tcp")
    tcp_length = (packet[ip_length + 12] >> 4) * 4
    headers_end = ip_length + tcp_length
    mss = header.gso_size
    if mss <= 0 or headers_end > len(packet):
        raise MalformedPacket("bad_gso")
    ip_header = bytearray(packet[:ip_length])
    tcp_header = bytearray(packet[ip_length:headers_end])
    flags = tcp_header[13]
    sequence = int.from_bytes(tcp_header[4:8], "big")
    identification = int.from_bytes(ip_header[4:6], "big") if version == 4 else 0
    payload = memoryview(packet)[headers_end:]
    segments = []
    count = (len(payload) + mss - 1) // mss
    for index in range(count):
        chunk = payload[index * mss:(index + 1) * mss]
        last = index == count - 1
        tcp = bytearray(tcp_header)
        tcp[4:8] = ((sequence + index * mss) & 0xFFFFFFFF).to_bytes(4, "big")
        tcp[13] = flags & ~((0 if last else _FIN | _PSH) | (0 if index == 0 else _CWR))
        tcp[16:18] = b"\x00\x00"
        length = tcp_length + len(chunk)
        body = bytes(tcp) + bytes(chunk)
        tcp_sum = checksum(body, _pseudo_sum(packet, version, length))
        ip = bytearray(ip_header)
        if version == 4:
            ip[2:4] = (ip_length + length).to_bytes(2, "big")
            ip[4:6] = ((identification + index) & 0xFFFF).to_bytes(2, "big")
            ip[10:12] = b"\x00\x00"
            ip[10:12] = checksum(bytes(ip)).to_bytes(2, "big")
        else:
            ip[4:6] = length.to_bytes(2, "big")
        segments.append(bytes(ip) + body[:16] + tcp_sum.to_bytes(2, "big") + body[18:])
    return segments


def to_packets(header, packet):
    """Ordinary, finished packets for a peer that cannot take offload frames."""
    if header.gso_type & ~GSO_ECN in (GSO_TCPV4, GSO_TCPV6):
        return segment(packet, header)
    if header.flags & F_NEEDS_CSUM:
        return [complete_checksum(packet, header)]
    return [packet]
