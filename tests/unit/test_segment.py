"""Userspace GSO and checksum completion, checked with scapy (which recomputes checksums), and
the one Internet checksum against a word-by-word reference."""

import struct

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from tunrelay.datapath.segment import complete_checksum, to_packets
from tunrelay.wire.errors import MalformedPacket
from tunrelay.datapath.vnet import F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, VnetHeader
from tunrelay.wire.checksum import internet_checksum, ones_complement_sum


def header(flags=0, gso_type=0, gso_size=0, csum_start=0, csum_offset=0):
    return VnetHeader(struct.pack("<BBHHHH", flags, gso_type, 0, gso_size, csum_start, csum_offset))


def reference_sum(data, initial=0):
    """RFC 1071 section 4.1, word by word with end-around carry."""
    if len(data) % 2:
        data += b"\x00"
    total = initial
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
    return total


@given(st.binary(max_size=3000), st.integers(0, 0xFFFF))
def test_checksum_equals_rfc1071_word_by_word(data, initial):
    assert ones_complement_sum(data, initial) == reference_sum(data, initial)
    assert internet_checksum(data, initial) == ~reference_sum(data, initial) & 0xFFFF


def test_a_sum_of_all_ones_words_is_negative_zero_not_zero():
    assert ones_complement_sum(b"\xff\xff" * 3) == 0xFFFF and ones_complement_sum(bytes(6)) == 0


def partial(packet, version):
    """What the kernel hands us with NEEDS_CSUM: the pseudo-header sum in the TCP field."""
    raw = bytearray(bytes(packet))
    ip_length = (raw[0] & 0x0F) * 4 if version == 4 else 40
    tcp_length = len(raw) - ip_length
    if version == 4:
        pseudo = raw[12:20] + struct.pack("!BBH", 0, 6, tcp_length)
    else:
        pseudo = raw[8:40] + struct.pack("!I3xB", tcp_length, 6)
    folded = 0xFFFF - internet_checksum(bytes(pseudo))
    raw[ip_length + 16:ip_length + 18] = folded.to_bytes(2, "big")
    return bytes(raw), ip_length


@pytest.mark.parametrize("version", [4, 6])
def test_partial_checksum_is_completed(version):
    base = (IP(src="198.51.100.1", dst="198.51.100.2") if version == 4
            else IPv6(src="2001:db8::1", dst="2001:db8::2")) / TCP(sport=1, dport=2, seq=7) / (b"x" * 999)
    raw, ip_length = partial(base, version)
    done = complete_checksum(raw, header(F_NEEDS_CSUM, csum_start=ip_length, csum_offset=16))
    cls = IP if version == 4 else IPv6
    assert cls(done)[TCP].chksum == cls(bytes(base))[TCP].chksum


@pytest.mark.parametrize("version", [4, 6])
def test_checksum_offsets_into_the_ip_header_are_refused(version):
    # Found by the datapath fuzz target: offsets from a peer's virtio-net header pointing into
    # the IP header rewrote its total length after the length had been checked.
    base = (IP(src="198.51.100.1", dst="198.51.100.2") if version == 4
            else IPv6(src="2001:db8::1", dst="2001:db8::2")) / TCP(sport=1, dport=2) / b"x"
    raw, ip_length = partial(base, version)
    for start, offset in ((0, 2), (ip_length - 4, 0), (ip_length - 1, 1)):
        with pytest.raises(MalformedPacket, match="bad_vnet_checksum_offsets"):
            complete_checksum(raw, header(F_NEEDS_CSUM, csum_start=start, csum_offset=offset))
    with pytest.raises(MalformedPacket):
        complete_checksum(b"", header(F_NEEDS_CSUM, csum_start=0, csum_offset=0))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([4, 6]), st.integers(1, 60000), st.integers(200, 1448), st.sampled_from(["PA", "FPA", "A"]))
def test_segments_match_what_the_kernel_would_send(version, size, mss, flags):
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    ip = IP(src="198.51.100.1", dst="198.51.100.2", id=100) if version == 4 else IPv6(src="2001:db8::1", dst="2001:db8::2")
    super_packet, ip_length = partial(ip / TCP(sport=5201, dport=40000, seq=0xFFFFF000, flags=flags) / payload, version)
    gso = header(F_NEEDS_CSUM, GSO_TCPV4 if version == 4 else GSO_TCPV6, mss, ip_length, 16)
    segments = to_packets(gso, super_packet)
    assert len(segments) == (size + mss - 1) // mss
    rebuilt = b""
    cls = IP if version == 4 else IPv6
    for index, raw in enumerate(segments):
        packet = cls(raw)
        tcp = packet[TCP]
        recomputed = cls(bytes(_without_checksums(packet)))   # scapy fills checksums in afresh
        assert tcp.chksum == recomputed[TCP].chksum
        if version == 4:
            assert packet.id == (100 + index) & 0xFFFF and packet.len == len(raw)
            assert packet.chksum == recomputed[IP].chksum
        assert tcp.seq == (0xFFFFF000 + index * mss) & 0xFFFFFFFF
        last = index == len(segments) - 1
        assert ("F" in tcp.flags) == ("F" in flags and last)
        assert ("P" in tcp.flags) == ("P" in flags and last)
        assert len(bytes(tcp.payload)) <= mss
        rebuilt += bytes(tcp.payload)
    assert rebuilt == payload


def _without_checksums(packet):
    copy = packet.copy()
    copy[TCP].chksum = None
    if IP in copy:
        copy[IP].chksum = None
    return copy


def test_plain_packets_pass_untouched():
    packet = bytes(IP(src="198.51.100.1", dst="198.51.100.2") / TCP())
    assert to_packets(header(), packet) == [packet]


@pytest.mark.parametrize("gso_size", [0, 1, 47])
def test_a_gso_size_below_the_kernels_minimum_mss_is_refused(gso_size):
    from tunrelay.wire.errors import MalformedPacket

    raw, _ = partial(IP(src="198.51.100.1", dst="198.51.100.2") / TCP(sport=1, dport=2) / bytes(9000), 4)
    with pytest.raises(MalformedPacket, match="bad_gso"):
        to_packets(header(F_NEEDS_CSUM, GSO_TCPV4, gso_size, 20, 16), raw)
    assert len(to_packets(header(F_NEEDS_CSUM, GSO_TCPV4, 48, 20, 16), raw)) == 9000 // 48 + 1


@settings(max_examples=200)
@given(st.binary(max_size=1500), st.sampled_from([4, 6]))
def test_a_lone_udp_packets_partial_checksum_is_finished_as_scapy_computes_it(payload, version):
    from scapy.layers.inet import UDP

    from tunrelay.datapath.segment import finish_checksum
    from tunrelay.wire.checksum import pseudo_header_sum

    ip = IP(src="198.51.100.1", dst="198.51.100.2") if version == 4 else IPv6(src="2001:db8::1", dst="2001:db8::2")
    finished = bytes(ip / UDP(sport=5000, dport=5201) / payload)   # scapy: 0 is sent as 0xFFFF
    start = 20 if version == 4 else 40
    partial = bytearray(finished)
    addresses = (finished[12:16], finished[16:20]) if version == 4 else (finished[8:24], finished[24:40])
    partial[start + 6:start + 8] = pseudo_header_sum(*addresses, 17, len(finished) - start).to_bytes(2, "big")
    assert finish_checksum(bytes(partial), start, 6) == finished
