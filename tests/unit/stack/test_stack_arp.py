"""ARP cache aging, bounded resolution queues, replies and announcements (RFC 826, RFC 5227)."""

import pytest
from scapy.all import ARP, ICMP, Ether, raw

from stack_helpers import (
    BROADCAST, OUR_IP, OUR_MAC, PEER_IP, PEER_MAC, arp_request, frame, ip_bytes,
    learned_tap, mac_bytes, make_interface, ping)
from tunrelay.stack import limits
from tunrelay.stack.arp_cache import ArpCache, ArpResolver
from tunrelay.wire.arp import OP_REPLY, ArpPacket

OTHER_MAC = "02:00:00:00:00:99"


def _arp_reply_frame(src_ip=PEER_IP, src_mac=PEER_MAC):
    return raw(Ether(dst=OUR_MAC, src=src_mac) /
               ARP(op=2, hwsrc=src_mac, psrc=src_ip, hwdst=OUR_MAC, pdst=OUR_IP))


def _assert_reply_to(frame_bytes, mac, ip):
    reply = Ether(frame_bytes)
    assert (reply.dst, reply.src, reply.type) == (mac, OUR_MAC, 0x0806)
    arp = reply[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (2, OUR_MAC, OUR_IP, mac, ip)


# -- cache ----------------------------------------------------------------------------------

def test_cache_entries_age_out():
    cache = ArpCache(timeout=60.0)
    cache.update(b"\x0a\x00\x00\x02", b"M" * 6, now=100.0)
    assert cache.lookup(b"\x0a\x00\x00\x02", 159.9) == b"M" * 6
    assert cache.lookup(b"\x0a\x00\x00\x02", 160.0) is None
    assert len(cache) == 0


def test_cache_reconfirmation_extends_life():
    cache = ArpCache(timeout=10.0)
    cache.update(b"a" * 4, b"M" * 6, 0.0)
    assert cache.refresh(b"a" * 4, b"N" * 6, 8.0)
    assert cache.lookup(b"a" * 4, 17.0) == b"N" * 6
    assert not cache.refresh(b"b" * 4, b"N" * 6, 8.0)   # merge never creates
    assert b"b" * 4 not in cache


def test_cache_size_is_bounded_and_evicts_least_recently_confirmed():
    cache = ArpCache(timeout=100.0, max_entries=3)
    for n in range(3):
        cache.update(bytes([10, 0, 0, n]), b"M" * 6, float(n))
    cache.update(bytes([10, 0, 0, 0]), b"M" * 6, 5.0)     # re-confirm the oldest
    cache.update(bytes([10, 0, 0, 9]), b"M" * 6, 6.0)
    assert len(cache) == 3
    assert bytes([10, 0, 0, 1]) not in cache
    assert bytes([10, 0, 0, 0]) in cache


def test_purge_removes_only_expired():
    cache = ArpCache(timeout=10.0)
    cache.update(b"a" * 4, b"M" * 6, 0.0)
    cache.update(b"b" * 4, b"M" * 6, 5.0)
    cache.purge(12.0)
    assert b"a" * 4 not in cache and b"b" * 4 in cache


# -- replies --------------------------------------------------------------------------------

@pytest.mark.parametrize("eth_dst", [BROADCAST, OUR_MAC])
def test_request_for_our_address_is_answered(eth_dst):
    interface = make_interface("tap")
    out = interface.frame_received(arp_request(eth_dst=eth_dst), 0.0)
    assert len(out) == 1
    _assert_reply_to(out[0], PEER_MAC, PEER_IP)
    assert interface.counters()["arp_replies_sent"] == 1


def test_padded_request_is_answered():
    interface = make_interface("tap")
    out = interface.frame_received(arp_request() + b"\x00" * 18, 0.0)
    _assert_reply_to(out[0], PEER_MAC, PEER_IP)


def test_request_learns_the_sender_so_a_ping_reply_needs_no_resolution():
    interface = learned_tap()
    out = interface.frame_received(frame("tap", ping()), 1.0)
    assert len(out) == 1
    assert Ether(out[0]).dst == PEER_MAC and Ether(out[0])[ICMP].type == 0


def test_request_for_another_address_is_ignored_and_not_learnt():
    interface = make_interface("tap")
    assert interface.frame_received(arp_request(target="10.9.0.77"), 0.0) == []
    assert interface.drops["arp_not_for_us"] == 1
    out = interface.frame_received(frame("tap", ping()), 1.0)
    assert Ether(out[0])[ARP].op == 1     # must resolve: nothing was learnt


def test_merge_updates_a_cached_sender_even_when_not_targeted():
    interface = learned_tap()
    interface.frame_received(arp_request(src_mac=OTHER_MAC, target="10.9.0.77"), 1.0)
    out = interface.frame_received(frame("tap", ping(), eth_src=OTHER_MAC), 2.0)
    assert Ether(out[0]).dst == OTHER_MAC


def test_probe_is_answered_but_not_cached():
    interface = make_interface("tap")
    out = interface.frame_received(arp_request(src_ip="0.0.0.0"), 0.0)
    _assert_reply_to(out[0], PEER_MAC, "0.0.0.0")
    assert ip_bytes("0.0.0.0") not in interface.resolver.cache


@pytest.mark.parametrize("kwargs,reason", [
    (dict(src_ip=OUR_IP), "arp_address_conflict"),
    (dict(src_ip="224.0.0.1"), "arp_bad_sender_ip"),
])
def test_suspicious_senders_are_dropped(kwargs, reason):
    interface = make_interface("tap")
    assert interface.frame_received(arp_request(**kwargs), 0.0) == []
    assert interface.drops[reason] == 1


def test_broadcast_sender_mac_is_dropped():
    interface = make_interface("tap")
    bad = raw(Ether(dst=BROADCAST, src=PEER_MAC) /
              ARP(op=1, hwsrc=BROADCAST, psrc=PEER_IP, pdst=OUR_IP))
    assert interface.frame_received(bad, 0.0) == []
    assert interface.drops["arp_bad_sender_mac"] == 1


def test_malformed_arp_is_counted():
    interface = make_interface("tap")
    good = arp_request()
    bad = good[:14] + b"\x00\x06" + good[16:]     # hardware type 6 (IEEE 802) instead of 1
    assert interface.frame_received(bad, 0.0) == []
    assert interface.drops["arp_bad_hardware_type"] == 1


# -- aging and resolution through the interface ------------------------------------------------

def test_aged_entry_forces_a_new_resolution():
    interface = learned_tap()
    out = interface.frame_received(frame("tap", ping()), limits.ARP_CACHE_TIMEOUT + 1.0)
    request = Ether(out[0])
    assert request.dst == BROADCAST
    assert (request[ARP].op, request[ARP].pdst, request[ARP].psrc) == (1, PEER_IP, OUR_IP)


def test_reply_is_queued_while_resolving_and_released_by_the_arp_reply():
    interface = make_interface("tap")
    out = interface.frame_received(frame("tap", ping(seq=1)), 0.0)
    out += interface.frame_received(frame("tap", ping(seq=2)), 0.1)
    assert [Ether(f)[ARP].op for f in out] == [1]           # one request, no duplicates
    assert interface.resolver.pending_packets(ip_bytes(PEER_IP)) == 2
    released = interface.frame_received(_arp_reply_frame(), 0.2)
    assert [Ether(f).dst for f in released] == [PEER_MAC, PEER_MAC]
    assert [Ether(f)[ICMP].seq for f in released] == [1, 2]
    assert interface.resolver.pending_packets(ip_bytes(PEER_IP)) == 0


def test_requests_are_retried_then_the_queue_is_dropped_and_counted():
    interface = make_interface("tap")
    assert len(interface.frame_received(frame("tap", ping()), 0.0)) == 1
    assert interface.next_deadline() == limits.ARP_REQUEST_INTERVAL
    assert interface.poll(0.5) == []
    sent = 1
    now = 0.0
    while sent < limits.ARP_MAX_REQUESTS:
        now += limits.ARP_REQUEST_INTERVAL
        out = interface.poll(now)
        assert [Ether(f)[ARP].pdst for f in out] == [PEER_IP]
        sent += 1
    assert interface.drops["arp_unresolved"] == 0
    assert interface.poll(now + limits.ARP_REQUEST_INTERVAL) == []
    assert interface.drops["arp_unresolved"] == 1
    assert interface.next_deadline() is None
    assert interface.counters()["arp_requests_sent"] == limits.ARP_MAX_REQUESTS


# -- the resolver alone: queue bounds -----------------------------------------------------------

def _resolver(**kwargs):
    return ArpResolver(ip_bytes(OUR_IP), mac_bytes(OUR_MAC), **kwargs)


def test_queue_keeps_the_newest_packets_within_its_bound():
    resolver = _resolver(queue_max_packets=2)
    peer = ip_bytes(PEER_IP)
    assert len(resolver.send_ip(b"one", peer, 0.0)) == 1
    assert resolver.send_ip(b"two", peer, 0.0) == []
    assert resolver.send_ip(b"three", peer, 0.0) == []
    assert resolver.drops["arp_queue_overflow"] == 1
    frames = resolver.arp_received(
        ArpPacket(OP_REPLY, mac_bytes(PEER_MAC), peer, mac_bytes(OUR_MAC), ip_bytes(OUR_IP)), 0.1)
    assert [f[14:] for f in frames] == [b"two", b"three"]


def test_queue_byte_bound():
    resolver = _resolver(queue_max_bytes=100)
    peer = ip_bytes(PEER_IP)
    resolver.send_ip(b"x" * 60, peer, 0.0)
    resolver.send_ip(b"y" * 60, peer, 0.0)
    assert resolver.pending_packets(peer) == 1
    assert resolver.send_ip(b"z" * 101, peer, 0.0) == []
    assert resolver.drops["arp_queue_overflow"] == 2


def test_number_of_pending_addresses_is_bounded():
    resolver = _resolver(max_pending=2)
    for n in range(3):
        resolver.send_ip(b"p", bytes([10, 9, 0, 10 + n]), 0.0)
    assert resolver.drops["arp_too_many_pending"] == 1
    assert resolver.stats["arp_requests_sent"] == 2


def test_unresolvable_next_hops_are_refused():
    resolver = _resolver()
    for hop in ("255.255.255.255", "224.0.0.5", "0.0.0.0"):
        assert resolver.send_ip(b"p", ip_bytes(hop), 0.0) == []
    assert resolver.drops["arp_bad_next_hop"] == 3


def test_resolver_needs_a_unicast_mac():
    with pytest.raises(ValueError):
        ArpResolver(ip_bytes(OUR_IP), mac_bytes(BROADCAST))


# -- gratuitous ARP -----------------------------------------------------------------------------

def test_gratuitous_arp_at_start_is_repeated_per_rfc5227():
    interface = make_interface("tap")
    first = interface.start(10.0)
    assert len(first) == 1
    announcement = Ether(first[0])
    assert announcement.dst == BROADCAST and announcement.src == OUR_MAC
    arp = announcement[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.pdst) == (1, OUR_MAC, OUR_IP, OUR_IP)
    assert interface.next_deadline() == 10.0 + limits.ARP_ANNOUNCE_INTERVAL
    assert interface.poll(11.0) == []
    second = interface.poll(10.0 + limits.ARP_ANNOUNCE_INTERVAL)
    assert [Ether(f)[ARP].pdst for f in second] == [OUR_IP]
    assert interface.next_deadline() is None
    assert interface.poll(100.0) == []
    assert interface.counters()["arp_announcements_sent"] == limits.ARP_ANNOUNCE_NUM


def test_tun_mode_sends_nothing_at_start():
    assert make_interface("tun").start(0.0) == []
