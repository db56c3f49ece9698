"""CLOSED, LISTEN and SYN-RECEIVED: resets, handshakes, queues, bad segments."""

import pytest

from tunrelay.stack.tcp import ESTABLISHED, SYN_RECEIVED, ConnectionAccepted, TcpStack
from tunrelay.stack.tcp.constants import (
    DEFAULT_SEND_MSS, INITIAL_RTO, LOCAL_WINDOW_SHIFT, MAX_SYNACK_RETRANSMISSIONS,
    SYN_QUEUE_LIMIT)

from .helpers import (
    CLIENT_B, MASK, PORT, SECRET, SERVER_B, Peer, build, flags, make_stack, option,
    payload_of)


# -- CLOSED (no listener, no connection): RFC 9293 §3.10.7.1 ------------------------------
class TestClosed:
    def test_syn_to_closed_port_gets_rst_ack(self, stack, clock):
        peer = Peer(stack, clock, dport=81, isn=0xFFFFFFFF)
        peer.send("S")
        rst = peer.recv_one()
        assert flags(rst) == "RA" and rst.seq == 0 and rst.ack == 0    # SEG.SEQ + 1 wraps
        assert stack.drops["no_listener"] == 1

    def test_ack_to_closed_port_gets_rst_with_seq_from_ack(self, stack, clock):
        peer = Peer(stack, clock, dport=81)
        peer.send("PA", seq=500, ack=777, payload=b"abc")
        rst = peer.recv_one()
        assert flags(rst) == "R" and rst.seq == 777

    def test_data_without_ack_counts_its_length(self, stack, clock):
        peer = Peer(stack, clock, dport=81)
        peer.send("R", seq=5)
        assert peer.recv() == []     # never answer an RST
        stack.segment_received(CLIENT_B, SERVER_B, build(40000, 81, "SA", 10, 20), clock.now)
        assert flags(peer.recv_one()) == "R"

    def test_rst_to_closed_port_is_not_answered(self, stack, clock):
        peer = Peer(stack, clock, dport=81)
        for f in ("R", "RA"):
            peer.send(f, seq=1, ack=2)
        assert peer.recv() == [] and stack.stats["resets_sent"] == 0

    def test_resets_are_rate_limited(self, stack, clock):
        peer = Peer(stack, clock, dport=81)
        for i in range(1000):
            peer.send("A", seq=i, ack=i)
        sent = len(peer.recv())
        assert 0 < sent < 1000 and stack.stats["resets_suppressed"] == 1000 - sent

    @pytest.mark.parametrize("flag_str", ["", "FPU", "SF", "SR", "SFRPAU", "F", "FP"])
    def test_bad_flag_combinations_are_dropped_silently(self, stack, clock, flag_str):
        for port in (PORT, 81):
            Peer(stack, clock, dport=port).send(flag_str, seq=1, ack=1)
        assert stack.pop_outgoing() == [] and stack.drops["bad_flags"] == 2
        assert stack.connections == []

    def test_malformed_segments_are_counted(self, stack, clock):
        good = build(40000, PORT, "S", 1)
        stack.segment_received(CLIENT_B, SERVER_B, good[:10], clock.now)
        stack.segment_received(CLIENT_B, SERVER_B, build(40000, PORT, "S", 1,
                                                         corrupt_checksum=True), clock.now)
        stack.segment_received(CLIENT_B, b"\x0a\0\0\x09", build(
            40000, PORT, "S", 1, dst="10.0.0.9"), clock.now)
        stack.segment_received(CLIENT_B, SERVER_B, build(0, PORT, "S", 1), clock.now)
        assert stack.drops == {"truncated": 1, "bad_checksum": 1, "wrong_address": 1,
                               "bad_port": 1}
        assert stack.pop_outgoing() == [] and stack.connections == []


