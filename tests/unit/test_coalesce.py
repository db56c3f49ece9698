"""Receive-side coalescing against a naive reference, with scapy as the checksum oracle.

The reference below parses every packet with scapy (not with the coalescer's offsets) and
applies wireguard-go's rules as they read; the coalescer must group exactly as it does, and
every coalesced write must be a packet scapy accepts: IPv4 header checksum, lengths, and a
TCP checksum equal to the one scapy computes over the merged bytes (the kernel verifies
that one, so a wrong segment must make it wrong).
"""

import random

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from tunrelay.constants import TCP_MAX_COALESCED_SEGMENTS, UDP_MAX_COALESCED_PAYLOAD
from tunrelay.datapath.coalesce import Coalescer
from tunrelay.datapath.headers import IPV4_HEAD, IPV4_HEAD_SIZE
from tunrelay.datapath.vnet import F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, VNET_HEADER, VnetHeader

A4, B4 = "198.51.100.2", "198.51.100.1"
A6, B6 = "2001:db8:1::2", "2001:db8:1::1"


def tcp_segment(seq, payload, version=4, sport=40000, ack=1, flags="A", ttl=64, tos=0, options=(), bad=False,
                urgent=0):
    ip = IP(src=A4, dst=B4, ttl=ttl, tos=tos, flags="DF") if version == 4 else IPv6(src=A6, dst=B6, hlim=ttl, tc=tos)
    raw = bytearray(bytes(ip / TCP(sport=sport, dport=5201, seq=seq, ack=ack, flags=flags, window=500,
                                   urgptr=urgent, options=list(options)) / payload))
    if bad:
        raw[-1] ^= 0x5A   # the payload no longer matches the checksum
    return bytes(raw)


def udp_datagram(payload, version=4, sport=5000, bad=False):
    ip = IP(src=A4, dst=B4) if version == 4 else IPv6(src=A6, dst=B6)
    raw = bytearray(bytes(ip / UDP(sport=sport, dport=6000) / payload))
    if bad:
        raw[-1] ^= 0x5A
    return bytes(raw)


def frames_of(writes):
    """(virtio-net header, merged frame) per write."""
    result = []
    for write in writes:
        frame = b"".join(bytes(buffer) for buffer in write)
        result.append((VnetHeader(frame), frame[VNET_HEADER:]))
    return result


def coalesce(packets, l2=0, parsed=False):
    """``parsed``: hand the coalescer each IPv4 packet's head as the receive path does."""
    coalescer = Coalescer(l2)
    for index, packet in enumerate(packets):
        head = None
        if parsed and not l2 and len(packet) >= IPV4_HEAD_SIZE and packet[0] == 0x45:
            head = IPV4_HEAD.unpack_from(packet)
        coalescer.add(packet, index, head)
    writes, owners = coalescer.take()
    return frames_of(writes), owners, coalescer


# ---- the naive reference -------------------------------------------------------------

def reference_groups(packets):
    """Lists of input indices, one per write, by the rules as wireguard-go states them."""
    groups, open_runs = [], {}
    for index, raw in enumerate(packets):
        packet = IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)
        tcp = packet.getlayer(TCP)
        ipv4 = isinstance(packet, IP)
        payload = len(bytes(tcp.payload)) if tcp is not None else 0
        eligible = (tcp is not None and payload > 0 and int(tcp.flags) in (0x10, 0x18)
                    and (not ipv4 or (packet.ihl == 5 and packet.frag == 0 and not packet.flags.MF))
                    and (ipv4 or packet.nh == 6))
        if not eligible:
            groups.append([index])
            continue
        key = (packet.src, packet.dst, tcp.sport, tcp.dport, tcp.ack)
        fields = ((packet.tos, packet.flags.DF, packet.ttl) if ipv4 else (packet.tc, packet.fl >> 16, packet.hlim),
                  tcp.dataofs, bytes(tcp)[20:tcp.dataofs * 4], tcp.urgptr)
        run = open_runs.get(key)
        if (run is not None and not run["closed"] and tcp.seq == run["next"] and fields == run["fields"]
                and payload <= run["size"] and run["length"] + payload <= 65535
                and len(run["members"]) < TCP_MAX_COALESCED_SEGMENTS):
            run["members"].append(index)
            run["next"] = (tcp.seq + payload) & 0xFFFFFFFF
            run["length"] += payload
            run["closed"] = int(tcp.flags) == 0x18 or payload < run["size"]
            continue
        if run is not None:
            run["closed"] = True
        if not _checksum_ok_ip(packet):   # only a sound head starts a run
            groups.append([index])
            continue
        run = {"members": [index], "next": (tcp.seq + payload) & 0xFFFFFFFF, "fields": fields, "size": payload,
               "length": len(raw), "closed": int(tcp.flags) == 0x18}
        open_runs[key] = run
        groups.append(run["members"])
    return groups


def _checksum_ok_ip(packet):
    if not isinstance(packet, IP):
        return True
    fresh = IP(bytes(packet))
    fresh.chksum = None
    return IP(bytes(fresh)).chksum == packet.chksum


