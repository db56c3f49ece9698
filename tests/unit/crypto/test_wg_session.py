"""Two in-memory WireGuard cores: handshake, data, timers and every drop reason."""

import random

import pytest

from wg_harness import Net, ipv4_packet
from tunrelay.crypto import keys, messages, noise
from tunrelay.crypto.constants import (
    KEEPALIVE_TIMEOUT, MAX_STAGED_PACKETS, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX,
    ZERO_KEY_MATERIAL_AFTER,
)
from tunrelay.crypto.events import (
    Drop, EndpointChanged, HandshakeComplete, PeerConfig, SessionExpired, Transmit,
)
from tunrelay.crypto.session import WireGuardCore


def kinds(net, sender):
    """Message types put on the wire by ``sender`` so far."""
    return [data[0] for name, data in net.wire if name == sender]


def test_handshake_and_data_both_ways(net):
    net.handshake()
    assert kinds(net, "A") == [1, 4] and kinds(net, "B") == [2]
    assert len(net.of_type("A", HandshakeComplete)) == 1
    # B's session is confirmed by A's first data packet.
    assert len(net.of_type("B", HandshakeComplete)) == 1
    net.send("B", ipv4_packet(b"reply"))
    net.send("A", ipv4_packet(b"more"))
    assert net.delivered("A") == [ipv4_packet(b"reply")]
    assert net.delivered("B") == [ipv4_packet(b"first"), ipv4_packet(b"more")]
    assert net.a.drops == {} and net.b.drops == {}
    assert net.b.peer_status("a")["has_session"] and net.a.peer_status("b")["last_handshake"] == net.now


def test_padding_to_16_and_trimmed_on_delivery(net):
    net.handshake()
    for size in (1, 15, 16, 17, 1400):
        net.send("A", ipv4_packet(b"p" * size))
        transport = net.wire[-1][1]
        assert (len(transport) - 32) % 16 == 0 and len(transport) - 32 >= 20 + size
        assert net.delivered("B")[-1] == ipv4_packet(b"p" * size)


def test_raw_frames_when_ip_trimming_is_off():
    net = Net(trim_ip_padding=False)
    net.send("A", b"\x01\x02\x03")
    assert net.delivered("B") == [b"\x01\x02\x03" + bytes(13)]


def test_non_ip_payload_is_dropped_when_trimming(net):
    net.handshake()
    net.send("A", b"\x00" * 30)
    net.send("A", ipv4_packet(b"x")[:2] + b"\xff\xff" + ipv4_packet(b"x")[4:])  # length too big
    assert net.b.drops["bad_ip_packet"] == 2


def test_staged_packets_are_sent_after_the_handshake(net):
    net.filter = lambda sender, data: None  # lose everything at first
    for i in range(3):
        net.send("A", ipv4_packet(bytes([i])))
    assert kinds(net, "A") == [1]  # one initiation; the rest is queued
    assert net.a.peer_status("b")["staged"] == 3
    net.filter = None
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX)
    assert net.delivered("B") == [ipv4_packet(bytes([i])) for i in range(3)]


def test_staged_queue_is_bounded(net):
    net.filter = lambda sender, data: None
    for i in range(MAX_STAGED_PACKETS + 3):
        net.send("A", ipv4_packet(i.to_bytes(2, "big")))
    assert net.a.drops["staged_overflow"] == 3
    net.filter = None
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX)
    delivered = net.delivered("B")
    assert len(delivered) == MAX_STAGED_PACKETS and delivered[0] == ipv4_packet((3).to_bytes(2, "big"))