# -- LISTEN: RFC 9293 §3.10.7.2 ------------------------------------------------------------
class TestListen:
    def test_handshake_negotiates_mss_and_window_scale(self, stack, clock):
        peer = Peer(stack, clock)
        synack = peer.handshake(mss=1200, wscale=9)
        assert option(synack, "MSS") == 1460
        assert option(synack, "WScale") == LOCAL_WINDOW_SHIFT
        assert option(synack, "Timestamp") is None and option(synack, "SAckOK") is None
        assert synack.window == 65535            # a SYN's window is never scaled
        [event] = stack.pop_events()
        conn = event.conn
        assert isinstance(event, ConnectionAccepted) and conn.state == ESTABLISHED
        assert conn.send_mss == 1200 and conn.sender.shift == 9
        assert conn.sender.wnd == 65535 << 9
        assert conn.host == ("10.0.0.1", 80) and conn.peer == ("10.0.0.2", 40000)

    def test_no_options_means_mss_536_and_no_scaling(self, stack, clock):
        peer = Peer(stack, clock)
        peer.send("S")
        synack = peer.recv_one()
        assert option(synack, "WScale") is None and option(synack, "MSS") == 1460
        peer.rcv_nxt = synack.seq + 1
        peer.send("A", window=1000)
        conn = stack.pop_events()[0].conn
        assert conn.send_mss == DEFAULT_SEND_MSS and conn.sender.wnd == 1000
        conn.send(b"x" * 2000, clock.now)
        sizes = [len(payload_of(t)) for t in peer.recv()]
        assert sizes == [536]     # then window-limited: 1000 - 536 < half the max window

    def test_ack_to_listener_gets_rst(self, stack, clock):
        Peer(stack, clock).send("A", seq=1, ack=4242)
        rst = Peer(stack, clock).recv_one()
        assert flags(rst) == "R" and rst.seq == 4242 and stack.drops["ack_to_listener"] == 1

    def test_isn_differs_per_peer_and_over_time(self, stack, clock):
        isns = set()
        for sport in (1000, 1001):
            peer = Peer(stack, clock, sport=sport)
            isns.add(peer.handshake(complete=False).seq)
        clock.advance(1)
        isns.add(Peer(stack, clock, sport=1002).handshake(complete=False).seq)
        assert len(isns) == 3

    def test_syn_flood_keeps_the_half_open_table_bounded(self, stack, clock):
        listener = stack._listeners[PORT]
        for i in range(SYN_QUEUE_LIMIT * 4):
            src = "10.1.%d.%d" % (i // 250, i % 250 + 1)
            stack.segment_received(bytes(map(int, src.split("."))), SERVER_B,
                                   build(1024 + i, PORT, "S", i, src=src), clock.now)
        assert len(listener.syn_queue) == SYN_QUEUE_LIMIT
        assert len(stack.connections) == SYN_QUEUE_LIMIT
        # Every SYN was answered: the overflow with SYN cookies (test_tcp_syncookies.py).
        assert len(stack.pop_outgoing()) == SYN_QUEUE_LIMIT * 4
        assert stack.stats["syn_cookies_sent"] == SYN_QUEUE_LIMIT * 3
        # A legitimate client still gets in, and none of the half-open ones was evicted.
        peer = Peer(stack, clock, sport=9999)
        peer.handshake()
        assert isinstance(stack.pop_events()[0], ConnectionAccepted)
        assert len(listener.syn_queue) == SYN_QUEUE_LIMIT

    def test_accept_queue_is_bounded_by_backlog(self, clock):
        stack = make_stack(backlog=2)
        peers = [Peer(stack, clock, sport=2000 + i) for i in range(3)]
        peers[0].handshake()
        peers[1].handshake()
        peers[2].send("S")
        assert peers[2].recv() == [] and stack.drops["accept_queue_full"] == 1
        assert len(stack._listeners[PORT].accept_queue) == 2
        assert len(stack.pop_events()) == 2         # the owner accepts both ...
        peers[2].handshake()                       # ... and the next one fits
        assert len(stack.pop_events()) == 1

    def test_handshake_ack_is_dropped_while_accept_queue_full(self, clock):
        stack = make_stack(backlog=1)
        first, second = Peer(stack, clock, sport=1), Peer(stack, clock, sport=2)
        first.handshake(complete=False)
        second.handshake(complete=False)
        first.send("A")
        second.send("A")
        assert stack.drops["accept_queue_full"] == 1
        assert [c.state for c in stack.connections] == [ESTABLISHED, SYN_RECEIVED]
        stack.pop_events()
        second.send("A")
        assert [c.state for c in stack.connections] == [ESTABLISHED, ESTABLISHED]

    def test_listen_twice_and_stop_listening(self, stack, clock):
        with pytest.raises(ValueError):
            stack.listen(PORT)
        Peer(stack, clock, sport=5).handshake(complete=False)
        stack.stop_listening(PORT)
        assert stack.connections == []
        Peer(stack, clock, sport=6).send("S")
        assert flags(Peer(stack, clock).recv_one()) == "RA"

    def test_constructor_checks(self):
        for addresses in (b"\0" * 5, [SERVER_B, SERVER_B], [b"\1" * 16] * 2, []):
            with pytest.raises(ValueError):
                TcpStack(addresses, SECRET)
        with pytest.raises(ValueError):
            TcpStack(SERVER_B, SECRET, mss=10)


# -- SYN-RECEIVED --------------------------------------------------------------------------
class TestSynReceived:
    def test_synack_retransmitted_with_backoff_then_given_up(self, stack, clock):
        peer = Peer(stack, clock)
        first = peer.handshake(complete=False)
        times = []
        for _ in range(100):
            if not stack.connections:
                break
            clock.now = stack.next_deadline()
            stack.poll(clock.now)
            for tcp in peer.recv():
                assert flags(tcp) == "SA" and tcp.seq == first.seq
                times.append(clock.now)
        gaps = [b - a for a, b in zip([1000.0] + times, times)]
        assert gaps == [INITIAL_RTO * 2 ** i for i in range(MAX_SYNACK_RETRANSMISSIONS)]
        assert stack.stats["synack_timeouts"] == 1 and stack.pop_events() == []

    def test_duplicate_syn_gets_synack_again(self, stack, clock):
        peer = Peer(stack, clock)
        first = peer.handshake(complete=False)
        peer.send("S", seq=peer.isn, options=[("MSS", 1460)])
        again = peer.recv_one()
        assert flags(again) == "SA" and again.seq == first.seq and again.ack == first.ack

    def test_rst_with_exact_seq_removes_half_open_silently(self, stack, clock):
        peer = Peer(stack, clock)
        peer.handshake(complete=False)
        peer.send("R")
        assert stack.connections == [] and peer.recv() == [] and stack.pop_events() == []

    def test_bad_ack_gets_reset(self, stack, clock):
        peer = Peer(stack, clock)
        synack = peer.handshake(complete=False)
        peer.send("A", ack=synack.seq + 5)
        rst = peer.recv_one()
        assert flags(rst) == "R" and rst.seq == (synack.seq + 5) & MASK
        assert stack.connections[0].state == SYN_RECEIVED

    def test_new_syn_in_window_gets_challenge_ack(self, stack, clock):
        peer = Peer(stack, clock)
        peer.handshake(complete=False)
        peer.send("S", seq=peer.snd_nxt + 10, advance=False)
        ack = peer.recv_one()
        assert flags(ack) == "A" and ack.ack == peer.snd_nxt
        assert stack.stats["challenge_acks"] == 1

    def test_handshake_ack_carrying_data_and_fin(self, stack, clock):
        peer = Peer(stack, clock)
        peer.handshake(complete=False)
        peer.send("FPA", payload=b"GET /")
        kinds = [type(e).__name__ for e in stack.pop_events()]
        assert kinds == ["ConnectionAccepted", "DataReceived", "PeerClosed"]
        ack = peer.recv_one()
        assert ack.ack == peer.snd_nxt and stack.connections[0].state == "CLOSE-WAIT"
