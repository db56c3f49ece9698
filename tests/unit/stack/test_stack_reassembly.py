"""IPv4 reassembly (RFC 791/815) and output fragmentation, scapy as the oracle."""

import pytest
from scapy.all import ICMP, IP, UDP, fragment, overlap_frag, raw

from stack_helpers import (
    OUR_IP, PEER_IP, assert_checksums_valid, frame, ip_bytes, ip_packets, learned_tap,
    make_interface, ping, reassemble)
from tunrelay.stack import limits
from tunrelay.stack.reassembly import Reassembler, fragment_datagram
from tunrelay.wire.ipv4 import Ipv4Header

DATA = bytes(range(256)) * 11 + bytes(184)     # 3000 bytes, like `ping -s 3000`


def _interface(mode, mtu=1500):
    return learned_tap(mtu=mtu) if mode == "tap" else make_interface("tun", mtu=mtu)


def _pieces(packet, ranges):
    """Fragments of ``packet`` (scapy IP) carrying exactly the given payload byte ranges."""
    packet = IP(raw(packet))      # make computed fields (protocol, lengths) concrete
    payload = raw(packet.payload)
    pieces = []
    for start, end in ranges:
        piece = packet.copy()
        piece.remove_payload()
        piece.flags = "MF" if end < len(payload) else 0
        piece.frag = start // 8
        piece.len = None
        piece.chksum = None
        pieces.append(IP(raw(piece / payload[start:end])))
    return pieces


def _feed(interface, mode, packets, now=1.0):
    out = []
    for packet in packets:
        out += interface.frame_received(frame(mode, packet), now)
    return out