def test_retransmit_after_rekey_timeout_with_jitter_then_give_up():
    net = Net(seed=5)
    net.filter = lambda sender, data: None
    net.send("A", ipv4_packet(b"lost"))
    sent_at = [net.now]
    while net.a.next_deadline() is not None:
        net.advance(net.a.next_deadline() - net.now)
        if len(kinds(net, "A")) > len(sent_at):
            sent_at.append(net.now)
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
    assert all(REKEY_TIMEOUT <= g <= REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX for g in gaps)
    assert len(set(round(g, 6) for g in gaps)) > 1  # jitter is really applied
    assert len(sent_at) == 20  # the first and MAX_TIMER_HANDSHAKES + 1 retries
    assert sent_at[-1] - sent_at[0] >= 90
    assert net.a.drops["handshake_timeout"] == 1
    assert net.a.peer_status("b")["staged"] == 0


def test_initiator_rekeys_after_rekey_after_time(net):
    net.handshake()
    net.advance(REKEY_AFTER_TIME - 1)
    net.send("A", ipv4_packet(b"still old"))
    assert kinds(net, "A").count(1) == 1
    net.advance(2)
    net.send("A", ipv4_packet(b"new"))
    assert kinds(net, "A").count(1) == 2
    assert len(net.of_type("A", HandshakeComplete)) == 2
    net.send("B", ipv4_packet(b"on new keys"))
    assert net.delivered("A")[-1] == ipv4_packet(b"on new keys")


def test_responder_does_not_rekey_on_time_when_sending(net):
    net.handshake()
    net.send("B", ipv4_packet(b"x"))
    net.advance(REKEY_AFTER_TIME + 1)
    net.send("B", ipv4_packet(b"y"))
    assert kinds(net, "B").count(1) == 0


def test_keypairs_are_rejected_after_reject_after_time(net):
    net.handshake()
    old = [data for name, data in net.wire if name == "A" and data[0] == 4][-1]
    net.advance(REJECT_AFTER_TIME)
    assert net.b.datagram_received(old, "A", net.now)[0].reason == "expired_keypair"
    net.filter = lambda sender, data: None
    net.send("B", ipv4_packet(b"needs new keys"))
    assert kinds(net, "B")[-1] == 1  # B may not use the old keypair: it initiates


def test_receive_side_last_minute_rekey(net):
    net.handshake()
    net.advance(REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT - 1)
    net.send("B", ipv4_packet(b"a"))
    assert kinds(net, "A").count(1) == 1
    net.advance(2)
    net.send("B", ipv4_packet(b"b"))
    assert kinds(net, "A").count(1) == 2


def test_rekey_after_messages(net):
    net.handshake()
    net.advance(REKEY_TIMEOUT + 1)  # initiations are at least REKEY_TIMEOUT apart
    net.a._peers["b"].current.send_counter = REKEY_AFTER_MESSAGES + 1
    net.filter = lambda sender, data: None
    net.send("A", ipv4_packet(b"x"))
    assert kinds(net, "A")[-2:] == [4, 1]


def test_no_send_past_reject_after_messages(net):
    net.handshake()
    net.advance(REKEY_TIMEOUT + 1)
    net.a._peers["b"].current.send_counter = REJECT_AFTER_MESSAGES
    net.filter = lambda sender, data: None
    net.send("A", ipv4_packet(b"x"))
    assert kinds(net, "A")[-1] == 1 and net.a.peer_status("b")["staged"] == 1


def test_passive_keepalive_after_keepalive_timeout(net):
    net.handshake()
    before = len(kinds(net, "B"))
    net.advance(KEEPALIVE_TIMEOUT - 0.01)
    assert len(kinds(net, "B")) == before
    net.advance(0.02)
    assert kinds(net, "B")[before:] == [4]
    assert len(net.wire[-1][1]) == 32  # empty payload: header + tag
    assert net.delivered("A") == []


def test_data_arriving_while_a_keepalive_is_pending_earns_another(net):
    net.handshake()
    net.advance(5)
    net.send("A", ipv4_packet(b"second"))  # B's keepalive timer is already running
    start = len(kinds(net, "B"))
    net.advance(KEEPALIVE_TIMEOUT * 2 + 1)
    keepalives = [d for name, d in net.wire[-10:] if name == "B" and len(d) == 32]
    assert kinds(net, "B")[start:] == [4, 4] and len(keepalives) == 2


