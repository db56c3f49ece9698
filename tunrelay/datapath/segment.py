"""Cutting a TCP super-packet into finished segments (userspace GSO), and completing checksums.

With TUNSETOFFLOAD(CSUM|TSO4|TSO6) the kernel hands the relay TCP super-packets of up to
64 KiB whose checksum holds only the pseudo-header sum (see ``tunrelay.datapath.vnet``).
A peer that takes only ordinary packets (every peer but a tunrelay that opted into
super-packets) gets them cut here exactly as the kernel's GSO would (RFC 9293 §3.1):
the header length from the TCP data offset; per segment the IPv4 identification plus the
segment's index, the total length (IPv6: payload length) and header checksum fixed, the
sequence number advanced by ``gso_size`` per segment, FIN and PSH on the last segment
only, CWR on the first only, and a full TCP checksum (RFC 1071).

``complete_checksum`` finishes a lone packet marked F_NEEDS_CSUM the way the kernel's
``skb_checksum_help`` does.
"""

from tunrelay.constants import MIN_GSO_SIZE
from tunrelay.wire.checksum import fold, internet_checksum, ones_complement_sum, pseudo_header_sum
from tunrelay.wire.errors import MalformedPacket

from .vnet import F_NEEDS_CSUM, GSO_ECN, GSO_TCPV4, GSO_TCPV6

__all__ = ["complete_checksum", "finish_checksum", "segment", "to_packets"]

_FIN, _PSH, _CWR = 0x01, 0x08, 0x80
_PROTO_TCP = 6


def complete_checksum(packet, header):
    """Finish a partial checksum: the field holds the pseudo-header sum; sum from csum_start to
    the end and store the result. The sum must start past the IP header: offsets pointing
    into it (a peer's header is untrusted) would rewrite fields already checked, such as the
    total length, behind the check's back."""
    version = packet[0] >> 4 if len(packet) else 0
    ip_header = (packet[0] & 0x0F) * 4 if version == 4 else 40 if version == 6 else None
    if ip_header is None or header.csum_start < ip_header:
        raise MalformedPacket("bad_vnet_checksum_offsets")
    return finish_checksum(packet, header.csum_start, header.csum_offset)


def finish_checksum(data, start, offset):
    """``data`` with the checksum at ``start + offset``, summed from ``start`` to the end,
    completed: one copy, no per-word loop (see ``tunrelay.wire.checksum``). A result of zero
    is stored as 0xFFFF, its one's-complement twin: UDP reads 0 as "no checksum" (RFC 768)."""
    field = start + offset
    if field + 2 > len(data):
        raise MalformedPacket("bad_vnet_checksum_offsets")
    covered = memoryview(data)[start:]
    total = int.from_bytes(covered, "big")
    if len(covered) & 1:
        total <<= 8   # the odd last byte, padded with zero
    checksum = 0xFFFF - fold(total) or 0xFFFF
    return b"".join((data[:field], checksum.to_bytes(2, "big"), data[field + 2:]))


def segment(packet, header):
    """Cut a TCP super-packet into segments of at most ``gso_size`` payload bytes."""
    version = packet[0] >> 4
    if version == 4:
        ip_length = (packet[0] & 0x0F) * 4
        source, destination = packet[12:16], packet[16:20]
    elif version == 6:
        ip_length = 40  # extension headers never appear in the kernel's TSO output
        source, destination = packet[8:24], packet[24:40]
    else:
        raise MalformedPacket("not_ip")
    protocol = packet[9] if version == 4 else packet[6]
    if len(packet) < ip_length + 20 or protocol != _PROTO_TCP:
        raise MalformedPacket("gso_not_tcp")
    tcp_length = (packet[ip_length + 12] >> 4) * 4
    headers_end = ip_length + tcp_length
    mss = header.gso_size
    # A tiny gso_size would turn one read into thousands of segments (CVE-2019-11477's lesson).
    if mss < MIN_GSO_SIZE or tcp_length < 20 or headers_end > len(packet):
        raise MalformedPacket("bad_gso")
    ip_header = bytes(packet[:ip_length])
    tcp_header = bytearray(packet[ip_length:headers_end])
    tcp_header[16:18] = b"\x00\x00"
    flags = tcp_header[13]
    sequence = int.from_bytes(tcp_header[4:8], "big")
    identification = int.from_bytes(ip_header[4:6], "big") if version == 4 else 0
    payload = memoryview(packet)[headers_end:]
    segments = []
    count = max(1, (len(payload) + mss - 1) // mss)
    for index in range(count):
        chunk = payload[index * mss:(index + 1) * mss]
        last = index == count - 1
        tcp = bytearray(tcp_header)
        tcp[4:8] = ((sequence + index * mss) & 0xFFFFFFFF).to_bytes(4, "big")
        tcp[13] = flags & ~((0 if last else _FIN | _PSH) | (0 if index == 0 else _CWR))
        length = tcp_length + len(chunk)
        pseudo = pseudo_header_sum(source, destination, _PROTO_TCP, length)
        tcp[16:18] = internet_checksum(chunk, ones_complement_sum(tcp, pseudo)).to_bytes(2, "big")
        ip = bytearray(ip_header)
        if version == 4:
            ip[2:4] = (ip_length + length).to_bytes(2, "big")
            ip[4:6] = ((identification + index) & 0xFFFF).to_bytes(2, "big")
            ip[10:12] = b"\x00\x00"
            ip[10:12] = internet_checksum(ip).to_bytes(2, "big")
        else:
            ip[4:6] = length.to_bytes(2, "big")
        segments.append(b"".join((ip, tcp, chunk)))
    return segments


def to_packets(header, packet):
    """Ordinary, finished packets for a peer that cannot take offload frames."""
    if header.gso_type & ~GSO_ECN in (GSO_TCPV4, GSO_TCPV6):
        return segment(packet, header)
    if header.flags & F_NEEDS_CSUM:
        return [complete_checksum(packet, header)]
    return [bytes(packet)]
