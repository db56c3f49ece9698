"""The forwarding core on in-memory fakes: two relays ping each other, and bad input is counted."""

import struct
import textwrap

import pytest

from tunrelay.testing import MemoryLink, RelayPair, ipv4_packet, relay_from_yaml, from_device, received


def config(own, peer_ip, mode="tun", extra_peer="", extra=""):
    return textwrap.dedent("""\
        interface: {name: tr0, mode: %s, addresses: [198.51.100.%d/24]}
        plaintext: true
        %s
        peers:
          - name: %s
            endpoint: "udp://192.0.2.%d:51820"
            allowed_ips: [198.51.100.%d/32]
        %s""") % (mode, own, extra, "peer%d" % peer_ip, peer_ip, peer_ip, extra_peer)


@pytest.fixture
def pair():
    return RelayPair(config(1, 2), config(2, 1))


def test_ping_both_ways_in_memory(pair):
    request, reply = pair.ping_both_ways()
    assert pair.link_a.sent == [(("192.0.2.2", 51820), request)]  # plaintext: the packet itself
    peer = pair.a.peers["peer2"]
    assert (peer.counters.tx_packets, peer.counters.rx_packets) == (1, 1)
    assert peer.counters.tx_bytes == len(request) and peer.counters.rx_bytes == len(reply)


def test_64k_frame_crosses_whole(pair):
    big = ipv4_packet("198.51.100.1", "198.51.100.2", b"z" * (65535 - 20))
    from_device(pair.a, big)
    assert pair.b.device.written == [big]


def test_ethernet_padding_is_trimmed_before_the_device(pair):
    packet = ipv4_packet("198.51.100.1", "198.51.100.2", b"hi")
    pair.a.peers["peer2"].active_path[0].send(("192.0.2.2", 51820), packet + b"\x00" * 10)
    assert pair.b.device.written == [packet]


def test_no_route_is_counted_not_sent(pair):
    from_device(pair.a, ipv4_packet("198.51.100.1", "203.0.113.9"))
    assert pair.link_a.sent == [] and pair.a.drops.counters.drops["no_route"] == 1


def test_source_outside_allowed_ips_is_dropped(pair):
    spoofed = ipv4_packet("198.51.100.99", "198.51.100.2")
    pair.link_a.send(("192.0.2.2", 51820), spoofed)
    assert pair.b.device.written == []
    assert pair.b.peers["peer1"].counters.drops["source_not_allowed"] == 1


@pytest.mark.parametrize("garbage, reason", [
    (b"\x45" + b"\x00" * 5, "truncated_ip_header"),
    (b"\x45\x00\xff\xff" + b"\x00" * 16, "bad_ip_length"),
    (b"\x12" * 40, "not_ip"),
    (b"\x60" + b"\x00" * 3 + b"\x10\x00" + b"\x00" * 34, "bad_ip_length"),
])
def test_malformed_frames_from_a_peer_are_counted(pair, garbage, reason):
    pair.link_a.send(("192.0.2.2", 51820), garbage)
    assert pair.b.device.written == []
    assert pair.b.peers["peer1"].counters.drops[reason] == 1


def test_device_refusal_is_counted_and_later_frames_still_flow(pair):
    pair.b.device.refuse_with = "device_rejected"
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2"))
    pair.b.device.refuse_with = None
    good = ipv4_packet("198.51.100.1", "198.51.100.2", b"after")
    from_device(pair.a, good)
    assert pair.b.device.written == [good]
    assert pair.b.peers["peer1"].counters.drops["device_rejected"] == 1


def test_unknown_source_address_is_dropped():
    relay = relay_from_yaml(config(1, 2))
    link = MemoryLink("udp")
    received(relay, link, ("192.0.2.77", 4000), ipv4_packet("198.51.100.2", "198.51.100.1"))
    assert relay.device.written == [] and relay.drops.counters.drops["unknown_peer"] == 1


def test_endpointless_peer_is_learned_from_its_first_datagram():
    relay = relay_from_yaml("interface: {}\nplaintext: true\npeers:\n  - {name: b, allowed_ips: [198.51.100.2/32]}\n")
    link = MemoryLink("udp")
    from_device(relay, ipv4_packet("198.51.100.1", "198.51.100.2"))
    assert relay.peers["b"].counters.drops["no_path"] == 1
    received(relay, link, ("192.0.2.9", 1234), ipv4_packet("198.51.100.2", "198.51.100.1"))
    from_device(relay, ipv4_packet("198.51.100.1", "198.51.100.2", b"back"))
    assert link.sent[-1][0] == ("192.0.2.9", 1234)


def test_failed_send_is_counted(pair):
    pair.link_a.refuse_with = "too_big_for_transport"
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2"))
    assert pair.a.peers["peer2"].counters.drops["too_big_for_transport"] == 1
    assert pair.a.peers["peer2"].counters.tx_packets == 0


