"""The IPv6 layer against scapy: echo, fragments both ways, extension headers, ICMPv6 errors."""

import pytest
from hypothesis import given, settings, strategies as st
from scapy.all import (
    UDP, ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ParamProblem,
    ICMPv6TimeExceeded, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting, Ether, HBHOptUnknown, PadN, Raw, defragment6, fragment6, raw)
from scapy.layers.inet import TCP

from stack_helpers import (
    OUR_IP6, PEER_IP6, FakeTcp, assert_icmpv6_checksum_valid, frame6, interface6,
    ip6_bytes, ip6_packets, neighbour_solicitation, ping6)
from tunrelay.stack import limits
from tunrelay.stack.tcp import TcpStack

MODES = ["tun", "tap"]


def _send(interface, mode, packet, now=0.0):
    return ip6_packets(mode, interface.frame_received(frame6(mode, packet), now))


def _one_error(mode, out, icmp_type):
    [error] = out
    assert_icmpv6_checksum_valid(error)
    assert (error.src, error.dst, error.hlim) == (OUR_IP6, PEER_IP6, 64)
    assert error.haslayer(icmp_type), error.summary()
    return error


def _chain(header, count):
    chain = header()
    for _ in range(count - 1):
        chain = chain / header()
    return chain


def _fragments(packet, size):
    return [IPv6(raw(piece)) for piece in fragment6(packet, size)]


# -- echo -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_echo_request_is_answered(mode):
    interface = interface6(mode)
    [reply] = _send(interface, mode, ping6(b"hello six", ident=7, seq=9, tc=0x20))
    assert_icmpv6_checksum_valid(reply)
    echo = reply[ICMPv6EchoReply]
    assert (reply.src, reply.dst, reply.hlim, reply.tc) == (OUR_IP6, PEER_IP6, 64, 0x20)
    assert (echo.id, echo.seq, echo.data) == (7, 9, b"hello six")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", ["in_order", "reversed"])
def test_fragmented_ping_gets_a_fragmented_reply_within_the_mtu(mode, order):
    interface = interface6(mode, mtu=1280)
    request = IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(id=0x1234) / \
        ICMPv6EchoRequest(id=1, seq=2, data=bytes(range(256)) * 12)
    pieces = _fragments(request, 1280)
    assert len(pieces) == 3
    if order == "reversed":
        pieces.reverse()
    out = []
    for piece in pieces:
        out += _send(interface, mode, piece)
    assert all(len(raw(packet)) <= 1280 for packet in out) and len(out) == 3
    [whole] = [p for p in [defragment6(out)] if p is not None]
    echo = IPv6(raw(whole))[ICMPv6EchoReply]
    assert echo.data == bytes(range(256)) * 12 and (echo.id, echo.seq) == (1, 2)
    assert interface.stats["ipv6_reassembled"] == 1 and interface.stats["ipv6_fragments_sent"] == 3


def test_an_atomic_fragment_is_the_whole_packet():
    interface = interface6("tun")
    packet = IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(offset=0, m=0, id=5) / \
        ICMPv6EchoRequest(id=3, seq=4)
    [reply] = _send(interface, "tun", packet)
    assert reply[ICMPv6EchoReply].id == 3 and interface.stats["ipv6_reassembled"] == 0


def test_exact_duplicate_fragments_still_reassemble_but_overlaps_discard():
    interface = interface6("tun")
    request = IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(id=1) / \
        ICMPv6EchoRequest(data=b"d" * 2000)
    first, second = _fragments(request, 1280)
    assert _send(interface, "tun", first) == [] and _send(interface, "tun", first) == []
    assert len(_send(interface, "tun", second)) == 2
    # The same, but the second fragment also carries the last 8 bytes of the first: RFC 5722.
    request[IPv6ExtHdrFragment].id = 2
    first, second = _fragments(request, 1280)
    overlap = raw(first)[-8:]
    later = second.copy()
    later[IPv6ExtHdrFragment].offset -= 1
    later[IPv6ExtHdrFragment].remove_payload()
    later = IPv6(raw(later / Raw(overlap + raw(second[IPv6ExtHdrFragment].payload))))
    assert _send(interface, "tun", first) == [] and _send(interface, "tun", later) == []
    assert interface.drops["reasm6_overlap"] == 1 and len(interface.ipv6.reassembler) == 0


