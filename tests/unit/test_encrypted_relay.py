"""Encrypted relays on in-memory links: WireGuard sessions carry the data path end to end."""

import pytest

from tunrelay.crypto import keys
from tunrelay.testing import (MemoryLink, RelayPair, encrypted_peer_config, from_device, ipv4_packet, received,
                              relay_from_yaml)

KEY_A, KEY_B, KEY_EVE = (keys.generate_private_key() for _ in range(3))


config = encrypted_peer_config


@pytest.fixture
def pair():
    return RelayPair(config(1, 2, KEY_B), config(2, 1, KEY_A), key_a=KEY_A, key_b=KEY_B)


def test_ping_both_ways_through_a_handshake(pair):
    request, _ = pair.ping_both_ways()
    assert len(pair.a.device.written) == len(pair.b.device.written) == 1
    kinds = [message[0] for _, message in pair.link_a.sent]
    assert kinds[0] == 1 and 4 in kinds  # an initiation, then transport data
    assert all(request[20:] not in message for _, message in pair.link_a.sent)  # never in clear
    state = pair.a.snapshot()["peers"][0]
    assert state["session"] == "established" and state["latest_handshake"] == pair.clock.seconds()


def test_64k_frame_crosses_encrypted(pair):
    big = ipv4_packet("198.51.100.1", "198.51.100.2", b"z" * (65535 - 20))
    from_device(pair.a, big)
    assert pair.b.device.written == [big]


def test_replayed_messages_are_dropped(pair):
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2", b"once"))
    transport = [message for _, message in pair.link_a.sent if message[0] == 4][-1]
    received(pair.b, pair.link_b, ("192.0.2.1", 51820), transport)
    assert len(pair.b.device.written) == 1
    assert pair.b.peers["peer1"].counters.drops["replay"] == 1


def test_tampered_ciphertext_is_dropped(pair):
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2", b"first"))
    pair.link_a.deliver = None
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2", b"second"))
    tampered = bytearray(pair.link_a.sent[-1][1])
    tampered[-1] ^= 1
    received(pair.b, pair.link_b, ("192.0.2.1", 51820), bytes(tampered))
    assert len(pair.b.device.written) == 1
    assert pair.b.drops.counters.drops["decrypt_failed"] + pair.b.peers["peer1"].counters.drops["decrypt_failed"] == 1


def test_source_outside_allowed_ips_is_dropped_after_decryption(pair):
    pair.a.routes.insert("203.0.113.0/24", pair.a.peers["peer2"])
    from_device(pair.a, ipv4_packet("203.0.113.5", "198.51.100.2"))  # A's kernel forwards a foreign source
    assert pair.b.device.written == []
    assert pair.b.peers["peer1"].counters.drops["source_not_allowed"] == 1


def test_a_peer_with_the_wrong_key_gets_nothing_through():
    # Eve knows B's public key and address but not A's private key.
    eve = relay_from_yaml(config(1, 2, KEY_B), private_key=KEY_EVE)
    b = relay_from_yaml(config(2, 1, KEY_A), clock=eve.clock, private_key=KEY_B)
    eve_link, b_link = MemoryLink("udp"), MemoryLink("udp")
    eve_link.deliver = lambda address, message: received(b, b_link, ("192.0.2.1", 51820), message)
    eve.sessions.path_known(eve.peers["peer2"], eve_link, ("192.0.2.2", 51820))
    for _ in range(3):
        from_device(eve, ipv4_packet("198.51.100.1", "198.51.100.2", b"let me in"))
        eve.clock.advance(6)
    initiations = [message for _, message in eve_link.sent if message[0] == 1]
    assert len(initiations) >= 3
    assert b.device.written == [] and b_link.sent == []
    # Every one of Eve's initiations, and nothing else, was refused as from an unknown key.
    assert b.drops.counters.drops == {"unknown_peer": len(initiations)}
    assert b.peers["peer1"].counters.drops == {}


def test_tap_frames_cross_encrypted():
    import struct

    pair = RelayPair(config(1, 2, KEY_B, "tap"), config(2, 1, KEY_A, "tap"), key_a=KEY_A, key_b=KEY_B)
    frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", 0x0806) + b"\x00" * 28
    from_device(pair.a, frame)
    assert pair.b.device.written == [frame]   # byte-exact: a tap frame carries no WireGuard padding