def test_keepalive_sent_only_after_a_quiet_interval():
    keepalive = "    keepalive: 25\n"
    pair = RelayPair(config(1, 2, extra_peer=keepalive), config(2, 1))
    pair.clock.advance(10)
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2"))
    pair.clock.advance(15)  # 25 s since start, but only 15 s since traffic: no keepalive
    assert [m for _, m in pair.link_a.sent if m == b""] == []
    pair.clock.advance(25)
    assert [m for _, m in pair.link_a.sent if m == b""] == [b""]
    assert pair.b.device.written[-1] != b""  # a keepalive never reaches the device
    assert pair.b.peers["peer1"].last_received == pair.clock.seconds()


def hub_config():
    return textwrap.dedent("""\
        interface: {name: tr0, addresses: [198.51.100.1/24]}
        plaintext: true
        peers:
          - {name: a, endpoint: "udp://192.0.2.2:1", allowed_ips: [198.51.100.2/32]}
          - {name: b, endpoint: "udp://192.0.2.3:1", allowed_ips: [198.51.100.3/32]}
        """)


def test_hub_forwards_between_peers_without_the_device():
    relay = relay_from_yaml(hub_config())
    link = MemoryLink("udp")
    relay.path_opened(relay.peers["a"], link, ("192.0.2.2", 1))
    relay.path_opened(relay.peers["b"], link, ("192.0.2.3", 1))
    packet = ipv4_packet("198.51.100.2", "198.51.100.3", b"spoke to spoke")
    received(relay, link, ("192.0.2.2", 1), packet)
    assert link.sent == [(("192.0.2.3", 1), packet)]
    assert relay.device.written == []


def test_forwarding_between_peers_can_be_disabled():
    relay = relay_from_yaml(hub_config() + "forward_between_peers: false\n")
    link = MemoryLink("udp")
    relay.path_opened(relay.peers["a"], link, ("192.0.2.2", 1))
    relay.path_opened(relay.peers["b"], link, ("192.0.2.3", 1))
    packet = ipv4_packet("198.51.100.2", "198.51.100.3")
    received(relay, link, ("192.0.2.2", 1), packet)
    assert link.sent == [] and relay.device.written == [packet]


def ethernet_frame(destination, source, payload=b"\x00" * 46):
    return destination + source + struct.pack("!H", 0x0800) + payload


def test_tap_frames_cross_and_runts_are_dropped():
    pair = RelayPair(config(1, 2, mode="tap"), config(2, 1, mode="tap"))
    frame = ethernet_frame(b"\xff" * 6, b"\x02\x00\x00\x00\x00\x01")
    from_device(pair.a, frame)
    assert pair.b.device.written == [frame]
    pair.link_a.send(("192.0.2.2", 51820), b"\x01" * 13)
    assert pair.b.peers["peer1"].counters.drops["truncated_ethernet_header"] == 1


def tap_hub():
    relay = relay_from_yaml(hub_config().replace("addresses: [198.51.100.1/24]}", "mode: tap}"))
    link = MemoryLink("udp")
    relay.path_opened(relay.peers["a"], link, ("192.0.2.2", 1))
    relay.path_opened(relay.peers["b"], link, ("192.0.2.3", 1))
    return relay, link


MAC_A, MAC_B, MAC_HOST = (bytes([2, 0, 0, 0, 0, n]) for n in (0xA, 0xB, 0x1))


def test_tap_unknown_unicast_floods_then_learned_unicast_goes_to_one_port():
    relay, link = tap_hub()
    from_device(relay, ethernet_frame(MAC_A, MAC_HOST))
    assert sorted(address for address, _ in link.sent) == [("192.0.2.2", 1), ("192.0.2.3", 1)]
    link.sent.clear()
    received(relay, link, ("192.0.2.2", 1), ethernet_frame(MAC_HOST, MAC_A))
    assert relay.device.written == [ethernet_frame(MAC_HOST, MAC_A)] and link.sent == []
    from_device(relay, ethernet_frame(MAC_A, MAC_HOST))
    assert [address for address, _ in link.sent] == [("192.0.2.2", 1)]


def test_tap_peer_to_peer_unicast_skips_the_device_and_broadcast_reaches_all():
    relay, link = tap_hub()
    received(relay, link, ("192.0.2.3", 1), ethernet_frame(b"\xff" * 6, MAC_B))
    assert len(relay.device.written) == 1 and [a for a, _ in link.sent] == [("192.0.2.2", 1)]
    link.sent.clear()
    received(relay, link, ("192.0.2.2", 1), ethernet_frame(MAC_B, MAC_A))
    assert [a for a, _ in link.sent] == [("192.0.2.3", 1)] and len(relay.device.written) == 1


