"""The data path end to end in memory: two encrypted relays, two memory devices, batches across.

What the kernel would see on the far device is checked exactly: ordinary packets arrive
byte for byte, a batch of one TCP flow's segments arrives as one coalesced super-packet
that scapy accepts, tap frames arrive without WireGuard's padding, and the counters say
what crossed.
"""

import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from tunrelay.crypto import keys
from tunrelay.datapath.vnet import GSO_TCPV4
from tunrelay.testing import RelayPair, encrypted_peer_config, from_device, ipv4_packet

KEY_A, KEY_B = keys.generate_private_key(), keys.generate_private_key()


config = encrypted_peer_config


def pair(mode="tun", offload=""):
    relays = RelayPair(config(1, 2, KEY_B, mode, offload), config(2, 1, KEY_A, mode, offload),
                       key_a=KEY_A, key_b=KEY_B, batched=True)
    relays.ping_both_ways() if mode == "tun" else None
    return relays


def segments(count, size=1368, seq=1000, flags="A"):
    return [bytes(IP(src="198.51.100.1", dst="198.51.100.2", id=i) /
                  TCP(sport=40000, dport=5201, seq=seq + i * size, ack=7, flags=flags if i == count - 1 else "A")
                  / (bytes([i % 256]) * size)) for i in range(count)]


def test_a_batch_of_one_flow_arrives_as_one_coalesced_write():
    relays = pair()
    before = len(relays.b.device.writes)
    burst = segments(30, flags="PA")
    from_device(relays.a, *burst)
    writes = relays.b.device.writes[before:]
    assert len(writes) == 1, "one device write for the whole run"
    header, frame = writes[0]
    assert header.gso_type == GSO_TCPV4 and header.gso_size == 1368
    merged = IP(frame[10:])
    assert bytes(merged[TCP].payload) == b"".join(bytes(IP(s)[TCP].payload) for s in burst)
    assert "P" in merged[TCP].flags
    fresh = merged.copy()
    fresh[TCP].chksum = None
    assert IP(bytes(fresh))[TCP].chksum == merged[TCP].chksum   # what the kernel will verify
    peer = relays.b.peers["peer1"]
    assert peer.counters.rx_packets == 31 and relays.a.peers["peer2"].counters.tx_packets == 31


def test_every_packet_of_a_batch_is_sealed_into_its_own_mtu_sized_message():
    relays = pair()
    sent_before = len(relays.link_a.sent)
    from_device(relays.a, *segments(10))
    messages = [message for _, message in relays.link_a.sent[sent_before:]]
    assert len(messages) == 10 and all(message[0] == 4 for message in messages)
    assert all(len(message) <= 1420 + 32 for message in messages)   # padded at most to the MTU


def test_ordinary_packets_arrive_byte_exact_in_order():
    relays = pair()
    packets = [ipv4_packet("198.51.100.1", "198.51.100.2", bytes([n % 256]) * n, protocol=1) for n in (1, 15, 16, 17, 1391)]
    before = len(relays.b.device.written)
    from_device(relays.a, *packets)
    assert relays.b.device.written[before:] == packets


def test_no_coalescing_without_virtio_headers():
    relays = pair(offload=", offload: false")
    before = len(relays.b.device.written)
    burst = segments(5)
    from_device(relays.a, *burst)
    assert relays.b.device.written[before:] == burst and relays.b.device.writes[-1][0] is None


def test_a_kernel_that_refuses_coalesced_writes_gets_every_packet_one_by_one():
    relays = pair()
    relays.b.device.refuse_coalesced = True
    before = len(relays.b.device.written)
    burst = segments(4)
    from_device(relays.a, *burst)
    assert relays.b.device.written[before:] == burst
    assert not relays.b.datapath.coalescer.tcp and not relays.b.drops.counters.drops


@pytest.mark.parametrize("size", [42, 60, 61, 1514])
def test_tap_frames_arrive_without_padding(size):
    relays = pair("tap")
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="198.51.100.1",
                                                                                 pdst="198.51.100.2"))
    frame += bytes(size - len(frame))
    from_device(relays.a, frame)
    assert relays.b.device.written == [frame]   # byte-exact: no WireGuard padding on the far tap
    transport = [message for _, message in relays.link_a.sent if message[0] == 4][-1]
    assert len(transport) == 32 + size


def test_tun_padding_stops_at_the_mtu():
    relays = pair()
    full = ipv4_packet("198.51.100.1", "198.51.100.2", bytes(1420 - 20))
    from_device(relays.a, full)
    assert len(relays.link_a.sent[-1][1]) == 1420 + 32   # 1420 is not a multiple of 16: capped, not 1424
    assert relays.b.device.written[-1] == full
    from_device(relays.a, ipv4_packet("198.51.100.1", "198.51.100.2", bytes(1)))
    assert (len(relays.link_a.sent[-1][1]) - 32) % 16 == 0   # small packets still padded


