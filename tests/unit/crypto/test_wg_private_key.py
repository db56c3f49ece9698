"""The core without a private key yet, and with a key replaced while peers are live (UAPI's private_key)."""

import random

import pytest

from tunrelay.crypto import keys
from tunrelay.crypto.events import Drop, PeerConfig, Transmit
from tunrelay.crypto.session import WireGuardCore

from wg_harness import Net, ipv4_packet


def keyless_core():
    peer_private = keys.generate_private_key()
    core = WireGuardCore(None, [PeerConfig(keys.public_key(peer_private), endpoint="B", peer_id="b")])
    return core, peer_private


def test_without_a_key_frames_are_counted_drops_and_nothing_is_sent():
    core, _ = keyless_core()
    assert core.public_key is None
    for _ in range(3):
        events = core.send_frame("b", ipv4_packet(), 100.0)
        assert not [event for event in events if isinstance(event, Transmit)]
        assert [event.reason for event in events if isinstance(event, Drop)] == ["no_private_key"]
    assert core.drops["no_private_key"] == 3
    core.tick(1000.0)   # timers with no key fire nothing and raise nothing


def test_without_a_key_an_initiation_is_a_counted_drop():
    keyless, _ = keyless_core()
    net = Net()
    initiation = net.a.send_frame("b", ipv4_packet(), net.now)[0].data
    events = keyless.datagram_received(initiation, "A", net.now)
    assert [(type(event), event.reason) for event in events] == [(Drop, "no_private_key")]


def test_a_key_set_later_lets_the_handshake_complete():
    net = Net()
    net.b.set_private_key(None)
    net.send("A", ipv4_packet(b"early"))
    assert net.delivered("B") == [] and net.b.drops["no_private_key"] == 1
    net.b.set_private_key(net.b_private)
    net.advance(6)                     # A retransmits its initiation after REKEY_TIMEOUT
    net.send("A", ipv4_packet(b"late"))
    assert ipv4_packet(b"late") in net.delivered("B")


def test_a_new_key_voids_sessions_and_the_peer_must_learn_it():
    net = Net()
    net.handshake()
    assert net.a.peer_status("b")["has_session"]
    replacement = keys.generate_private_key(random.Random(9).randbytes)
    net.b.set_private_key(replacement)
    assert net.b.public_key == keys.public_key(replacement)
    assert not net.b.peer_status("a")["has_session"]
    # A still has B's old public key: its initiations now fail mac1 at B, which forgets nothing else.
    net.advance(200)
    net.send("A", ipv4_packet(b"to the old key"))
    assert ipv4_packet(b"to the old key") not in net.delivered("B")
    assert net.b.drops["bad_mac1"] >= 1


def test_a_key_of_the_wrong_size_is_refused():
    core, _ = keyless_core()
    with pytest.raises(keys.InvalidKey):
        core.set_private_key(b"short")