def test_tap_mac_flood_from_one_peer_is_bounded_and_counted():
    relay, link = tap_hub()
    for n in range(3000):
        received(relay, link, ("192.0.2.2", 1), ethernet_frame(b"\xff" * 6, bytes([2, 1, 0, 0, n >> 8, n & 255])))
    assert relay.peers["a"].counters.drops["mac_table_port_full"] == 3000 - relay.switch.max_per_port
    received(relay, link, ("192.0.2.3", 1), ethernet_frame(b"\xff" * 6, MAC_B))
    assert relay.switch.lookup(MAC_B, relay.clock.seconds()) is relay.peers["b"]


def test_tap_multicast_source_is_dropped():
    relay, link = tap_hub()
    received(relay, link, ("192.0.2.2", 1), ethernet_frame(MAC_HOST, b"\x03" + MAC_A[1:]))
    assert relay.peers["a"].counters.drops["multicast_source_mac"] == 1 and relay.device.written == []


def test_state_changes_are_one_structured_line_each():
    from twisted.logger import capturedLogs

    relay = relay_from_yaml("interface: {}\nplaintext: true\npeers:\n  - {name: b, allowed_ips: [198.51.100.2/32]}\n")
    link = MemoryLink("udp")
    packet = ipv4_packet("198.51.100.2", "198.51.100.1")
    with capturedLogs() as events:
        received(relay, link, ("192.0.2.9", 1000), packet)
        received(relay, link, ("192.0.2.9", 1000), packet)
        received(relay, link, ("192.0.2.10", 2000), packet)
        relay.remove_peer("b")
    states = [(event["event"], event["peer"]) for event in events if "event" in event]
    assert states == [("peer_up", "b"), ("roaming", "b"), ("peer_down", "b")]
    roaming = next(event for event in events if event.get("event") == "roaming")
    assert "192.0.2.10" in roaming["new_path"] and "192.0.2.9" in roaming["old_path"]


def multicast_hub():
    relay = relay_from_yaml(textwrap.dedent("""\
        interface: {name: tr0, addresses: [198.51.100.1/24]}
        plaintext: true
        peers:
          - {name: a, endpoint: "udp://192.0.2.2:1", allowed_ips: [198.51.100.2/32, 224.0.0.0/4]}
          - {name: b, endpoint: "udp://192.0.2.3:1", allowed_ips: [198.51.100.3/32, 224.0.0.0/4]}
          - {name: c, endpoint: "udp://192.0.2.4:1", allowed_ips: [198.51.100.4/32]}
        """))
    link = MemoryLink("udp")
    for name, last in (("a", 2), ("b", 3), ("c", 4)):
        relay.path_opened(relay.peers[name], link, ("192.0.2.%d" % last, 1))
    return relay, link


def test_tun_multicast_from_the_kernel_reaches_every_covering_peer():
    relay, link = multicast_hub()
    hello = ipv4_packet("198.51.100.1", "224.0.0.5", b"ospf hello", protocol=89)
    from_device(relay, hello)
    assert sorted(address for address, _ in link.sent) == [("192.0.2.2", 1), ("192.0.2.3", 1)]


def test_tun_multicast_from_a_peer_reaches_the_kernel_and_the_other_members():
    relay, link = multicast_hub()
    datagram = ipv4_packet("198.51.100.2", "233.252.0.1", b"to a global group")   # MCAST-TEST-NET
    received(relay, link, ("192.0.2.2", 1), datagram)
    assert relay.device.written == [datagram]
    assert [address for address, _ in link.sent] == [("192.0.2.3", 1)]


def test_link_local_multicast_from_a_peer_goes_to_the_kernel_only():
    # A neighbour's OSPF Hello is for this site's daemon; the other neighbours would drop it.
    relay, link = multicast_hub()
    hello = ipv4_packet("198.51.100.2", "224.0.0.5", b"ospf hello", protocol=89)
    received(relay, link, ("192.0.2.2", 1), hello)
    assert relay.device.written == [hello] and link.sent == []


def test_dead_peer_is_declared_once_and_revived_by_traffic():
    from twisted.logger import capturedLogs

    pair = RelayPair(config(1, 2, extra="dead_peer_timeout: 20"), config(2, 1))
    refreshed = []
    pair.a.endpoint_refresh = lambda peer, urgent: refreshed.append((peer, urgent))
    pair.a.start_liveness()
    pair.ping_both_ways()
    with capturedLogs() as events:
        pair.clock.pump([5] * 4)                      # 20 s: still alive
        assert not pair.a.peers["peer2"].dead
        pair.clock.pump([5] * 2)                      # 30 s since B was last heard
        assert pair.a.peers["peer2"].dead and refreshed == [(pair.a.peers["peer2"], True)]
        pair.clock.pump([5] * 4)                      # stays down, declared once
        from_device(pair.b, ipv4_packet("198.51.100.2", "198.51.100.1", b"back"))
    states = [event["event"] for event in events if "event" in event]
    assert states == ["peer_down", "peer_up"]
    assert not pair.a.peers["peer2"].dead and pair.a.snapshot()["peers"][0]["alive"]