def _assert_echo_reply(interface, mode, out, request, mtu=1500):
    packets = ip_packets(mode, out)
    assert all(len(raw(p)) <= mtu for p in packets)
    chunk = (mtu - 20) // 8 * 8
    assert len(packets) == -(-len(raw(request[ICMP])) // chunk)
    assert len({p.id for p in packets}) == 1
    assert not any(p.flags.DF for p in packets)
    [reply] = reassemble(packets)
    assert_checksums_valid(reply)
    assert (reply.src, reply.dst, reply[ICMP].type) == (OUR_IP, PEER_IP, 0)
    assert (reply[ICMP].id, reply[ICMP].seq) == (request[ICMP].id, request[ICMP].seq)
    assert raw(reply[ICMP].payload) == raw(request[ICMP].payload)


ORDERS = {
    "in_order": lambda frags: frags,
    "reversed": lambda frags: frags[::-1],
    "duplicated": lambda frags: [f for f in frags for _ in range(2)],
    "last_first": lambda frags: frags[-1:] + frags[:-1],
}


@pytest.mark.parametrize("mode", ["tun", "tap"])
@pytest.mark.parametrize("order", sorted(ORDERS))
def test_fragmented_ping_is_answered(mode, order):
    interface = _interface(mode)
    request = ping(DATA, id=777)
    out = _feed(interface, mode, ORDERS[order](fragment(request, 1480)))
    _assert_echo_reply(interface, mode, out, request)
    assert interface.counters()["ipv4_reassembled"] == 1
    if order != "duplicated":
        assert len(interface.reassembler) == 0 and interface.reassembler.bytes_in_use == 0
    else:   # the duplicate of the final fragment opens a new datagram that will time out
        assert len(interface.reassembler) == 1


@pytest.mark.parametrize("mode", ["tun", "tap"])
def test_overlapping_consistent_fragments_are_answered(mode):
    interface = _interface(mode)
    request = ping(DATA, id=778)
    total = len(raw(request[ICMP]))
    pieces = _pieces(request, [(0, 1496), (1000, 2400), (1488, 2000), (2392, total), (8, 16)])
    out = _feed(interface, mode, pieces)
    _assert_echo_reply(interface, mode, out, request)


def test_overlap_with_different_bytes_discards_the_datagram():
    interface = make_interface("tun")
    request = ping(DATA, id=779)
    pieces = _pieces(request, [(0, 1496), (1488, 2008)])
    evil = bytearray(raw(pieces[1]))
    evil[20 + 2] ^= 0xFF     # payload byte 1490, inside the 1488..1496 overlap
    pieces[1] = IP(bytes(evil))
    del pieces[1].chksum
    pieces[1] = IP(raw(pieces[1]))
    rest = _pieces(request, [(2008, len(raw(request[ICMP])))])
    assert _feed(interface, "tun", pieces + rest) == []
    assert interface.drops["reasm_overlap_conflict"] == 1


def test_small_mtu_reply_is_fragmented_to_fit():
    interface = make_interface("tun", mtu=576)
    request = ping(DATA, id=780)
    out = _feed(interface, "tun", fragment(request, 1480))
    assert len(out) == 6      # 3008 bytes of ICMP in 552-byte chunks
    _assert_echo_reply(interface, "tun", out, request, mtu=576)


def test_reassembly_timeout_sends_time_exceeded_with_the_first_fragment():
    interface = make_interface("tun")
    request = ping(DATA, id=781)
    frags = fragment(request, 1480)
    assert _feed(interface, "tun", frags[:2], now=0.0) == []
    assert interface.next_deadline() == limits.REASSEMBLY_TIMEOUT
    assert interface.poll(limits.REASSEMBLY_TIMEOUT - 0.1) == []
    out = interface.poll(limits.REASSEMBLY_TIMEOUT)
    [error] = ip_packets("tun", out)
    assert_checksums_valid(error)
    assert (error[ICMP].type, error[ICMP].code, error.dst) == (11, 1, PEER_IP)
    quoted = raw(error)[28:]     # scapy would read bytes past 128 as RFC 4884 extensions
    assert quoted[:20] == raw(frags[0])[:20]
    assert len(quoted) == limits.ICMP_ERROR_MAX_DATAGRAM - 28
    assert interface.drops["reasm_timeout"] == 1
    # The late last fragment starts a new datagram that cannot complete.
    assert _feed(interface, "tun", frags[2:], now=31.0) == []
    assert interface.next_deadline() == 31.0 + limits.REASSEMBLY_TIMEOUT


def test_no_time_exceeded_without_fragment_zero():
    interface = make_interface("tun")
    frags = fragment(ping(DATA, id=782), 1480)
    _feed(interface, "tun", frags[1:], now=0.0)
    assert interface.poll(limits.REASSEMBLY_TIMEOUT) == []
    assert interface.drops["reasm_timeout"] == 1


def test_no_time_exceeded_about_an_icmp_error():
    interface = make_interface("tun")
    error = IP(src=PEER_IP, dst=OUR_IP) / ICMP(type=3, code=1) / DATA
    _feed(interface, "tun", fragment(error, 1480)[:1], now=0.0)
    assert interface.poll(limits.REASSEMBLY_TIMEOUT) == []
    assert interface.drops["icmp_error_about_icmp_error"] == 1


# -- bounds ------------------------------------------------------------------------------------

def _header(ident, offset=0, more=True, src=PEER_IP, protocol=17):
    return Ipv4Header(ip_bytes(src), ip_bytes(OUR_IP), protocol, identification=ident,
                      more_fragments=more, fragment_offset=offset)


def test_many_incomplete_datagrams_stay_within_the_bounds():
    reassembler = Reassembler(max_datagrams=8, max_total_bytes=10_000)
    for ident in range(1000):
        assert reassembler.add(_header(ident), b"x" * 1480, now=ident * 0.001) is None
        assert len(reassembler) <= 8
        assert reassembler.bytes_in_use <= 10_000
    assert reassembler.drops["reasm_evicted"] >= 990
    # Reassembly still works afterwards.
    reassembler.add(_header(5000), b"a" * 8, now=2.0)
    header, payload = reassembler.add(_header(5000, offset=8, more=False), b"b", now=2.0)
    assert payload == b"a" * 8 + b"b" and not header.is_fragment


def test_default_bounds_hold_through_the_interface():
    interface = make_interface("tun")
    for ident in range(300):
        first = fragment(IP(src=PEER_IP, dst=OUR_IP, id=ident) / UDP() / DATA, 1480)[0]
        interface.frame_received(raw(first), 0.0)
    assert len(interface.reassembler) == limits.REASSEMBLY_MAX_DATAGRAMS
    assert interface.reassembler.bytes_in_use <= limits.REASSEMBLY_MAX_TOTAL_BYTES
    assert interface.drops["reasm_evicted"] == 300 - limits.REASSEMBLY_MAX_DATAGRAMS


def test_total_byte_bound_evicts_oldest_first():
    reassembler = Reassembler(max_total_bytes=4000)
    reassembler.add(_header(1), b"1" * 1480, 0.0)
    reassembler.add(_header(2), b"2" * 1480, 0.0)
    reassembler.add(_header(3), b"3" * 1480, 0.0)
    assert reassembler.bytes_in_use <= 4000
    assert reassembler.drops["reasm_evicted"] == 1
    # Datagram 1 was evicted: its last fragment alone cannot complete it.
    assert reassembler.add(_header(1, offset=1480, more=False), b"z", 0.0) is None
    assert reassembler.add(_header(2, offset=1480, more=False), b"z", 0.0)[1] == b"2" * 1480 + b"z"


def test_fragment_count_bound():
    reassembler = Reassembler(max_fragments=4)
    for n in range(4):
        reassembler.add(_header(9, offset=16 * n), b"y" * 8, 0.0)
    assert len(reassembler) == 1
    reassembler.add(_header(9, offset=200), b"y" * 8, 0.0)
    assert len(reassembler) == 0 and reassembler.bytes_in_use == 0
    assert reassembler.drops["reasm_too_many_fragments"] == 1


def test_datagram_size_bound():
    reassembler = Reassembler(max_datagram_bytes=1000)
    assert reassembler.add(_header(1, offset=976), b"x" * 8, 0.0) is None
    assert reassembler.drops["reasm_too_big"] == 1
    assert len(reassembler) == 0


@pytest.mark.parametrize("payload", [b"", b"x" * 7])
def test_non_last_fragment_must_be_a_multiple_of_eight(payload):
    reassembler = Reassembler()
    assert reassembler.add(_header(1), payload, 0.0) is None
    assert reassembler.drops["reasm_bad_fragment_length"] == 1 and len(reassembler) == 0


@pytest.mark.parametrize("sequence", [
    [(16, 8, False), (24, 8, False)],                    # two different ends
    [(16, 8, False), (24, 8, True)],                    # data past the end
    [(32, 8, True), (0, 8, False)],                     # end before data already held
])
def test_inconsistent_lengths_discard_the_datagram(sequence):
    reassembler = Reassembler()
    for offset, length, more in sequence:
        assert reassembler.add(_header(3, offset=offset, more=more), b"q" * length, 0.0) is None
    assert reassembler.drops["reasm_inconsistent_length"] == 1
    assert len(reassembler) == 0 and reassembler.bytes_in_use == 0


def test_key_includes_source_protocol_and_id():
    reassembler = Reassembler()
    reassembler.add(_header(1), b"a" * 8, 0.0)
    assert reassembler.add(_header(1, offset=8, more=False, src="10.9.0.3"), b"b", 0.0) is None
    assert reassembler.add(_header(1, offset=8, more=False, protocol=6), b"b", 0.0) is None
    assert reassembler.add(_header(2, offset=8, more=False), b"b", 0.0) is None
    assert reassembler.add(_header(1, offset=8, more=False), b"b", 0.0)[1] == b"a" * 8 + b"b"
    assert len(reassembler) == 3


# -- output fragmentation ----------------------------------------------------------------------

@pytest.mark.parametrize("mtu", [68, 576, 1500])
def test_fragment_datagram_round_trips_through_scapy(mtu):
    header = Ipv4Header(ip_bytes(OUR_IP), ip_bytes(PEER_IP), 17, identification=4242)
    payload = bytes(range(256)) * 12
    packets = [IP(p) for p in fragment_datagram(header, payload, mtu)]
    assert all(len(raw(p)) <= mtu for p in packets)
    assert all(p.id == 4242 and not p.flags.DF for p in packets)
    assert [p.flags.MF for p in packets] == [True] * (len(packets) - 1) + [False]
    [whole] = reassemble(packets)
    assert raw(whole.payload) == payload


def test_fragment_datagram_leaves_small_datagrams_alone_and_refuses_df():
    header = Ipv4Header(ip_bytes(OUR_IP), ip_bytes(PEER_IP), 17, dont_fragment=True)
    assert fragment_datagram(header, b"x" * 1480, 1500) == [header.emit(b"x" * 1480)]
    with pytest.raises(ValueError):
        fragment_datagram(header, b"x" * 1481, 1500)


def test_timeout_noticed_by_a_later_fragment_still_sends_time_exceeded():
    interface = make_interface("tun")
    _feed(interface, "tun", fragment(ping(DATA, id=783), 1480)[:1], now=0.0)
    late = fragment(ping(DATA, id=784), 1480)[:1]
    assert _feed(interface, "tun", late, now=limits.REASSEMBLY_TIMEOUT + 5) == []
    assert interface.next_deadline() == limits.REASSEMBLY_TIMEOUT     # overdue: poll now
    [error] = ip_packets("tun", interface.poll(limits.REASSEMBLY_TIMEOUT + 5))
    assert (error[ICMP].type, error[ICMP].code) == (11, 1)
    assert IP(raw(error)[28:]).id == 783
    assert interface.next_deadline() == 2 * limits.REASSEMBLY_TIMEOUT + 5


@pytest.mark.parametrize("consistent", [True, False])
def test_scapy_overlap_frag(consistent):
    # scapy's IDS-evasion helper sends a 64-byte fragment zero before the real ones.
    interface = make_interface("tun")
    request = ping(DATA, id=785, proto=1)
    overlap = raw(request[ICMP])[:64] if consistent else b"B" * 64
    out = _feed(interface, "tun", overlap_frag(request, overlap, fragsize=1480))
    if consistent:
        _assert_echo_reply(interface, "tun", out, request)
    else:
        assert out == [] and interface.drops["reasm_overlap_conflict"] == 1
