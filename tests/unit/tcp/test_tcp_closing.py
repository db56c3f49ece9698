"""The closing states: FIN-WAIT-1, FIN-WAIT-2, CLOSE-WAIT, LAST-ACK, CLOSING, TIME-WAIT."""

import pytest

from tunrelay.stack.tcp import (
    CLOSE_WAIT, CLOSED, CLOSING, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK, LOST_DONE, LOST_RESET,
    LOST_TIMED_OUT, TIME_WAIT, ConnectionAccepted, ConnectionLost, DataReceived, PeerClosed)
from tunrelay.stack.tcp.constants import (
    FIN_WAIT_2_TIMEOUT, MAXIMUM_SEGMENT_LIFETIME, MAX_RETRANSMISSIONS, TIME_WAIT_DURATION)

from .helpers import MASK, Peer, accepted_connection, flags, payload_of


@pytest.fixture
def est(stack, clock):
    return accepted_connection(stack, clock)


def kinds(stack):
    return [type(e).__name__ for e in stack.pop_events()]


def test_time_wait_is_two_msl():
    assert TIME_WAIT_DURATION == 2 * MAXIMUM_SEGMENT_LIFETIME


class TestFinWait:
    def test_fin_follows_data_already_sent(self, est, stack, clock):
        peer, conn = est
        conn.send(b"last words", clock.now)
        conn.close(clock.now)
        assert conn.state == FIN_WAIT_1
        data, fin = peer.recv()
        assert flags(data) == "PA" and payload_of(data) == b"last words"
        assert flags(fin) == "FA" and fin.seq == (data.seq + 10) & MASK
        conn.close(clock.now)                          # idempotent
        assert peer.recv() == []

    def test_fin_waits_behind_queued_data(self, est, stack, clock):
        peer, conn = est
        conn.sender.cc.cwnd = 1460
        conn.send(b"a" * 4000, clock.now)
        conn.close(clock.now)
        first = peer.recv_one()
        assert flags(first) == "A" and len(payload_of(first)) == 1460
        peer.ack(first)
        rest = peer.recv()
        assert [flags(t) for t in rest] == ["A", "FPA"]
        assert sum(len(payload_of(t)) for t in rest) == 4000 - 1460

    def test_fin_wait_1_to_fin_wait_2_to_time_wait(self, est, stack, clock):
        peer, conn = est
        conn.close(clock.now)
        fin = peer.recv_one()
        peer.ack(fin)
        assert conn.state == FIN_WAIT_2
        assert stack.next_deadline() == clock.now + FIN_WAIT_2_TIMEOUT
        peer.send("PA", payload=b"half-closed data still flows")
        assert kinds(stack) == ["DataReceived"]
        peer.send("FA")
        ack = peer.recv_one()
        assert flags(ack) == "A" and ack.ack == peer.snd_nxt
        assert conn.state == TIME_WAIT
        assert [(type(e), getattr(e, "reason", None)) for e in stack.pop_events()] == [
            (PeerClosed, None), (ConnectionLost, LOST_DONE)]

    def test_fin_wait_2_times_out_after_full_close(self, est, stack, clock):
        peer, conn = est
        conn.close(clock.now)
        peer.ack(peer.recv_one())
        stack.pop_events()
        assert conn.state == FIN_WAIT_2
        assert stack.next_deadline() == clock.now + FIN_WAIT_2_TIMEOUT
        stack.poll(clock.now + FIN_WAIT_2_TIMEOUT)
        assert [e.reason for e in stack.pop_events()] == [LOST_TIMED_OUT]
        assert stack.connections == [] and peer.recv() == []

    def test_half_close_waits_in_fin_wait_2_for_ever(self, est, stack, clock):
        peer, conn = est
        conn.close(clock.now, half_close=True)
        peer.ack(peer.recv_one())
        assert conn.state == FIN_WAIT_2 and stack.next_deadline() is None
        clock.advance(3600)
        peer.send("PA", payload=b"still talking")
        assert kinds(stack) == ["DataReceived"]

    def test_fin_lost_is_retransmitted(self, est, stack, clock):
        peer, conn = est
        conn.close(clock.now)
        fin = peer.recv_one()
        clock.now = stack.next_deadline()
        stack.poll(clock.now)
        again = peer.recv_one()
        assert flags(again) == "FA" and again.seq == fin.seq

    def test_fin_and_ack_of_our_fin_in_one_segment(self, est, stack, clock):
        peer, conn = est
        conn.close(clock.now)
        fin = peer.recv_one()
        peer.rcv_nxt = (fin.seq + 1) & MASK
        peer.send("FA")
        assert conn.state == TIME_WAIT and flags(peer.recv_one()) == "A"


