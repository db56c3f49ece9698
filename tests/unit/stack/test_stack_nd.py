"""Neighbour Discovery (RFC 4861) against scapy: answers, DAD, resolution, cache aging."""

import pytest
from scapy.all import (
    ICMPv6EchoReply, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr,
    IPv6, Ether, raw)

from stack_helpers import (
    OUR_IP6, OUR_MAC, PEER_IP6, PEER_LINK_LOCAL, PEER_MAC, SOLICITED, SOLICITED_MAC,
    assert_icmpv6_checksum_valid, frame6, ip6_bytes, learned_tap6, make_interface6,
    neighbour_solicitation, ping6)
from tunrelay.stack import limits

OTHER_MAC = "02:00:00:00:00:77"
KERNEL_SHARING_GROUP = "2001:db8:2::9"   # another address in our solicited-node group


def _advertisement(frame_bytes, eth_dst, ip_dst, solicited=True):
    ether = Ether(frame_bytes)
    assert (ether.dst, ether.src, ether.type) == (eth_dst, OUR_MAC, 0x86DD)
    packet = ether[IPv6]
    assert_icmpv6_checksum_valid(packet)
    na = packet[ICMPv6ND_NA]
    assert (packet.src, packet.dst, packet.hlim) == (OUR_IP6, ip_dst, 255)
    assert (na.tgt, na.R, na.S, na.O) == (OUR_IP6, 0, int(solicited), 1)
    assert packet[ICMPv6NDOptDstLLAddr].lladdr == OUR_MAC
    return na


def _advertisement_from_peer(target=PEER_IP6, lladdr=PEER_MAC, solicited=True, dst=OUR_IP6,
                             eth_dst=OUR_MAC, src=None):
    return raw(Ether(dst=eth_dst, src=lladdr) / IPv6(src=src or target, dst=dst, hlim=255) /
               ICMPv6ND_NA(tgt=target, S=int(solicited), O=1) / ICMPv6NDOptDstLLAddr(lladdr=lladdr))


def test_multicast_solicitation_is_answered_to_the_solicitor_and_cached():
    interface = make_interface6("tap")
    [answer] = interface.frame_received(neighbour_solicitation(), 0.0)
    _advertisement(answer, PEER_MAC, PEER_IP6)
    assert interface.ipv6.neighbours.resolver.cache.lookup(ip6_bytes(PEER_IP6), 1.0) == \
        bytes.fromhex(PEER_MAC.replace(":", ""))


def test_unicast_probe_without_an_option_goes_to_the_cached_or_framing_mac():
    interface = learned_tap6()
    probe = neighbour_solicitation(dst=OUR_IP6, lladdr=None, eth_dst=OUR_MAC)
    [answer] = interface.frame_received(probe, 1.0)
    _advertisement(answer, PEER_MAC, PEER_IP6)
    fresh = make_interface6("tap")
    [answer] = fresh.frame_received(neighbour_solicitation(
        src=PEER_LINK_LOCAL, dst=OUR_IP6, lladdr=None, eth_dst=OUR_MAC), 1.0)
    _advertisement(answer, PEER_MAC, PEER_LINK_LOCAL)


def test_the_kernels_own_dad_is_never_answered():
    """A DAD probe for an address that shares our solicited-node group, as the kernel sends
    for its own tap address: the responder must stay silent or the kernel's address fails."""
    interface = make_interface6("tap")
    probe = neighbour_solicitation(src="::", target=KERNEL_SHARING_GROUP, lladdr=None)
    assert interface.frame_received(probe, 0.0) == []
    lookup = neighbour_solicitation(target=KERNEL_SHARING_GROUP)
    assert interface.frame_received(lookup, 0.0) == []
    assert interface.drops == {"nd_not_for_us": 2}


def test_dad_for_our_address_is_defended_to_all_nodes():
    interface = make_interface6("tap")
    [answer] = interface.frame_received(neighbour_solicitation(src="::", lladdr=None), 0.0)
    _advertisement(answer, "33:33:00:00:00:01", "ff02::1", solicited=False)
    assert interface.stats["nd_duplicate_address_defended"] == 1


