"""The demux: validation and drop counting, the TcpLayer contract, counters, fuzzing."""

import struct

import pytest
from hypothesis import given, settings, strategies as st
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, IPv6, fragment, raw

from stack_helpers import (
    BROADCAST, OUR_IP, OUR_MAC, PEER_IP, PEER_MAC, FakeTcp, arp_request,
    assert_checksums_valid, frame, ip_bytes, ip_packets, learned_tap, mac_bytes,
    make_interface, ping, reassemble)
from tunrelay.stack import limits
from tunrelay.stack.interface import ResponderInterface
from tunrelay.wire.checksum import internet_checksum
from tunrelay.wire.errors import MalformedPacket

MODES = ["tun", "tap"]


def _interface(mode, **kwargs):
    return learned_tap(**kwargs) if mode == "tap" else make_interface("tun", **kwargs)


def _refix_checksum(packet):
    packet = bytearray(packet)
    header_length = (packet[0] & 15) * 4
    packet[10:12] = b"\x00\x00"
    packet[10:12] = struct.pack("!H", internet_checksum(bytes(packet[:header_length])))
    return bytes(packet)


def _tcp_segment(source=OUR_IP, destination=PEER_IP, payload=b"", **fields):
    """A TCP segment with a valid checksum, as the TCP core would produce."""
    return raw(IP(src=source, dst=destination) / TCP(**fields) / payload)[20:]


# -- malformed input is dropped and counted ------------------------------------------------------

def _corrupt(packet, offset, value):
    buf = bytearray(raw(packet))
    buf[offset:offset + len(value)] = value
    return bytes(buf)