def test_no_keepalive_when_data_answered(net):
    net.handshake()
    net.send("B", ipv4_packet(b"answer"))
    before = len(kinds(net, "B"))
    net.advance(KEEPALIVE_TIMEOUT + 1)
    assert len(kinds(net, "B")) == before


def test_new_handshake_when_data_gets_no_answer(net):
    net.handshake()
    net.filter = lambda sender, data: None if sender == "B" else data
    net.send("A", ipv4_packet(b"hello?"))
    net.advance(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT - 0.01)
    assert kinds(net, "A").count(1) == 1
    net.advance(REKEY_TIMEOUT_JITTER_MAX + 0.02)
    assert kinds(net, "A").count(1) == 2


def test_persistent_keepalive():
    net = Net(persistent_keepalive=25)
    net.handshake()
    # B's passive keepalive at +10 s is authenticated traffic too: it restarts A's interval.
    net.advance(KEEPALIVE_TIMEOUT + 24.9)
    a_count = len(kinds(net, "A"))
    net.advance(0.2)
    assert kinds(net, "A")[a_count:] == [4] and len(net.wire[-1][1]) == 32


def test_zero_key_material_expires_the_session(net):
    net.handshake()
    net.advance(ZERO_KEY_MATERIAL_AFTER + 1)
    assert net.of_type("A", SessionExpired) and net.of_type("B", SessionExpired)
    assert not net.a.peer_status("b")["has_session"]
    assert net.a.next_deadline() is None and net.b.next_deadline() is None


def test_roaming_follows_authenticated_source(net):
    net.handshake()
    data = [d for name, d in net.wire if name == "A"][-1]
    events = net.b.datagram_received(data, "A-roamed", net.now)  # a replay from elsewhere
    assert [e.reason for e in events if isinstance(e, Drop)] == ["replay"]
    assert not any(isinstance(e, EndpointChanged) for e in events)
    net.filter = lambda sender, data: None
    net.send("A", ipv4_packet(b"x"))
    fresh = net.wire[-1][1]
    net.filter = None
    events = net.b.datagram_received(fresh, "A-roamed", net.now)
    assert EndpointChanged("a", "A-roamed") in events
    transmit = [e for e in net.b.send_frame("a", ipv4_packet(b"y"), net.now) if isinstance(e, Transmit)]
    assert transmit[0].destination == "A-roamed"


def test_responder_without_endpoint_learns_it_from_the_initiation():
    net = Net(b_endpoint_known=False)
    net.handshake()
    assert EndpointChanged("a", "A") in net.events["B"]
    net.send("B", ipv4_packet(b"back"))
    assert net.delivered("A") == [ipv4_packet(b"back")]


def test_no_endpoint_means_no_initiation():
    net = Net(a_endpoint_known=False)
    net.send("A", ipv4_packet(b"x"))
    assert net.a.drops["no_endpoint"] == 1 and net.wire == []


# --- drops, each counted by reason --------------------------------------------------------


def last_from(net, sender, kind):
    return [d for name, d in net.wire if name == sender and d[0] == kind][-1]


def test_tampered_ciphertext(net):
    net.handshake()
    data = bytearray(last_from(net, "A", 4))
    data[-1] ^= 1
    assert net.b.datagram_received(bytes(data), "A", net.now) == [Drop("decrypt_failed", "a", "A")]
    data = bytearray(last_from(net, "A", 4))
    data[8] ^= 1  # the counter is authenticated as the nonce
    assert net.b.datagram_received(bytes(data), "A", net.now)[0].reason == "decrypt_failed"
    assert net.b.drops["decrypt_failed"] == 2


def test_replayed_transport(net):
    net.handshake()
    data = last_from(net, "A", 4)
    assert net.b.datagram_received(data, "A", net.now) == [Drop("replay", "a", "A")]
    assert net.b.drops["replay"] == 1