class TestCloseWaitLastAck:
    def test_peer_fin_then_our_close(self, est, stack, clock):
        peer, conn = est
        peer.send("FA")
        assert conn.state == CLOSE_WAIT and kinds(stack) == ["PeerClosed"]
        assert peer.recv_one().ack == peer.snd_nxt             # FIN is acked at once
        conn.send(b"response", clock.now)                      # still allowed in CLOSE-WAIT
        assert payload_of(peer.recv_one()) == b"response"
        conn.close(clock.now)
        assert conn.state == LAST_ACK
        fin = peer.recv_one()
        assert flags(fin) == "FA"
        peer.ack(fin)
        assert conn.state == CLOSED and stack.connections == []
        assert [e.reason for e in stack.pop_events()] == [LOST_DONE]

    def test_last_ack_retransmits_fin_then_gives_up(self, est, stack, clock):
        peer, conn = est
        peer.send("FA")
        peer.recv()
        conn.close(clock.now)
        peer.recv()
        for _ in range(100):
            if not stack.connections:
                break
            clock.now = stack.next_deadline()
            stack.poll(clock.now)
        fins = peer.recv()
        assert len(fins) == MAX_RETRANSMISSIONS and all(flags(t) == "FA" for t in fins)

    def test_rst_in_last_ack(self, est, stack, clock):
        peer, conn = est
        peer.send("FA")
        conn.close(clock.now)
        stack.pop_events()
        peer.send("R")
        assert [e.reason for e in stack.pop_events()] == [LOST_RESET]
        assert peer.recv()[-1:] and stack.connections == []

    def test_peer_fin_out_of_order(self, est, stack, clock):
        peer, conn = est
        seq = peer.snd_nxt
        peer.send("FA", seq=seq + 3, payload=b"def", advance=False)
        assert conn.state == "ESTABLISHED" and peer.recv_one().ack == seq
        peer.send("PA", seq=seq, payload=b"abc", advance=False)
        assert conn.state == CLOSE_WAIT
        assert peer.recv_one().ack == (seq + 7) & MASK
        events = stack.pop_events()
        assert [type(e) for e in events] == [DataReceived, PeerClosed]
        assert events[0].data == b"abcdef"

    def test_peer_fin_while_paused_is_reported_after_the_data(self, est, stack, clock):
        peer, conn = est
        conn.pause_reading()
        peer.send("FPA", payload=b"tail")
        assert conn.state == CLOSE_WAIT and stack.pop_events() == []
        conn.resume_reading(clock.now)
        events = stack.pop_events()
        assert [type(e) for e in events] == [DataReceived, PeerClosed]
        assert events[0].data == b"tail"


class TestSimultaneousClose:
    def test_closing_state(self, est, stack, clock):
        peer, conn = est
        conn.close(clock.now)
        our_fin = peer.recv_one()
        peer.send("FA")                      # the peer's FIN crossed ours: ACKs nothing new
        assert conn.state == CLOSING
        ack = peer.recv_one()
        assert flags(ack) == "A" and ack.ack == peer.snd_nxt
        assert kinds(stack) == ["PeerClosed"]
        peer.rcv_nxt = (our_fin.seq + 1) & MASK
        peer.send("A")
        assert conn.state == TIME_WAIT
        assert [e.reason for e in stack.pop_events()] == [LOST_DONE]

    def test_closing_retransmits_fin(self, est, stack, clock):
        peer, conn = est
        conn.close(clock.now)
        our_fin = peer.recv_one()
        peer.send("FA")
        peer.recv()
        clock.now = stack.next_deadline()
        stack.poll(clock.now)
        again = peer.recv_one()
        assert flags(again) == "FA" and again.seq == our_fin.seq