def psk_pair(psk_a, psk_b):
    return RelayPair(config(1, 2, KEY_B), config(2, 1, KEY_A), key_a=KEY_A, key_b=KEY_B,
                     psks_a={"peer2": psk_a}, psks_b={"peer1": psk_b})


def test_matching_preshared_keys_connect_and_mismatched_ones_do_not():
    psk = bytes(range(32))
    good = psk_pair(psk, psk)
    packet = ipv4_packet("198.51.100.1", "198.51.100.2", b"with psk")
    from_device(good.a, packet)
    assert good.b.device.written == [packet]
    bad = psk_pair(psk, bytes(32))
    from_device(bad.a, packet)
    assert bad.b.device.written == []
    # psk2: B cannot tell (the psk is mixed in after its DH), so it answers; A cannot open the
    # response, and drops exactly that one message. No session exists on either side.
    assert bad.a.drops.counters.drops == {"decrypt_failed": 1}
    assert bad.a.snapshot()["peers"][0]["session"] == "handshaking"
    assert bad.b.snapshot()["peers"][0]["latest_handshake"] is None


def test_roaming_follows_the_last_authenticated_source(pair):
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2", b"hello"))
    # B's packets now come from a new address: A must answer there.
    pair.link_b.deliver = lambda address, message: received(pair.a, pair.link_a, ("192.0.2.99", 4444), message)
    from_device(pair.b, ipv4_packet("198.51.100.2", "198.51.100.1", b"from elsewhere"))
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2", b"follow"))
    assert pair.link_a.sent[-1][0] == ("192.0.2.99", 4444)
    assert pair.a.snapshot()["peers"][0]["endpoint"] == pair.link_a.describe(("192.0.2.99", 4444))


def test_forged_source_cannot_move_the_endpoint(pair):
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2", b"hello"))
    received(pair.a, pair.link_a, ("203.0.113.66", 1), b"\x04\x00\x00\x00" + bytes(28))  # garbage type 4
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2", b"still here"))
    assert pair.link_a.sent[-1][0] == ("192.0.2.2", 51820)


def test_a_dead_peer_gets_a_fresh_handshake_on_the_next_frame(pair):
    pair.ping_both_ways()
    pair.clock.advance(30)   # silent past a dead_peer_timeout
    sent_before = len(pair.link_a.sent)
    pair.a.sessions.peer_dead(pair.a.peers["peer2"])
    pair.clock.advance(0)
    from_device(pair.a, ipv4_packet("198.51.100.1", "198.51.100.2", b"after"))
    assert pair.link_a.sent[sent_before][1][0] == 1   # an initiation, at once
    assert pair.b.device.written[-1].endswith(b"after")


def test_idle_connections_cannot_lock_a_real_peer_out():
    from tunrelay.constants import HANDSHAKE_DEADLINE, MAX_PENDING_STREAMS, MAX_PENDING_STREAMS_PER_SOURCE

    relay = relay_from_yaml(config(1, 2, KEY_B), private_key=KEY_A)

    def connect(host, port):
        link = MemoryLink("tcp", "%s:%d" % (host, port))
        assert relay.sessions.stream_opened(link, (host, port), None), "never refuse the newest"
        return link

    # One host reopening idle connections only ever evicts its own oldest.
    one_host = [connect("198.18.0.2", 1000 + n) for n in range(200)]
    share = MAX_PENDING_STREAMS_PER_SOURCE
    assert [bool(link.closed) for link in one_host] == [True] * (200 - share) + [False] * share
    peer_link = connect("192.0.2.2", 40000)
    # Many hosts fill the whole table: the host holding the most loses its oldest, never the peer.
    many_hosts = [connect("198.18.1.%d" % (n % 40), 2000 + n) for n in range(400)]
    assert not peer_link.closed
    still_open = [link for link in one_host + many_hosts if not link.closed]
    assert len(still_open) + 1 == MAX_PENDING_STREAMS
    assert relay.drops.counters.drops["too_many_unauthenticated"] == 601 - MAX_PENDING_STREAMS
    relay.clock.advance(HANDSHAKE_DEADLINE)   # and nothing idle outlives its handshake window
    assert all(link.closed for link in still_open + [peer_link])
    assert relay.drops.counters.drops["no_handshake"] == MAX_PENDING_STREAMS
