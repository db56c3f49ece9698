"""Echo, unreachable errors, RFC 1122 §3.2.2 suppression rules and rate limiting."""

import pytest
from scapy.all import ICMP, IP, UDP, fragment, raw

from stack_helpers import (
    BROADCAST, OUR_IP, PEER_IP, assert_checksums_valid, frame, ip_bytes, ip_packets,
    learned_tap, make_interface, ping)
from tunrelay.stack import limits
from tunrelay.stack.icmp import IcmpResponder, error_suppression_reason
from tunrelay.stack.ratelimit import TokenBucket
from tunrelay.wire.ipv4 import Ipv4Header


def _interface(mode):
    return learned_tap() if mode == "tap" else make_interface("tun")


def _one_error(mode, out):
    [error] = ip_packets(mode, out)
    assert_checksums_valid(error)
    assert (error.src, error.dst, error.ttl, error.proto) == (OUR_IP, PEER_IP, 64, 1)
    return error


# -- token bucket ------------------------------------------------------------------------------

def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.consume(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.consume(0.4)
    assert bucket.consume(0.5)              # 0.5 s at 2/s refills one token
    assert not bucket.consume(0.5)
    assert [bucket.consume(100.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_ignores_a_clock_stepping_back():
    bucket = TokenBucket(rate=1.0, burst=1)
    assert bucket.consume(10.0)
    assert not bucket.consume(5.0)
    assert not bucket.consume(10.5)
    assert bucket.consume(11.0)


def test_token_bucket_rejects_nonsense():
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


# -- suppression rules (pure) -------------------------------------------------------------------

def _header(**fields):
    base = dict(source=ip_bytes(PEER_IP), destination=ip_bytes(OUR_IP), protocol=17)
    base.update(fields)
    return Ipv4Header(**base)


@pytest.mark.parametrize("fields,payload,link_broadcast,reason", [
    ({}, b"", False, None),
    (dict(fragment_offset=8), b"", False, "icmp_error_about_fragment"),
    (dict(protocol=1), bytes([3, 3]) + b"\x00" * 6, False, "icmp_error_about_icmp_error"),
    (dict(protocol=1), bytes([11, 0]) + b"\x00" * 6, False, "icmp_error_about_icmp_error"),
    (dict(protocol=1), b"", False, "icmp_error_about_icmp_error"),
    (dict(protocol=1), bytes([8, 0]) + b"\x00" * 6, False, None),      # echo is a query
    (dict(destination=ip_bytes("255.255.255.255")), b"", False, "icmp_error_about_broadcast"),
    (dict(destination=ip_bytes("224.0.0.251")), b"", False, "icmp_error_about_broadcast"),
    ({}, b"", True, "icmp_error_about_broadcast"),
    (dict(source=ip_bytes("0.0.0.0")), b"", False, "icmp_error_about_bad_source"),
    (dict(source=ip_bytes("239.1.2.3")), b"", False, "icmp_error_about_bad_source"),
    (dict(more_fragments=True), b"x" * 8, False, None),                # the first fragment is fine
])
def test_error_suppression_rules(fields, payload, link_broadcast, reason):
    assert error_suppression_reason(_header(**fields), payload, link_broadcast) == reason


def test_suppressed_errors_spend_no_tokens():
    responder = IcmpResponder(burst=1)
    later = _header(fragment_offset=8)
    assert responder.error(3, 3, later, b"", later.emit(b""), 0.0) is None
    assert responder.drops["icmp_error_about_fragment"] == 1
    good = _header()
    assert responder.error(3, 3, good, b"", good.emit(b""), 0.0) is not None
    assert responder.error(3, 3, good, b"", good.emit(b""), 0.0) is None
    assert responder.drops["icmp_error_rate_limited"] == 1


def test_error_quote_is_capped_at_576_bytes():
    responder = IcmpResponder()
    header = _header()
    message = responder.error(3, 3, header, b"u" * 2000, header.emit(b"u" * 2000), 0.0)
    assert len(message) + 20 == limits.ICMP_ERROR_MAX_DATAGRAM


# -- echo through the interface ------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["tun", "tap"])
def test_ping_is_answered(mode):
    interface = _interface(mode)
    request = ping(b"abcdefgh" * 7, ident=0x1234, seq=9, tos=0x10, ttl=3)
    out = interface.frame_received(frame(mode, request), 5.0)
    [reply] = ip_packets(mode, out)
    assert_checksums_valid(reply)
    assert (reply.src, reply.dst, reply.ttl, reply.tos, reply.id) == (
        OUR_IP, PEER_IP, 64, 0x10, 1000)
    assert not reply.flags.DF and not reply.flags.MF
    icmp = reply[ICMP]
    assert (icmp.type, icmp.code, icmp.id, icmp.seq) == (0, 0, 0x1234, 9)
    assert raw(reply[ICMP].payload) == b"abcdefgh" * 7
    counters = interface.counters()
    assert counters["icmp_echo_replies"] == 1 and counters["drops"] == {}


def test_consecutive_replies_use_consecutive_ids():
    interface = make_interface("tun")
    ids = [IP(interface.frame_received(raw(ping(seq=n)), 0.0)[0]).id for n in range(3)]
    assert ids == [1000, 1001, 1002]


def test_echo_replies_and_other_messages_to_us_are_not_answered():
    interface = make_interface("tun")
    for message in (ICMP(type=0), ICMP(type=3, code=3) / raw(IP() / UDP()), ICMP(type=13)):
        assert interface.frame_received(raw(IP(src=PEER_IP, dst=OUR_IP) / message), 0.0) == []
    assert interface.drops["icmp_unhandled_type"] == 3


def test_icmp_with_bad_checksum_is_dropped():
    interface = make_interface("tun")
    bad = IP(src=PEER_IP, dst=OUR_IP) / ICMP(type=8, chksum=0x1234) / b"data"
    assert interface.frame_received(raw(bad), 0.0) == []
    assert interface.drops["icmp_bad_checksum"] == 1


# -- unreachable errors ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["tun", "tap"])
@pytest.mark.parametrize("dport", [7, 53, 33434, 65535])
def test_udp_to_any_port_draws_port_unreachable(mode, dport):
    interface = _interface(mode)
    datagram = IP(src=PEER_IP, dst=OUR_IP, id=55) / UDP(sport=40000, dport=dport) / b"hello?"
    error = _one_error(mode, interface.frame_received(frame(mode, datagram), 0.0))
    assert (error[ICMP].type, error[ICMP].code) == (3, 3)
    assert raw(error)[28:] == raw(datagram)      # short datagram: quoted whole
    assert interface.drops["udp_port_closed"] == 1


@pytest.mark.parametrize("mode", ["tun", "tap"])
def test_unknown_protocol_draws_protocol_unreachable(mode):
    interface = _interface(mode)
    datagram = IP(src=PEER_IP, dst=OUR_IP, proto=253) / (b"z" * 700)
    error = _one_error(mode, interface.frame_received(frame(mode, datagram), 0.0))
    assert (error[ICMP].type, error[ICMP].code) == (3, 2)
    assert raw(error)[28:] == raw(datagram)[:limits.ICMP_ERROR_MAX_DATAGRAM - 28]
    assert interface.drops["ipv4_unknown_protocol"] == 1


def test_errors_are_rate_limited_by_a_token_bucket():
    interface = make_interface("tun")
    probe = raw(IP(src=PEER_IP, dst=OUR_IP) / UDP(sport=1, dport=2))
    sent = sum(len(interface.frame_received(probe, 0.0)) for _ in range(50))
    assert sent == limits.ICMP_ERROR_BURST
    assert interface.drops["icmp_error_rate_limited"] == 50 - limits.ICMP_ERROR_BURST
    sent = sum(len(interface.frame_received(probe, 1.0)) for _ in range(50))
    assert sent == min(limits.ICMP_ERROR_BURST, int(limits.ICMP_ERROR_RATE))
    # Echo replies are not rate limited.
    assert all(interface.frame_received(raw(ping(seq=n)), 1.0) for n in range(50))


def test_udp_with_bad_checksum_draws_no_error():
    interface = make_interface("tun")
    bad = IP(src=PEER_IP, dst=OUR_IP) / UDP(sport=1, dport=2, chksum=0x1234) / b"x"
    assert interface.frame_received(raw(bad), 0.0) == []
    assert interface.drops["udp_bad_checksum"] == 1


def test_udp_with_zero_checksum_still_draws_an_error():
    interface = make_interface("tun")
    datagram = IP(src=PEER_IP, dst=OUR_IP) / UDP(sport=1, dport=2, chksum=0) / b"x"
    assert len(interface.frame_received(raw(datagram), 0.0)) == 1


# -- never an error about ... -------------------------------------------------------------------

def test_no_error_about_a_link_layer_broadcast():
    interface = learned_tap()
    datagram = IP(src=PEER_IP, dst=OUR_IP) / UDP(sport=1, dport=2)
    assert interface.frame_received(frame("tap", datagram, eth_dst=BROADCAST), 0.0) == []
    assert interface.drops["icmp_error_about_broadcast"] == 1


@pytest.mark.parametrize("destination", ["255.255.255.255", "10.9.0.255", "224.0.0.1"])
def test_no_error_about_ip_broadcast_or_multicast(destination):
    interface = learned_tap()
    for message in (UDP(sport=1, dport=2), ICMP(type=8)):
        datagram = IP(src=PEER_IP, dst=destination) / message
        assert interface.frame_received(frame("tap", datagram, eth_dst=BROADCAST), 0.0) == []
    assert interface.drops["ipv4_not_for_us"] == 2


@pytest.mark.parametrize("icmp_type,errors", [(3, 0), (11, 0), (8, 1)])
def test_no_error_about_an_icmp_error(icmp_type, errors):
    # The only error that can concern ICMP here is reassembly time exceeded.
    interface = make_interface("tun")
    message = IP(src=PEER_IP, dst=OUR_IP) / ICMP(type=icmp_type) / (b"e" * 2000)
    assert interface.frame_received(raw(fragment(message, 1480)[0]), 0.0) == []
    assert len(interface.poll(limits.REASSEMBLY_TIMEOUT)) == errors
    assert interface.drops["icmp_error_about_icmp_error"] == 1 - errors


def test_no_error_about_a_bad_source():
    interface = make_interface("tun")
    for source in ("0.0.0.0", "127.0.0.1", OUR_IP, "240.0.0.1"):
        datagram = IP(src=source, dst=OUR_IP) / UDP(sport=1, dport=2)
        assert interface.frame_received(raw(datagram), 0.0) == []
    assert interface.drops["ipv4_martian_source"] == 4