def test_stream_mode_refuses_reordering_that_datagrams_accept():
    for stream, expected in ((False, []), (True, ["replay"])):
        net = Net(stream=stream)
        net.handshake()
        net.filter = lambda sender, data: None
        net.send("A", ipv4_packet(b"1"))
        net.send("A", ipv4_packet(b"2"))
        first, second = [d for name, d in net.wire if name == "A"][-2:]
        net.b.datagram_received(second, "A", net.now)
        events = net.b.datagram_received(first, "A", net.now)
        assert [e.reason for e in events if isinstance(e, Drop)] == expected


def test_unknown_index(net):
    net.handshake()
    data = bytearray(last_from(net, "A", 4))
    data[4:8] = bytes(4) if data[4:8] != bytes(4) else b"\x01\x00\x00\x00"
    assert net.b.datagram_received(bytes(data), "A", net.now)[0].reason == "unknown_index"
    response = messages.Response(1, 12345, b"e" * 32, b"n" * 16).pack()
    stamped = net.b._peers["a"].cookies.stamp(response, net.now)  # valid mac1 for A
    assert net.a.datagram_received(stamped, "B", net.now)[0].reason == "unknown_index"


@pytest.mark.parametrize("data,reason", [
    (b"", "truncated"), (b"\x04\x00\x00\x00" + bytes(20), "truncated"),
    (b"\x01\x00\x00\x00" + bytes(100), "truncated"), (b"\x02\x00\x00\x00" + bytes(100), "bad_size"),
    (b"\x09\x00\x00\x00" + bytes(100), "unknown_type"),
    (b"\x04\x00\x00\x00" + bytes(70000), "bad_size"),
])
def test_malformed_datagrams(net, data, reason):
    assert net.b.datagram_received(data, "X", net.now) == [Drop(reason, None, "X")]
    assert net.b.drops[reason] == 1


def test_bad_mac1(net):
    net.filter = lambda sender, data: None
    net.send("A", ipv4_packet(b"x"))
    initiation = bytearray(net.wire[0][1])
    initiation[-20] ^= 1
    assert net.b.datagram_received(bytes(initiation), "A", net.now) == [Drop("bad_mac1", None, "A")]


def test_initiation_from_unknown_key():
    net = Net()
    stranger_private = keys.generate_private_key(random.Random(99).randbytes)
    stranger = WireGuardCore(stranger_private, [PeerConfig(net.b.public_key, endpoint="B", peer_id="b")],
                             rng=random.Random(98).randbytes)
    initiation = stranger.send_frame("b", ipv4_packet(b"x"), net.now)[0].data
    assert net.b.datagram_received(initiation, "S", net.now) == [Drop("unknown_peer", None, "S")]


def test_initiation_for_another_responder_fails_mac1(net):
    other = WireGuardCore(keys.generate_private_key(random.Random(7).randbytes),
                          [PeerConfig(keys.public_key(net.a_private), peer_id="a")])
    net.filter = lambda sender, data: None
    net.send("A", ipv4_packet(b"x"))
    assert other.datagram_received(net.wire[0][1], "A", net.now)[0].reason == "bad_mac1"


def test_low_order_ephemeral_in_initiation(net):
    net.filter = lambda sender, data: None
    net.send("A", ipv4_packet(b"x"))
    initiation = messages.parse(net.wire[0][1])
    bad = messages.Initiation(initiation.sender, bytes(32), initiation.encrypted_static,
                              initiation.encrypted_timestamp)
    stamped = net.a._peers["b"].cookies.stamp(bad.pack(), net.now)
    assert net.b.datagram_received(stamped, "A", net.now) == [Drop("low_order_key", None, "A")]


def test_low_order_peer_keys_are_refused_in_config(net):
    with pytest.raises(keys.InvalidKey):
        net.a.add_peer(PeerConfig(bytes(32), peer_id="bad"))