@pytest.fixture
def time_wait(est, stack, clock):
    peer, conn = est
    conn.close(clock.now)
    peer.ack(peer.recv_one())
    peer.send("FA")
    peer.recv()
    stack.pop_events()
    assert conn.state == TIME_WAIT
    return peer, conn


class TestTimeWait:
    def test_expiry_after_2msl(self, time_wait, stack, clock):
        peer, conn = time_wait
        start = clock.now
        assert stack.next_deadline() == start + TIME_WAIT_DURATION
        stack.poll(start + TIME_WAIT_DURATION - 0.001)
        assert stack.connections == [conn]
        stack.poll(start + TIME_WAIT_DURATION)
        assert stack.connections == [] and conn.state == CLOSED
        assert stack.pop_events() == [] and peer.recv() == []

    def test_retransmitted_fin_is_reacked_and_restarts_the_timer(self, time_wait, stack, clock):
        peer, conn = time_wait
        clock.advance(10)
        peer.send("FA", seq=(peer.snd_nxt - 1) & MASK, advance=False)
        ack = peer.recv_one()
        assert flags(ack) == "A" and ack.ack == peer.snd_nxt
        assert stack.next_deadline() == clock.now + TIME_WAIT_DURATION

    def test_rst_is_ignored(self, time_wait, stack, clock):
        peer, conn = time_wait
        peer.send("R")
        assert conn.state == TIME_WAIT and peer.recv() == [] and stack.pop_events() == []
        assert stack.drops["rst_in_time_wait"] == 1

    def test_new_syn_beyond_old_sequence_reopens(self, time_wait, stack, clock):
        peer, conn = time_wait
        fresh = Peer(stack, clock, isn=peer.snd_nxt + 100000)
        fresh.handshake()
        assert stack.stats["time_wait_reopened"] == 1
        [event] = stack.pop_events()
        assert event.conn is not conn and event.conn.state == "ESTABLISHED"

    def test_old_syn_gets_challenge_ack(self, time_wait, stack, clock):
        peer, conn = time_wait
        Peer(stack, clock, isn=peer.snd_nxt - 100000).send("S")
        assert flags(peer.recv_one()) == "A" and conn.state == TIME_WAIT

    def test_data_is_not_delivered(self, time_wait, stack, clock):
        peer, conn = time_wait
        peer.send("PA", payload=b"late")
        assert stack.pop_events() == [] and flags(peer.recv_one()) == "A"

    def test_time_wait_count_is_bounded(self, stack, clock, monkeypatch):
        monkeypatch.setattr("tunrelay.stack.tcp.stack.MAX_TIME_WAIT_CONNECTIONS", 3)
        for sport in range(5):
            peer = Peer(stack, clock, sport=1000 + sport)
            peer.handshake()
            [conn] = [e.conn for e in stack.pop_events() if isinstance(e, ConnectionAccepted)]
            conn.close(clock.now)
            peer.ack(peer.recv_one())
            peer.send("FA")
            peer.recv()
        assert [c.state for c in stack.connections] == [TIME_WAIT] * 3
        assert stack.stats["time_wait_overflow"] == 2


class TestClosed:
    def test_segments_after_close_get_reset(self, est, stack, clock):
        peer, conn = est
        peer.send("FA")
        conn.close(clock.now)
        peer.ack(peer.recv()[-1])
        assert stack.connections == []
        peer.send("PA", payload=b"zombie")
        rst = peer.recv_one()
        assert flags(rst) == "R" and rst.seq == peer.rcv_nxt
        peer.send("R")
        assert peer.recv() == []