@pytest.mark.parametrize("link_comes_back", [False, True])
def test_a_frame_waiting_for_a_handshake_counts_as_sent_only_if_it_leaves(link_comes_back):
    relays = RelayPair(config(1, 2, KEY_B), config(2, 1, KEY_A), key_a=KEY_A, key_b=KEY_B, batched=True)
    relays.link_a.refuse_with = "underlay_down"   # the initiation cannot leave either
    from_device(relays.a, ipv4_packet("198.51.100.1", "198.51.100.2", b"waits"))
    peer = relays.a.peers["peer2"]
    assert peer.counters.tx_packets == 0
    if link_comes_back:
        relays.link_a.refuse_with = None
    for _ in range(25):   # past every retransmission (REKEY_ATTEMPT_TIME)
        relays.clock.advance(6)
    if link_comes_back:
        assert peer.counters.tx_packets == 1 and not peer.counters.drops["handshake_timeout"]
        assert relays.b.device.written[-1].endswith(b"waits")
    else:
        assert peer.counters.tx_packets == 0 and peer.counters.drops["handshake_timeout"] == 1


def test_device_frames_and_their_counters_in_one_batch():
    relays = pair()
    counters = relays.a.device_counters
    rx_before = counters.rx_packets
    from_device(relays.a, *segments(3))
    assert counters.rx_packets == rx_before + 3
    assert struct.unpack("!H", relays.b.device.writes[-1][1][10 + 2:10 + 4])[0] == 20 + 20 + 3 * 1368


@pytest.mark.parametrize("mode", ["tun", "tap"])
def test_a_frame_marked_only_data_valid_is_an_ordinary_frame(mode):
    # The kernel sets DATA_VALID on forwarded packets whatever offload was asked for: no work is left.
    relays = pair(mode)
    packet = ipv4_packet("198.51.100.1", "198.51.100.2", b"verified")
    frame = packet if mode == "tun" else bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff")) + packet
    assert relays.a.datapath.device_vnet
    relays.a.datapath.from_device([struct.pack("<BBHHHH", 2, 0, 0, 0, 0, 0) + frame])
    assert relays.b.device.written[-1] == frame and not relays.a.drops.counters.drops


def test_a_wireguard_peer_without_session_state_is_never_sent_in_clear():
    relays = pair()
    peer = relays.a.peers["peer2"]
    sent_before = len(relays.link_a.sent)
    peer.wg = None   # its core handle gone (the peer being removed mid-batch)
    relays.a.datapath.sender.to_peer_whole(peer, b"secret payload")
    assert len(relays.link_a.sent) == sent_before
    assert peer.counters.drops["no_session"] == 1


def test_the_kernels_link_local_chatter_is_counted_without_a_warning():
    from scapy.layers.inet6 import ICMPv6MLReport2, ICMPv6ND_RS, IPv6
    from twisted.logger import capturedLogs

    relays = pair()
    chatter = [bytes(IPv6(src="fe80::1", dst="ff02::2") / ICMPv6ND_RS()),
               bytes(IPv6(src="fe80::1", dst="ff02::16", hlim=1) / ICMPv6MLReport2()),
               bytes(IPv6(src="fe80::1", dst="fe80::2") / b"x"),
               ipv4_packet("198.51.100.1", "224.0.0.251", b"mdns")]
    stray = ipv4_packet("198.51.100.1", "203.0.113.9", b"nobody's")
    with capturedLogs() as events:
        from_device(relays.a, *chatter)
        from_device(relays.a, stray)
    drops = relays.a.drops.counters.drops
    assert drops["link_local_no_route"] == 4 and drops["no_route"] == 1
    assert [event.get("reason") for event in events if "reason" in event] == ["no_route"]


@pytest.mark.parametrize("mode", ["tun", "tap"])
def test_only_tcp_waits_for_the_end_of_a_batch(mode):
    # A receiver must be able to read while the batch is still being opened: a UDP flood met
    # in one burst per batch overflowed a default receive buffer.
    relays = pair(mode)
    device = relays.b.datapath
    udp = ipv4_packet("198.51.100.1", "198.51.100.2", b"datagram")
    tcp = bytes(IP(src="198.51.100.1", dst="198.51.100.2") / TCP(sport=1, dport=2, flags="A") / b"segment")
    if mode == "tap":
        ethernet = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x0800))
        udp, tcp = ethernet + udp, ethernet + tcp
    before = len(relays.b.device.written)
    device.now = relays.clock.seconds()
    device._in_batch = True
    device.to_device(tcp, None)
    device.to_device(udp, None)
    written = relays.b.device.written[before:]
    assert written == [udp]          # the datagram at once, the segment still waiting
    device.finish()
    assert relays.b.device.written[before:] == [udp, tcp]
