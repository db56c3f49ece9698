"""The relay in offload mode: super-packets whole to offload peers, segments to the rest,
and a virtio-net header on every device write."""

import struct
import textwrap

from scapy.layers.inet import IP, TCP

from tunrelay.constants import OFFLOAD_FRAME_LIMIT, OFFLOAD_GSO_MAX_SIZE, UDP_MAX_PAYLOAD
from tunrelay.crypto import keys
from tunrelay.forwarding.offload import F_NEEDS_CSUM, GSO_TCPV4, PLAIN_HEADER, VNET_HEADER
from tunrelay.testing import ipv4_packet, relay_from_yaml

PRIVATE = keys.generate_private_key()
KEYS = {n: keys.encode_key(keys.public_key(keys.generate_private_key())) for n in (1, 2)}


def offload_relay():
    relay = relay_from_yaml(textwrap.dedent("""\
        interface: {name: tr0, addresses: [198.51.100.1/24], offload: true}
        private_key_file: unused.key
        peers:
          - {name: fast, public_key: "%s", endpoint: "tcp://192.0.2.2:1", allowed_ips: [198.51.100.2/32], offload: true}
          - {name: slow, public_key: "%s", endpoint: "udp://192.0.2.3:1", allowed_ips: [198.51.100.3/32]}
        """) % (KEYS[1], KEYS[2]), private_key=PRIVATE)
    sent = {"fast": [], "slow": []}
    relay.sessions.send = lambda peer, frame: sent[peer.name].append(frame)  # observe what is encrypted
    return relay, sent


def super_packet(destination, size=20000, mss=1400):
    packet = bytearray(bytes(IP(src="198.51.100.1", dst=destination) / TCP(sport=1, dport=2, flags="PA") / (b"s" * size)))
    header = struct.pack("<BBHHHH", F_NEEDS_CSUM, GSO_TCPV4, 40, mss, 20, 16)
    return header + bytes(packet)


def test_offload_peer_gets_the_super_packet_whole():
    relay, sent = offload_relay()
    frame = super_packet("198.51.100.2")
    relay.device_frame(frame)
    assert sent["fast"] == [frame]


def test_other_peers_get_finished_mtu_sized_segments():
    relay, sent = offload_relay()
    relay.device_frame(super_packet("198.51.100.3", size=20000, mss=1400))
    assert len(sent["slow"]) == 15
    assert all(len(segment) <= 1440 and IP(segment)[TCP].chksum == IP(bytes(_refreshed(segment)))[TCP].chksum
               for segment in sent["slow"])


def _refreshed(segment):
    packet = IP(segment)
    packet[TCP].chksum = None
    return packet


def test_every_device_write_carries_a_vnet_header():
    relay, _ = offload_relay()
    plain = ipv4_packet("198.51.100.3", "198.51.100.1", b"from a plain peer")
    relay.frame_from_peer(relay.peers["slow"], plain)
    whole = PLAIN_HEADER + ipv4_packet("198.51.100.2", "198.51.100.1", b"from an offload peer")
    relay.frame_from_peer(relay.peers["fast"], whole + b"\x00" * 7)   # WireGuard padding is trimmed
    assert relay.device.written == [PLAIN_HEADER + plain, whole]


def test_a_malformed_super_packet_is_dropped_not_raised():
    relay, sent = offload_relay()
    broken = bytearray(super_packet("198.51.100.3"))
    broken[VNET_HEADER + 9] = 17      # claims TSO but carries UDP
    relay.device_frame(bytes(broken))
    assert sent["slow"] == [] and relay.drops.counters.drops["gso_not_tcp"] == 1


def test_a_super_packet_too_large_for_one_datagram_reaches_an_offload_peer_cut():
    relay, sent = offload_relay()
    frame = super_packet("198.51.100.2", size=OFFLOAD_FRAME_LIMIT, mss=1400)
    assert len(frame) > OFFLOAD_FRAME_LIMIT
    relay.device_frame(frame)
    assert len(sent["fast"]) == -(-OFFLOAD_FRAME_LIMIT // 1400)
    assert all(piece.startswith(PLAIN_HEADER) and len(piece) <= VNET_HEADER + 1440 for piece in sent["fast"])
    payload = b"".join(bytes(IP(piece[VNET_HEADER:])[TCP].payload) for piece in sent["fast"])
    assert payload == b"s" * OFFLOAD_FRAME_LIMIT


def test_the_largest_super_packet_fits_one_udp_datagram_after_wireguard():
    padded = -(-OFFLOAD_FRAME_LIMIT // 16) * 16
    assert 16 + padded + 16 <= UDP_MAX_PAYLOAD
    assert OFFLOAD_GSO_MAX_SIZE + VNET_HEADER == OFFLOAD_FRAME_LIMIT