def test_replayed_initiation_has_a_stale_timestamp(net):
    net.handshake()
    initiation = last_from(net, "A", 1)
    net.advance(1)
    assert net.b.datagram_received(initiation, "A", net.now) == [Drop("stale_timestamp", "a", "A")]


def test_initiations_closer_than_the_initiation_rate_are_dropped(net):
    net.handshake()
    # A second, genuinely newer initiation 10 ms later.
    peer = net.a._peers["b"]
    net.now += 0.01
    _, message = noise.create_initiation(net.a_private, net.b.public_key, bytes(32), 77,
                                         noise.tai64n(net.now + 0.5), rng=random.Random(1).randbytes)
    stamped = peer.cookies.stamp(message.pack(), net.now)
    assert net.b.datagram_received(stamped, "A", net.now)[0].reason == "initiation_flood"


def test_response_with_wrong_psk_fails():
    seeded = random.Random(3)
    a_private, b_private = (keys.generate_private_key(seeded.randbytes) for _ in range(2))
    a = WireGuardCore(a_private, [PeerConfig(keys.public_key(b_private), b"\x01" * 32, "B",
                                             peer_id="b")])
    b = WireGuardCore(b_private, [PeerConfig(keys.public_key(a_private), b"\x02" * 32, "A",
                                             peer_id="a")])
    initiation = a.send_frame("b", ipv4_packet(b"x"), 10.0)[0].data
    response = [e for e in b.datagram_received(initiation, "A", 10.0) if isinstance(e, Transmit)][0]
    assert a.datagram_received(response.data, "B", 10.0) == [Drop("decrypt_failed", None, "B")]


def test_flood_gets_cookie_replies_then_mac2_is_required_and_rate_limited():
    net = Net(under_load_handshakes=2)
    initiations = []
    net.filter = lambda sender, data: (initiations.append(data) if data[0] == 1 else None) and None
    net.send("A", ipv4_packet(b"x"))
    net.filter = None
    first = initiations[0]
    # Flood B with copies: after the threshold, B answers with cookie replies, not responses.
    replies = []
    for _ in range(4):
        for event in net.b.datagram_received(first, "A", net.now):
            if isinstance(event, Transmit):
                replies.append(event.data)
    assert net.b.drops["cookie_required"] == 2 and net.b.drops["stale_timestamp"] == 1
    assert all(len(r) == 64 and r[0] == 3 for r in replies[-2:])
    # A consumes one cookie reply; its next initiation carries mac2 and is accepted.
    assert net.a.datagram_received(replies[-1], "B", net.now) == []
    net.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX)
    assert net.delivered("B") == [ipv4_packet(b"x")]
    assert net.b.drops["cookie_required"] == 2  # the retry passed with mac2
    # The retry opened a new load window (count 1).  Replaying it (mac2 valid, time frozen):
    # the 2nd handshake of the window is handled normally, from the 3rd on B is under load
    # and the source's bucket (burst 5) empties.
    retry = last_from(net, "A", 1)
    reasons = [e.reason for _ in range(12) for e in net.b.datagram_received(retry, "A", net.now)
               if isinstance(e, Drop)]
    assert reasons == ["stale_timestamp"] * 6 + ["rate_limited"] * 6
    assert net.b.drops["rate_limited"] == 6


def test_bad_cookie_reply(net):
    net.filter = lambda sender, data: None
    net.send("A", ipv4_packet(b"x"))
    index = messages.parse(net.wire[0][1]).sender
    forged = messages.CookieReply(index, b"n" * 24, b"c" * 32).pack()
    assert net.a.datagram_received(forged, "B", net.now) == [Drop("bad_cookie_reply", "b", "B")]
    unknown = messages.CookieReply(index ^ 1, b"n" * 24, b"c" * 32).pack()
    assert net.a.datagram_received(unknown, "B", net.now)[0].reason == "unknown_index"