def test_reassembly_timeout_sends_time_exceeded_about_the_first_fragment():
    interface = interface6("tun")
    request = IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(id=9) / \
        ICMPv6EchoRequest(data=b"t" * 2000)
    first, _second = _fragments(request, 1280)
    _send(interface, "tun", first, now=1.0)
    assert interface.next_deadline() == 1.0 + limits.IPV6_REASSEMBLY_TIMEOUT
    [error] = ip6_packets("tun", interface.poll(1.0 + limits.IPV6_REASSEMBLY_TIMEOUT))
    exceeded = error[ICMPv6TimeExceeded]
    assert exceeded.code == 1 and raw(error)[48:] == raw(first)[:1280 - 48]
    assert interface.drops["reasm6_timeout"] == 1


def test_no_time_exceeded_without_the_first_fragment():
    interface = interface6("tun")
    request = IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(id=9) / \
        ICMPv6EchoRequest(data=b"t" * 2000)
    _send(interface, "tun", _fragments(request, 1280)[1])
    assert interface.poll(100.0) == [] and interface.drops["reasm6_timeout"] == 1


# -- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_udp_draws_port_unreachable_quoting_the_packet(mode):
    interface = interface6(mode)
    probe = IPv6(src=PEER_IP6, dst=OUR_IP6) / UDP(sport=5000, dport=33434) / b"probe"
    error = _one_error(mode, _send(interface, mode, probe), ICMPv6DestUnreach)
    assert error[ICMPv6DestUnreach].code == 4
    assert raw(error[ICMPv6DestUnreach].payload) == raw(probe)
    assert interface.drops["udp_port_closed"] == 1


def test_udp_without_a_checksum_is_dropped():
    interface = interface6("tun")
    probe = raw(IPv6(src=PEER_IP6, dst=OUR_IP6) / UDP(sport=1, dport=2, chksum=0) / b"x")
    assert interface.frame_received(probe, 0.0) == []
    assert interface.drops == {"udp_missing_checksum": 1}


def _parameter_problem(out, code, pointer):
    error = _one_error("tun", out, ICMPv6ParamProblem)
    problem = error[ICMPv6ParamProblem]
    assert (problem.code, problem.ptr) == (code, pointer), problem.summary()
    return problem


@pytest.mark.parametrize("packet,code,pointer,reason", [
    (IPv6(nh=253) / (b"x" * 8), 1, 6, "ipv6_unknown_protocol"),
    (IPv6() / IPv6ExtHdrDestOpt(nh=253) / (b"x" * 8), 1, 40, "ipv6_unknown_protocol"),
    (IPv6() / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / ICMPv6EchoRequest(), 1, 40,
     "ipv6_hop_by_hop_not_first"),
    (IPv6() / IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8::7"]) /
     ICMPv6EchoRequest(), 0, 42, "ipv6_routing_header"),
    (IPv6() / IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=0x83, optdata=b"ab")]) /
     ICMPv6EchoRequest(), 2, 42, "ipv6_unrecognized_option"),
    (IPv6() / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0"), HBHOptUnknown(otype=0xC2, optdata=b"abcd")])
     / ICMPv6EchoRequest(), 2, 45, "ipv6_unrecognized_option"),
])
def test_headers_rfc8200_refuses_draw_parameter_problem(packet, code, pointer, reason):
    interface = interface6("tun")
    packet.src, packet.dst = PEER_IP6, OUR_IP6
    problem = _parameter_problem(_send(interface, "tun", IPv6(raw(packet))), code, pointer)
    assert raw(problem.payload) == raw(packet)
    assert interface.drops == {reason: 1}


def test_options_that_ask_to_be_skipped_are_and_a_spent_routing_header_is_ignored():
    interface = interface6("tun")
    packet = IPv6(src=PEER_IP6, dst=OUR_IP6) / \
        IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=0x1E, optdata=b"skip")]) / \
        IPv6ExtHdrRouting(segleft=0, addresses=["2001:db8::7"]) / ICMPv6EchoRequest(id=11)
    [reply] = _send(interface, "tun", packet)
    assert reply[ICMPv6EchoReply].id == 11


def test_an_option_asking_for_a_silent_discard_gets_it():
    interface = interface6("tun")
    packet = IPv6(src=PEER_IP6, dst=OUR_IP6) / \
        IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x5E, optdata=b"x")]) / ICMPv6EchoRequest()
    assert _send(interface, "tun", packet) == [] and interface.drops == {"ipv6_unrecognized_option": 1}


def test_option_type_10_is_answered_even_to_multicast_and_11_is_not():
    for otype, answered in ((0x83, True), (0xC3, False)):
        interface = interface6("tun")
        packet = IPv6(src=PEER_IP6, dst="ff02::1") / \
            IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=otype, optdata=b"x")]) / ICMPv6EchoRequest()
        out = _send(interface, "tun", packet)
        assert bool(out) == answered, otype
        if answered:
            assert out[0][ICMPv6ParamProblem].code == 2