@pytest.mark.parametrize("frame_bytes,reason", [
    (neighbour_solicitation(hlim=64), "nd_bad_hop_limit"),
    (neighbour_solicitation(target="ff02::1"), "nd_multicast_target"),
    (neighbour_solicitation(src="::"), "nd_dad_with_link_address"),
    (neighbour_solicitation(src="::", dst="ff02::1", lladdr=None, eth_dst="33:33:00:00:00:01"),
     "nd_dad_not_to_solicited_node"),
    (raw(Ether(dst=SOLICITED_MAC, src=PEER_MAC) / IPv6(src=PEER_IP6, dst=SOLICITED, hlim=255) /
         ICMPv6ND_NS(tgt=OUR_IP6) / ICMPv6NDOptSrcLLAddr(len=0, lladdr=PEER_MAC)), "nd_bad_option_length"),
    (raw(Ether(dst=SOLICITED_MAC, src=PEER_MAC) / IPv6(src=PEER_IP6, dst=SOLICITED, hlim=255) /
         ICMPv6ND_NS(tgt=OUR_IP6, code=1)), "nd_bad_code"),
    (raw(Ether(dst="33:33:00:00:00:01", src=PEER_MAC) / IPv6(src=PEER_IP6, dst="ff02::1", hlim=255) /
         ICMPv6ND_NA(tgt=PEER_IP6, S=1)), "nd_solicited_to_multicast"),
    (_advertisement_from_peer(target=OUR_IP6, src=PEER_LINK_LOCAL), "nd_address_conflict"),
    (_advertisement_from_peer(), "nd_unsolicited_advertisement"),
])
def test_invalid_or_unwanted_messages_are_dropped_and_counted(frame_bytes, reason):
    interface = make_interface6("tap")
    assert interface.frame_received(frame_bytes, 0.0) == []
    assert interface.drops == {reason: 1}


def test_replies_to_an_unknown_neighbour_wait_for_resolution():
    interface = make_interface6("tap")
    [solicitation] = interface.frame_received(frame6("tap", ping6(seq=1)), 0.0)
    ether = Ether(solicitation)
    ns = ether[ICMPv6ND_NS]
    assert ether.dst == "33:33:ff:00:00:02" and ether[IPv6].dst == "ff02::1:ff00:2"
    assert (ether[IPv6].hlim, ns.tgt, ether[ICMPv6NDOptSrcLLAddr].lladdr) == (255, PEER_IP6, OUR_MAC)
    assert interface.frame_received(frame6("tap", ping6(seq=2)), 0.1) == []   # queued, no 2nd NS
    released = interface.frame_received(_advertisement_from_peer(), 0.2)
    assert [Ether(f)[ICMPv6EchoReply].seq for f in released] == [1, 2]
    assert all(Ether(f).dst == PEER_MAC for f in released)


def test_resolution_gives_up_after_three_solicitations():
    interface = make_interface6("tap")
    interface.frame_received(frame6("tap", ping6()), 0.0)
    sent = 1
    now = 0.0
    while interface.next_deadline() is not None and now < 10:
        now = interface.next_deadline()
        sent += sum(1 for f in interface.poll(now) if Ether(f).haslayer(ICMPv6ND_NS))
    assert sent == limits.ND_MAX_MULTICAST_SOLICIT and interface.drops["nd_unresolved"] == 1


def test_cache_entries_age_so_a_moved_neighbour_is_found_again():
    interface = learned_tap6()
    [reply] = interface.frame_received(frame6("tap", ping6()), 1.0)
    assert Ether(reply).dst == PEER_MAC
    later = limits.ND_CACHE_TIMEOUT + 1.0
    [solicitation] = interface.frame_received(frame6("tap", ping6(), eth_src=OTHER_MAC), later)
    assert Ether(solicitation).haslayer(ICMPv6ND_NS)
    [reply] = interface.frame_received(_advertisement_from_peer(lladdr=OTHER_MAC), later)
    assert Ether(reply).dst == OTHER_MAC


def test_start_announces_with_unsolicited_advertisements():
    interface = make_interface6("tap")
    frames = interface.start(0.0)
    now = 0.0
    while interface.next_deadline() is not None:
        now = interface.next_deadline()
        frames += interface.poll(now)
    advertisements = [f for f in frames if Ether(f).haslayer(ICMPv6ND_NA)]
    assert len(advertisements) == limits.ND_MAX_NEIGHBOR_ADVERTISEMENT
    for frame_bytes in advertisements:
        _advertisement(frame_bytes, "33:33:00:00:00:01", "ff02::1", solicited=False)
    assert now == pytest.approx(limits.ND_ANNOUNCE_INTERVAL * (limits.ND_MAX_NEIGHBOR_ADVERTISEMENT - 1))


def test_tun_mode_answers_a_solicitation_without_the_link_layer_option():
    interface = make_interface6("tun")
    solicitation = Ether(neighbour_solicitation(dst=OUR_IP6, lladdr=None))[IPv6]
    [answer] = interface.frame_received(raw(solicitation), 0.0)
    na = IPv6(answer)
    assert na[ICMPv6ND_NA].tgt == OUR_IP6 and not na.haslayer(ICMPv6NDOptDstLLAddr)
    assert_icmpv6_checksum_valid(na)
    assert interface.start(0.0) == []
