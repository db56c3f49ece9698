"""The relay with ``interface.offload: true``: TSO super-packets whole to a tunrelay peer that
opted in over TCP, finished MTU-sized segments to everyone else (and to that peer over UDP),
and what each kind of frame looks like on the way to the device."""

import struct
import textwrap

from scapy.layers.inet import IP, TCP

from tunrelay.crypto import keys
from tunrelay.datapath.vnet import F_NEEDS_CSUM, GSO_TCPV4, PLAIN_HEADER, VNET_HEADER
from tunrelay.testing import MemoryLink, ipv4_packet, relay_from_yaml

PRIVATE = keys.generate_private_key()
KEYS = {n: keys.encode_key(keys.public_key(keys.generate_private_key())) for n in (1, 2)}


def offload_relay(fast_transport="tcp"):
    relay = relay_from_yaml(textwrap.dedent("""\
        interface: {name: tr0, addresses: [198.51.100.1/24], offload: true}
        private_key_file: unused.key
        peers:
          - {name: fast, public_key: "%s", endpoint: "%s://192.0.2.2:1", allowed_ips: [198.51.100.2/32], offload: true}
          - {name: slow, public_key: "%s", endpoint: "udp://192.0.2.3:1", allowed_ips: [198.51.100.3/32]}
        """) % (KEYS[1], fast_transport, KEYS[2]), private_key=PRIVATE)
    relay.sessions.path_known(relay.peers["fast"], MemoryLink(fast_transport), ("192.0.2.2", 1))
    relay.sessions.path_known(relay.peers["slow"], MemoryLink("udp"), ("192.0.2.3", 1))
    sent = {"fast": [], "slow": []}
    # Observe what would be sealed into one message each.
    relay.datapath.sender.to_peer_whole = lambda peer, data: sent[peer.name].append(bytes(data))
    return relay, sent


def super_packet(destination, size=20000, mss=1400):
    packet = bytearray(bytes(IP(src="198.51.100.1", dst=destination) / TCP(sport=1, dport=2, flags="PA") / (b"s" * size)))
    header = struct.pack("<BBHHHH", F_NEEDS_CSUM, GSO_TCPV4, 40, mss, 20, 16)
    return header + bytes(packet)


def _refreshed(segment):
    packet = IP(segment)
    packet[TCP].chksum = None
    return packet


def test_offload_peer_gets_the_super_packet_whole_over_tcp():
    relay, sent = offload_relay()
    frame = super_packet("198.51.100.2")
    relay.datapath.from_device([frame])
    assert sent["fast"] == [frame]


def test_over_udp_even_an_offload_peer_gets_mtu_sized_segments():
    relay, sent = offload_relay(fast_transport="udp")
    relay.datapath.from_device([super_packet("198.51.100.2", size=20000, mss=1400)])
    assert len(sent["fast"]) == 15 and all(len(segment) <= 1440 for segment in sent["fast"])
    assert not any(segment.startswith(PLAIN_HEADER) for segment in sent["fast"])   # the standard wire


def test_other_peers_get_finished_mtu_sized_segments():
    relay, sent = offload_relay()
    relay.datapath.from_device([super_packet("198.51.100.3", size=20000, mss=1400)])
    assert len(sent["slow"]) == 15
    assert all(len(segment) <= 1440 and IP(segment)[TCP].chksum == IP(bytes(_refreshed(segment)))[TCP].chksum
               for segment in sent["slow"])
    assert b"".join(bytes(IP(segment)[TCP].payload) for segment in sent["slow"]) == b"s" * 20000


def test_an_ordinary_packet_to_an_offload_peer_over_tcp_gets_a_plain_header():
    relay, sent = offload_relay()
    packet = ipv4_packet("198.51.100.1", "198.51.100.2", b"small")
    relay.datapath.from_device([PLAIN_HEADER + packet])
    assert sent["fast"] == [PLAIN_HEADER + packet] and sent["slow"] == []


def test_frames_from_an_offload_peer_keep_their_header_on_the_way_to_the_device():
    relay, _ = offload_relay()
    receiver = relay.datapath.receiver
    whole = super_packet("198.51.100.1")[:VNET_HEADER] + bytes(
        IP(src="198.51.100.2", dst="198.51.100.1") / TCP(sport=1, dport=2, flags="PA") / (b"w" * 5000))
    relay.datapath.now = relay.clock.seconds()
    receiver.deliver_frame(relay.peers["fast"], whole + b"\x00" * 7)   # WireGuard padding is trimmed
    plain = ipv4_packet("198.51.100.3", "198.51.100.1", b"from a plain peer")
    receiver.deliver(relay.peers["slow"], plain)
    relay.datapath.finish()
    # The UDP packet is written at once; the TCP super-packet when the batch ends.
    assert [frame for _, frame in relay.device.writes] == [PLAIN_HEADER + plain, whole]
    assert relay.device.writes[1][0].gso_type == GSO_TCPV4


def test_a_malformed_super_packet_is_dropped_not_raised():
    relay, sent = offload_relay()
    broken = bytearray(super_packet("198.51.100.3"))
    broken[VNET_HEADER + 9] = 17      # claims TSO but carries UDP
    relay.datapath.from_device([bytes(broken)])
    assert sent["slow"] == [] and relay.drops.counters.drops["gso_not_tcp"] == 1