def test_fragment_rules_of_rfc8200_draw_parameter_problem():
    interface = interface6("tun")
    odd = IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(m=1, id=1, nh=58) / (b"x" * 13)
    _parameter_problem(_send(interface, "tun", odd), 0, 4)
    too_far = IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(offset=8190, m=0, id=2, nh=58) / (b"x" * 64)
    _parameter_problem(_send(interface, "tun", too_far), 0, 42)
    # RFC 7112: the first fragment must hold the whole header chain.
    short = IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(m=1, id=3, nh=60) / \
        (b"\x3a\x20" + b"\x00" * 6)
    _parameter_problem(_send(interface, "tun", short), 3, 0)
    assert interface.drops == {"ipv6_bad_fragment_length": 1, "ipv6_bad_fragment_offset": 1,
                               "ipv6_incomplete_header_chain": 1}


@pytest.mark.parametrize("packet,reason", [
    (raw(IPv6(src=PEER_IP6, dst=OUR_IP6, nh=0) / (b"\x3a\x05" + b"\x00" * 6)), "ipv6_truncated_extension_header"),
    (raw(IPv6(src=PEER_IP6, dst=OUR_IP6) / _chain(IPv6ExtHdrDestOpt, 9) / ICMPv6EchoRequest()),
     "ipv6_too_many_extension_headers"),
    (raw(IPv6(src=PEER_IP6, dst=OUR_IP6, nh=60) / (b"\x3a\x00\x01\x09" + b"\x00" * 4)),
     "ipv6_bad_option_length"),
    (raw(IPv6(src=PEER_IP6, dst=OUR_IP6))[:39], "ipv6_truncated"),
    (raw(IPv6(src=PEER_IP6, dst=OUR_IP6, plen=100)), "ipv6_bad_payload_length"),
    (raw(IPv6(src=PEER_IP6, dst=OUR_IP6, nh=59)), "ipv6_no_next_header"),
    (raw(ping6(dst="2001:db8::77")), "ipv6_not_for_us"),
    (raw(ping6(dst="ff02::2")), "ipv6_not_for_us"),
    (raw(ping6(src="ff02::1")), "ipv6_martian_source"),
    (raw(ping6(src=OUR_IP6)), "ipv6_martian_source"),
    (raw(ping6(src="::")), "ipv6_martian_source"),
    (raw(ping6(dst="ff02::1")), "icmpv6_multicast_echo"),
    (raw(ping6())[:-1] + b"\x00", "icmpv6_bad_checksum"),
])
def test_malformed_ipv6_is_dropped_and_counted(packet, reason):
    interface = interface6("tun")
    assert interface.frame_received(packet, 0.0) == []
    assert interface.drops == {reason: 1}


def test_no_error_about_an_icmpv6_error_nor_to_multicast():
    interface = interface6("tun")
    error = IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(id=4, m=1) / \
        ICMPv6DestUnreach() / (b"e" * 1400)
    first = _fragments(error, 1280)[0]
    _send(interface, "tun", first)
    assert interface.poll(1000.0) == [] and interface.drops["icmpv6_error_about_error"] == 1
    udp = IPv6(src=PEER_IP6, dst="ff02::1") / UDP(dport=9)
    assert _send(interface, "tun", udp) == [] and interface.drops["icmpv6_error_about_multicast"] == 1


def test_errors_are_rate_limited():
    interface = interface6("tun")
    sent = sum(len(_send(interface, "tun", IPv6(src=PEER_IP6, dst=OUR_IP6) / UDP(dport=port)))
               for port in range(1, 31))
    assert sent == limits.ICMPV6_ERROR_BURST
    assert interface.drops["icmpv6_error_rate_limited"] == 30 - limits.ICMPV6_ERROR_BURST
    assert len(_send(interface, "tun", IPv6(src=PEER_IP6, dst=OUR_IP6) / UDP(dport=1), now=1.0)) == 1


def test_an_oversized_error_quotes_at_most_what_fits_in_1280_bytes():
    interface = interface6("tun", mtu=9000)
    probe = IPv6(src=PEER_IP6, dst=OUR_IP6) / UDP(dport=7) / (b"u" * 5000)
    [error] = _send(interface, "tun", probe)
    assert len(raw(error)) == 1280 and raw(error)[48:] == raw(probe)[:1232]