MALFORMED = {
    "ipv4_bad_checksum": lambda: _corrupt(ping(), 10, b"\xde\xad"),
    "ipv4_truncated": lambda: raw(ping())[:19],
    "ipv4_bad_total_length": lambda: _refix_checksum(_corrupt(ping(), 2, b"\x0f\xff")),
    "ipv4_bad_ihl": lambda: _refix_checksum(_corrupt(ping(), 0, b"\x43")),
    "ipv4_bad_version": lambda: _refix_checksum(_corrupt(ping(), 0, b"\x75")),
    "ipv4_bad_fragment_offset": lambda: raw(ping(b"x" * 100, frag=8185)),
    "icmp_truncated": lambda: raw(IP(src=PEER_IP, dst=OUR_IP, proto=1) / b"\x08\x00\xf7"),
    "udp_bad_length": lambda: raw(IP(src=PEER_IP, dst=OUR_IP) / UDP(len=200) / b"x"),
    "ipv4_not_for_us": lambda: raw(ping(dst="10.9.0.3")),
    "ipv4_martian_source": lambda: raw(ping(src="127.0.0.1")),
    "ipv6_not_for_us": lambda: raw(IPv6() / UDP()),  # no IPv6 address here
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reason", sorted(MALFORMED))
def test_malformed_packets_are_dropped_and_counted(mode, reason):
    interface = _interface(mode)
    packet = MALFORMED[reason]()
    link_frame = packet if mode == "tun" else raw(
        Ether(dst=OUR_MAC, src=PEER_MAC, type=0x86DD if reason.startswith("ipv6") else 0x0800)
        / packet)
    assert interface.frame_received(link_frame, 0.0) == []
    assert interface.drops == {reason: 1}


def test_empty_tun_frame_is_counted():
    interface = make_interface("tun")
    assert interface.frame_received(b"", 0.0) == []
    assert interface.drops == {"ipv4_truncated": 1}


@pytest.mark.parametrize("link_frame,reason", [
    (b"\x00" * 13, "ethernet_truncated"),
    (mac_bytes(OUR_MAC) + mac_bytes(PEER_MAC) + b"\x00\x20" + b"x" * 40,
     "ethernet_not_ethernet_ii"),
    (raw(Ether(dst="02:00:00:00:00:77", src=PEER_MAC) / ping()), "ethernet_not_for_us"),
    (raw(Ether(dst=OUR_MAC, src=OUR_MAC) / ping()), "ethernet_bad_source"),
    (raw(Ether(dst=OUR_MAC, src=BROADCAST) / ping()), "ethernet_bad_source"),
    (raw(Ether(dst=OUR_MAC, src=PEER_MAC, type=0x88CC) / b"lldp"), "ethernet_unknown_ethertype"),
    (raw(Ether(dst=BROADCAST, src=PEER_MAC, type=0x0806) / b"\x00\x01"), "arp_truncated"),
])
def test_bad_ethernet_frames_are_dropped_and_counted(link_frame, reason):
    interface = learned_tap()
    assert interface.frame_received(link_frame, 0.0) == []
    assert interface.drops == {reason: 1}


def test_ethernet_padding_is_trimmed():
    interface = learned_tap()
    out = interface.frame_received(frame("tap", ping(b"")) + b"\x00" * 14, 0.0)
    [reply] = ip_packets("tap", out)
    assert reply.len == 28 and raw(reply[ICMP].payload) == b""


# -- the TcpLayer contract ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_tcp_segments_are_handed_over_unverified_with_packed_addresses(mode):
    tcp = FakeTcp()
    interface = _interface(mode, tcp=tcp)
    segment = raw(IP(src=PEER_IP, dst=OUR_IP) / TCP(sport=5555, dport=22, flags="S"))[20:]
    packet = IP(src=PEER_IP, dst=OUR_IP, proto=6) / segment
    corrupted = segment[:16] + b"\x00\x00" + segment[18:]      # checksum zeroed: still handed over
    assert interface.frame_received(frame(mode, packet), 3.0) == []
    interface.frame_received(frame(mode, IP(src=PEER_IP, dst=OUR_IP, proto=6) / corrupted), 4.0)
    padded = frame(mode, packet) + b"\x00" * 10
    interface.frame_received(padded, 5.0)
    assert tcp.received == [
        (ip_bytes(PEER_IP), ip_bytes(OUR_IP), segment, 3.0),
        (ip_bytes(PEER_IP), ip_bytes(OUR_IP), corrupted, 4.0),
        (ip_bytes(PEER_IP), ip_bytes(OUR_IP), segment, 5.0),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_outgoing_segments_are_wrapped_with_df_ttl_and_counter_id(mode):
    tcp = FakeTcp()
    interface = _interface(mode, tcp=tcp)
    syn_ack = _tcp_segment(sport=22, dport=5555, flags="SA", seq=1, ack=2)
    tcp.outgoing = [(ip_bytes(OUR_IP), ip_bytes(PEER_IP), syn_ack)]
    out = interface.frame_received(frame(mode, IP(src=PEER_IP, dst=OUR_IP) / TCP(flags="S")), 0.0)
    [packet] = ip_packets(mode, out)
    assert_checksums_valid(packet)
    assert (packet.src, packet.dst, packet.proto, packet.ttl, packet.id) == (
        OUR_IP, PEER_IP, 6, limits.IPV4_DEFAULT_TTL, 1000)
    assert packet.flags.DF and raw(packet[TCP]) == syn_ack
    if mode == "tap":
        assert Ether(out[0]).dst == PEER_MAC


def test_oversized_outgoing_segment_is_fragmented_without_df():
    tcp = FakeTcp()
    interface = make_interface("tun", tcp=tcp, mtu=576)
    segment = _tcp_segment(payload=b"d" * 1000, sport=22, dport=5555, flags="PA")
    tcp.outgoing = [(ip_bytes(OUR_IP), ip_bytes(PEER_IP), segment)]
    packets = [IP(f) for f in interface.poll(0.0)]
    assert len(packets) == 2 and not any(p.flags.DF for p in packets)
    [whole] = reassemble(packets)
    assert_checksums_valid(whole)
    assert raw(whole[TCP]) == segment


def test_tap_output_waits_for_arp_resolution():
    tcp = FakeTcp()
    interface = make_interface("tap", tcp=tcp)
    tcp.outgoing = [(ip_bytes(OUR_IP), ip_bytes(PEER_IP), _tcp_segment(flags="R"))]
    [request] = interface.poll(0.0)
    assert Ether(request)[ARP].pdst == PEER_IP
    reply = raw(Ether(dst=OUR_MAC, src=PEER_MAC) /
                ARP(op=2, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=OUR_MAC, pdst=OUR_IP))
    [released] = interface.frame_received(reply, 0.1)
    assert Ether(released)[TCP].flags == "R"


def test_poll_and_deadlines_reach_the_tcp_layer():
    tcp = FakeTcp()
    interface = make_interface("tun", tcp=tcp)
    assert interface.next_deadline() is None
    tcp.deadline = 7.5
    assert interface.next_deadline() == 7.5
    first = fragment(IP(src=PEER_IP, dst=OUR_IP) / UDP() / (b"f" * 2000), 1480)[0]
    interface.frame_received(raw(first), 1.0)          # a reassembly deadline at 31.0
    assert interface.next_deadline() == 7.5
    tcp.deadline = None
    assert interface.next_deadline() == 1.0 + limits.REASSEMBLY_TIMEOUT
    interface.poll(7.5)
    assert tcp.polled == [7.5]


def test_without_a_tcp_layer_tcp_is_dropped_and_counted():
    interface = make_interface("tun")
    assert interface.frame_received(raw(IP(src=PEER_IP, dst=OUR_IP) / TCP()), 0.0) == []
    assert interface.drops == {"tcp_no_layer": 1}


def test_tcp_in_a_link_broadcast_is_dropped():
    tcp = FakeTcp()
    interface = learned_tap(tcp=tcp)
    packet = IP(src=PEER_IP, dst=OUR_IP) / TCP(flags="S")
    assert interface.frame_received(frame("tap", packet, eth_dst=BROADCAST), 0.0) == []
    assert tcp.received == [] and interface.drops["tcp_link_broadcast"] == 1


def test_malformed_packet_raised_by_the_tcp_layer_is_counted():
    class Strict(FakeTcp):
        def segment_received(self, source, destination, segment, now):
            raise MalformedPacket("bad_checksum")

    interface = make_interface("tun", tcp=Strict())
    assert interface.frame_received(raw(IP(src=PEER_IP, dst=OUR_IP) / TCP()), 0.0) == []
    assert interface.drops == {"tcp_bad_checksum": 1}


@pytest.mark.parametrize("source,destination", [
    ("10.9.0.5", PEER_IP), (OUR_IP, "255.255.255.255"), (OUR_IP, "0.0.0.0")])
def test_outgoing_segments_with_wrong_addresses_are_dropped(source, destination):
    tcp = FakeTcp()
    interface = make_interface("tun", tcp=tcp)
    tcp.outgoing = [(ip_bytes(source), ip_bytes(destination), _tcp_segment())]
    assert interface.poll(0.0) == []
    assert interface.drops == {"tcp_bad_outgoing_address": 1}


def test_outgoing_segment_too_large_for_ipv4_is_dropped():
    tcp = FakeTcp()
    interface = make_interface("tun", tcp=tcp)
    tcp.outgoing = [(ip_bytes(OUR_IP), ip_bytes(PEER_IP), b"\x00" * 65516)]
    assert interface.poll(0.0) == []
    assert interface.drops == {"tx_too_big": 1}


# -- counters and construction -------------------------------------------------------------------

def test_counters_track_rx_and_tx():
    interface = make_interface("tap")
    request = arp_request()
    [reply] = interface.frame_received(request, 0.0)
    interface.frame_received(b"\x00", 0.0)
    counters = interface.counters()
    assert (counters["rx_frames"], counters["rx_bytes"]) == (2, len(request) + 1)
    assert (counters["tx_frames"], counters["tx_bytes"]) == (1, len(reply))
    assert counters["drops"] == {"ethernet_truncated": 1}


def test_fresh_counters_have_zero_rx_tx():
    counters = make_interface("tun").counters()
    assert [counters[k] for k in ("rx_frames", "rx_bytes", "tx_frames", "tx_bytes")] == [0] * 4
    assert counters["drops"] == {}


@pytest.mark.parametrize("args", [
    ("eth", OUR_IP, None, 1500),
    ("tap", OUR_IP, None, 1500),
    ("tap", OUR_IP, mac_bytes(BROADCAST), 1500),
    ("tun", OUR_IP, None, 67),
    ("tun", OUR_IP, None, 65536),
    ("tun", "224.0.0.1", None, 1500),
])
def test_constructor_rejects_bad_configuration(args):
    with pytest.raises(ValueError):
        ResponderInterface(*args)


def test_ip_id_counter_wraps():
    interface = ResponderInterface("tun", OUR_IP, mtu=1500, ip_id_start=0xFFFF)
    ids = [IP(interface.frame_received(raw(ping(seq=n)), 0.0)[0]).id for n in range(2)]
    assert ids == [0xFFFF, 0]


# -- fuzzing: bad input never raises -------------------------------------------------------------

class _ChattyTcp(FakeTcp):
    def segment_received(self, source, destination, segment, now):
        super().segment_received(source, destination, segment, now)
        self.outgoing.append((destination, source, segment))


def _fuzz_targets():
    return {"tun": make_interface("tun", tcp=_ChattyTcp()),
            "tap": learned_tap(tcp=_ChattyTcp())}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(MODES), st.floats(0, 100))
def test_random_bytes_never_raise(data, mode, now):
    interface = _fuzz_targets()[mode]
    interface.frame_received(data, now)
    interface.poll(now + 60.0)


SEEDS = [
    raw(ping(b"seed")), raw(IP(src=PEER_IP, dst=OUR_IP) / UDP(dport=9) / b"u"),
    raw(IP(src=PEER_IP, dst=OUR_IP) / TCP()), raw(IP(src=PEER_IP, dst=OUR_IP, proto=99)),
    raw(ping(b"x" * 64, flags="MF")), raw(ping(b"x" * 16, frag=3)),
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(SEEDS))), st.lists(
    st.tuples(st.integers(0, 100), st.integers(0, 255)), max_size=4),
    st.booleans(), st.sampled_from(MODES))
def test_mutated_valid_packets_never_raise(seed, flips, fix_checksum, mode):
    buf = bytearray(SEEDS[seed])
    for position, value in flips:
        if position < len(buf):
            buf[position] = value
    packet = bytes(buf)
    if fix_checksum and len(packet) >= 20 and 20 <= (packet[0] & 15) * 4 <= len(packet):
        packet = _refix_checksum(packet)
    interface = _fuzz_targets()[mode]
    link_frame = packet if mode == "tun" else mac_bytes(OUR_MAC) + mac_bytes(PEER_MAC) + \
        b"\x08\x00" + packet
    interface.frame_received(link_frame, 0.0)
    interface.frame_received(arp_request()[:14] + packet[:28], 0.0)
    interface.poll(100.0)