def scapy_checksums_agree(frame):
    """The TCP (and IPv4 header) checksum in ``frame`` equals what scapy computes afresh."""
    cls = IP if frame[0] >> 4 == 4 else IPv6
    packet = cls(frame)
    copy = packet.copy()
    copy[TCP].chksum = None
    if cls is IP:
        copy.chksum = None
    fresh = cls(bytes(copy))
    return packet[TCP].chksum == fresh[TCP].chksum and (cls is not IP or packet.chksum == fresh.chksum)


# ---- properties ------------------------------------------------------------------------

OPTIONS = [(), [("NOP", None), ("NOP", None), ("Timestamp", (7, 9))], [("NOP", None), ("NOP", None), ("Timestamp", (8, 9))],
           [("MSS", 1400)]]

segments = st.lists(
    st.tuples(st.integers(0, 2),                 # flow (source port)
              st.integers(1, 1500),              # payload size
              st.sampled_from(["A", "A", "A", "PA", "SA", "FA"]),
              st.integers(0, 1),                 # ack variant
              st.booleans(),                     # in sequence (else a gap)
              st.sampled_from([0, 0, 0, 1, 2, 3])),   # options
    min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(segments, st.sampled_from([4, 6]), st.integers(0, 2**32 - 1), st.booleans())
def test_grouping_matches_the_reference_and_every_write_is_a_valid_packet(spec, version, first_seq, parsed):
    rng = random.Random(first_seq)
    next_seq = {}
    packets = []
    for flow, size, flags, ack, in_sequence, options in spec:
        seq = next_seq.get(flow, first_seq)
        if not in_sequence:
            seq = (seq + 1000) & 0xFFFFFFFF
        payload = bytes(rng.getrandbits(8) for _ in range(size))
        packets.append(tcp_segment(seq, payload, version, sport=40000 + flow, ack=1 + ack, flags=flags,
                                   options=OPTIONS[options]))
        next_seq[flow] = (seq + size) & 0xFFFFFFFF
    frames, owners, _ = coalesce(packets, parsed=parsed)
    groups = reference_groups(packets)
    assert owners == [group[0] for group in groups]
    for (header, frame), group in zip(frames, groups):
        if len(group) == 1:
            assert frame == packets[group[0]] and header.gso_type == 0 and header.flags == 0
            continue
        members = [IP(packets[i]) if version == 4 else IPv6(packets[i]) for i in group]
        merged = IP(frame) if version == 4 else IPv6(frame)
        assert header.gso_type == (GSO_TCPV4 if version == 4 else GSO_TCPV6)
        assert header.flags == 0            # a full checksum: the kernel verifies the run
        assert header.gso_size == len(bytes(members[0][TCP].payload))
        assert header.hdr_len == len(frame) - len(bytes(merged[TCP].payload))
        assert bytes(merged[TCP].payload) == b"".join(bytes(m[TCP].payload) for m in members)
        assert merged[TCP].seq == members[0][TCP].seq
        assert ("P" in merged[TCP].flags) == ("P" in members[-1][TCP].flags)
        assert scapy_checksums_agree(frame)


@pytest.mark.parametrize("parsed", [False, True])
@pytest.mark.parametrize("version", [4, 6])
def test_a_run_with_one_bad_segment_carries_a_checksum_the_kernel_will_refuse(version, parsed):
    packets = [tcp_segment(1000 + i * 1000, b"%03d" % i * 333 + b"x", version, bad=(i == 3)) for i in range(6)]
    frames, _, _ = coalesce(packets, parsed=parsed)
    assert len(frames) == 1 and not scapy_checksums_agree(frames[0][1])


@pytest.mark.parametrize("parsed", [False, True])
@pytest.mark.parametrize("size", [1, 3, 999, 1001, 1447])
def test_odd_payload_sizes_keep_the_checksum_right(size, parsed):
    timestamps = [("NOP", None), ("NOP", None), ("Timestamp", (123456, 654321))]
    packets = [tcp_segment(5 + i * size, bytes([i]) * size, options=timestamps) for i in range(5)]
    frames, _, _ = coalesce(packets, parsed=parsed)
    assert len(frames) == 1 and scapy_checksums_agree(frames[0][1])


def test_a_long_run_stops_at_one_ip_packets_limit():
    packets = [tcp_segment(i * 1400, bytes(1400)) for i in range(60)]
    frames, _, _ = coalesce(packets)
    assert [len(frame) <= 65535 for _, frame in frames] == [True] * len(frames) and len(frames) == 2
    assert sum(len(bytes(IP(frame)[TCP].payload)) for _, frame in frames) == 60 * 1400


@pytest.mark.parametrize("parsed", [False, True])
def test_tcp_runs_stop_at_a_bounded_number_of_members(parsed):
    # Tiny segments would otherwise put thousands of buffers in one writev (UIO_MAXIOV is 1024).
    count = 2 * TCP_MAX_COALESCED_SEGMENTS + 1
    frames, owners, _ = coalesce([tcp_segment(i * 10, bytes(10)) for i in range(count)], parsed=parsed)
    assert owners == [0, TCP_MAX_COALESCED_SEGMENTS, 2 * TCP_MAX_COALESCED_SEGMENTS]
    assert all(scapy_checksums_agree(frame) for _, frame in frames)


@pytest.mark.parametrize("parsed", [False, True])
def test_a_member_with_another_urgent_pointer_starts_its_own_run(parsed):
    packets = [tcp_segment(0, bytes(100)), tcp_segment(100, bytes(100), urgent=7), tcp_segment(200, bytes(100))]
    frames, owners, _ = coalesce(packets, parsed=parsed)
    assert owners == [0, 1, 2] and all(scapy_checksums_agree(frame) for _, frame in frames)
    assert reference_groups(packets) == [[0], [1], [2]]


@pytest.mark.parametrize("parsed", [False, True])
def test_options_ttl_and_tos_must_match(parsed):
    base = dict(options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
    packets = [tcp_segment(0, bytes(100), **base), tcp_segment(100, bytes(100), **base),
               tcp_segment(200, bytes(100), options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 3))]),
               tcp_segment(300, bytes(100), ttl=63), tcp_segment(400, bytes(100), tos=4)]
    frames, owners, _ = coalesce(packets, parsed=parsed)
    assert owners == [0, 2, 3, 4]