def test_send_frame_errors(net):
    assert net.a.send_frame("nobody", b"x", net.now) == [Drop("unknown_peer", "nobody", None)]
    assert net.a.send_frame("b", bytes(70000), net.now)[0].reason == "oversize"
    assert net.a.send_frame("b", b"", net.now)[0].reason == "empty_frame"


def test_peer_management(net):
    with pytest.raises(ValueError):
        net.a.add_peer(PeerConfig(net.b.public_key, peer_id="again"))
    with pytest.raises(ValueError):
        net.a.add_peer(PeerConfig(net.a.public_key, peer_id="self"))
    net.handshake()
    data = last_from(net, "A", 4)
    net.b.remove_peer("a")
    assert net.b.peer_ids() == []
    assert net.b.datagram_received(data, "A", net.now)[0].reason == "unknown_index"
    default_id = net.b.add_peer(PeerConfig(keys.public_key(net.a_private)))
    assert default_id == keys.encode_key(keys.public_key(net.a_private))


def test_simultaneous_initiation_converges():
    net = Net(seed=11)
    net.send("A", ipv4_packet(b"from a"))  # delivered at once; reset and race instead
    net = Net(seed=12)
    held = []
    net.filter = lambda sender, data: held.append((sender, data)) or None
    net.send("A", ipv4_packet(b"from a"))
    net.send("B", ipv4_packet(b"from b"))
    net.filter = None
    for sender, data in held:
        target = net.b if sender == "A" else net.a
        net.pump(target.datagram_received(data, sender, net.now), "B" if sender == "A" else "A")
    net.advance(3 * (REKEY_TIMEOUT + 1))
    assert ipv4_packet(b"from a") in net.delivered("B")
    assert ipv4_packet(b"from b") in net.delivered("A")


def test_timestamps_use_now_plus_wall_clock_offset():
    net = Net(wall_clock_offset=1_000.0)
    net.filter = lambda sender, data: None
    net.send("A", ipv4_packet(b"x"))
    consumed = noise.consume_initiation(net.b_private, messages.parse(net.wire[0][1]))
    assert consumed.timestamp == noise.tai64n(net.now + 1_000.0)


def test_idle_core_has_no_deadline_and_early_tick_does_nothing(net):
    assert net.a.next_deadline() is None and net.a.tick(net.now + 10**6) == []
    net.handshake()
    deadline = net.b.next_deadline()
    assert net.b.tick(deadline - 0.001) == []
    assert net.b.tick(deadline) != []


def test_a_probe_goes_to_its_destination_alone_and_its_answer_moves_the_endpoint(net):
    net.handshake()
    net.advance(1.0)
    events = net.a.send_probe("b", "B over udp", net.now)
    transmits = [event for event in events if isinstance(event, Transmit)]
    assert [(t.destination, t.data[0]) for t in transmits] == [("B over udp", messages.MESSAGE_INITIATION)]
    # The traffic stays on the working path until the probed one answers.
    assert net.a.peer_status("b")["endpoint"] == "B" and net.a.peer_status("b")["has_session"]
    net.send("A", ipv4_packet(b"still over B"))
    assert net.delivered("B")[-1] == ipv4_packet(b"still over B")
    replies = [e for e in net.b.datagram_received(transmits[0].data, "A over udp", net.now) if isinstance(e, Transmit)]
    assert [reply.destination for reply in replies] == ["A over udp"]
    events = net.a.datagram_received(replies[0].data, "B over udp", net.now)
    assert EndpointChanged("b", "B over udp") in events
    assert net.a.peer_status("b")["endpoint"] == "B over udp"
    assert net.a.drops == {} and net.b.drops == {}


def test_a_probe_without_a_private_key_is_a_counted_drop():
    net = Net()
    net.a.set_private_key(None)
    assert [e for e in net.a.send_probe("b", "B over udp", net.now) if isinstance(e, Transmit)] == []
    assert net.a.drops["no_private_key"] == 1