# -- TCP over IPv6 ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_tcp_over_ipv6_uses_the_pseudo_header_both_ways(mode):
    stack = TcpStack([ip6_bytes(OUR_IP6)], b"s" * 32, mss=1460)
    stack.listen(80)
    interface = interface6(mode, tcp=stack)
    syn = IPv6(src=PEER_IP6, dst=OUR_IP6) / TCP(sport=40000, dport=80, flags="S", seq=100,
                                                options=[("MSS", 1440)])
    [synack] = _send(interface, mode, syn)
    assert_icmpv6_checksum_valid(synack)
    tcp = synack[TCP]
    assert str(tcp.flags) == "SA" and tcp.ack == 101 and dict(tcp.options)["MSS"] == 1440
    bad = raw(syn)[:-1] + bytes([raw(syn)[-1] ^ 1])
    assert interface.frame_received(frame6(mode, IPv6(bad)), 0.0) == []
    assert stack.drops["bad_checksum"] == 1


def test_tcp_to_a_multicast_group_is_dropped():
    tcp = FakeTcp()
    interface = interface6("tun", tcp=tcp)
    _send(interface, "tun", IPv6(src=PEER_IP6, dst="ff02::1") / TCP(dport=80))
    assert tcp.received == [] and interface.drops == {"tcp_multicast": 1}


def test_outgoing_tcp_over_ipv6_is_fragmented_beyond_the_mtu():
    tcp = FakeTcp()
    interface = interface6("tun", tcp=tcp, mtu=1280)
    segment = raw(IPv6(src=OUR_IP6, dst=PEER_IP6) / TCP(sport=80, dport=4) / (b"s" * 2000))[40:]
    tcp.outgoing.append((ip6_bytes(OUR_IP6), ip6_bytes(PEER_IP6), segment))
    out = ip6_packets("tun", interface.poll(0.0))
    assert len(out) == 2 and IPv6(raw(defragment6(out)))[TCP].load == b"s" * 2000


# -- fuzzing: bad input never raises ---------------------------------------------------------

_FIRST, _SECOND = _fragments(IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(id=3) /
                             ICMPv6EchoRequest(data=b"z" * 1500), 1280)
SEEDS6 = [
    raw(ping6(b"seed")), raw(_FIRST), raw(_SECOND),
    raw(IPv6(src=PEER_IP6, dst=OUR_IP6) / UDP(dport=9) / b"u"),
    raw(IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(dport=80, flags="S")),
    raw(IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrRouting(segleft=0) / TCP(dport=80, flags="S")),
    raw(neighbour_solicitation())[14:],
]


def _fuzz_interface(mode):
    stack = TcpStack([ip6_bytes(OUR_IP6)], b"f" * 32)
    stack.listen(80)
    return interface6(mode, tcp=stack)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans(), st.sampled_from(MODES))
def test_random_ipv6_bytes_never_raise(data, behind_a_header, mode):
    if behind_a_header:   # past the fixed header, into the extension headers
        data = raw(IPv6(src=PEER_IP6, dst=OUR_IP6, nh=data[0] if data else 0, plen=len(data))) + data
    interface = _fuzz_interface(mode)
    interface.frame_received(frame6(mode, Raw(data)) if mode == "tap" else data, 0.0)
    interface.poll(100.0)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(SEEDS6))), st.lists(
    st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=4), st.sampled_from(MODES))
def test_mutated_valid_ipv6_packets_never_raise(seed, flips, mode):
    buf = bytearray(SEEDS6[seed])
    for position, value in flips:
        if position < len(buf):
            buf[position] = value
    interface = _fuzz_interface(mode)
    link = bytes(buf) if mode == "tun" else raw(Ether(dst="33:33:ff:00:00:09", src="02:00:00:00:00:02",
                                                      type=0x86DD)) + bytes(buf)
    interface.frame_received(link, 0.0)
    interface.frame_received(frame6(mode, IPv6(raw(_SECOND))), 0.0)
    interface.poll(100.0)


def test_incomplete_datagrams_stay_within_the_reassembly_bounds():
    interface = interface6("tun")
    for identification in range(limits.REASSEMBLY_MAX_DATAGRAMS * 3):
        request = IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrFragment(id=identification) / \
            ICMPv6EchoRequest(data=b"b" * 20000)
        _send(interface, "tun", _fragments(request, 1280)[0])
    reassembler = interface.ipv6.reassembler
    assert len(reassembler) <= limits.REASSEMBLY_MAX_DATAGRAMS
    assert reassembler.bytes_in_use <= limits.REASSEMBLY_MAX_TOTAL_BYTES
    assert interface.drops["reasm6_evicted"] >= limits.REASSEMBLY_MAX_DATAGRAMS * 2
    [reply] = _send(interface, "tun", ping6(b"still answering"))        # and nothing else suffers
    assert reply[ICMPv6EchoReply].data == b"still answering"