def test_a_head_with_a_bad_ipv4_header_checksum_is_written_alone():
    bad = bytearray(tcp_segment(0, bytes(100)))
    bad[10] ^= 0xFF
    frames, owners, _ = coalesce([bytes(bad), tcp_segment(100, bytes(100)), tcp_segment(200, bytes(100))])
    assert owners == [0, 1] and frames[0][1] == bytes(bad) and scapy_checksums_agree(frames[1][1])


def test_a_member_whose_header_checksum_alone_is_wrong_still_makes_a_sound_run():
    member = bytearray(tcp_segment(100, bytes(100)))
    member[10] ^= 0xFF   # every field the run keeps equals the head's
    frames, owners, _ = coalesce([tcp_segment(0, bytes(100)), bytes(member), tcp_segment(200, bytes(100))])
    assert owners == [0] and scapy_checksums_agree(frames[0][1])
    assert reference_groups([tcp_segment(0, bytes(100)), bytes(member), tcp_segment(200, bytes(100))]) == [[0, 1, 2]]


def test_udp_runs_are_verified_then_left_to_the_kernel_to_checksum():
    small = [udp_datagram(bytes([i]) * 64) for i in range(5)] + [udp_datagram(b"end")]
    frames, owners, _ = coalesce(small)
    assert owners == [0]
    header, frame = frames[0]
    assert header.gso_type == GSO_UDP_L4 and header.flags == F_NEEDS_CSUM and header.gso_size == 64
    assert (header.csum_start, header.csum_offset) == (20, 6)
    assert bytes(IP(frame)[UDP].payload) == b"".join(bytes([i]) * 64 for i in range(5)) + b"end"


def test_udp_runs_stop_at_the_kernels_segment_limit():
    from tunrelay.constants import UDP_MAX_COALESCED_SEGMENTS

    frames, owners, _ = coalesce([udp_datagram(bytes(64)) for _ in range(3 * UDP_MAX_COALESCED_SEGMENTS)])
    assert owners == [0, UDP_MAX_COALESCED_SEGMENTS, 2 * UDP_MAX_COALESCED_SEGMENTS]


def test_udp_with_a_bad_checksum_or_too_large_is_written_alone():
    packets = [udp_datagram(bytes(64)), udp_datagram(bytes(64), bad=True), udp_datagram(bytes(64)),
               udp_datagram(bytes(UDP_MAX_COALESCED_PAYLOAD + 1)), udp_datagram(bytes(UDP_MAX_COALESCED_PAYLOAD + 1))]
    _, owners, _ = coalesce(packets)
    assert owners == [0, 1, 3, 4]   # 2 joined 0; the bad one and the large ones stand alone


def test_tap_frames_coalesce_per_mac_pair_and_keep_their_ethernet_header():
    ether = bytes(Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01", type=0x0800))
    other = bytes(Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:01", type=0x0800))
    packets = [ether + tcp_segment(i * 100, bytes(100)) for i in range(3)] + [other + tcp_segment(300, bytes(100))]
    frames, owners, _ = coalesce(packets, l2=14)
    assert owners == [0, 3]
    header, frame = frames[0]
    assert frame[:14] == ether and header.hdr_len == 14 + 40 and scapy_checksums_agree(frame[14:])


def test_a_refused_kind_is_not_coalesced_again():
    coalescer = Coalescer()
    for i in range(3):
        coalescer.add(tcp_segment(i * 100, bytes(100)), None)
    writes, _ = coalescer.take()
    assert Coalescer.packets_of(writes[0]) is not None
    assert coalescer.refused(writes[0]) == "TCP"
    for i in range(3):
        coalescer.add(tcp_segment(300 + i * 100, bytes(100)), None)
    assert len(coalescer.take()[0]) == 3
