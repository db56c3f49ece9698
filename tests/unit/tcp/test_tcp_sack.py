"""SACK-based loss recovery (RFC 6675) and RACK-TLP (RFC 8985), by state.

The peer is scapy-built and offers SACK in its SYN; its ACKs carry SACK blocks exactly as
a Linux receiver would send them. Without the offer the stack must stay with NewReno.
"""

import pytest

from tunrelay.stack.tcp import CLOSE_WAIT, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK, ConnectionLost
from tunrelay.stack.tcp.constants import (
    MIN_RTO, TLP_DELAYED_ACK_ALLOWANCE, TLP_MIN_PTO)

from .helpers import Peer, fire, flags, payload_of

MSS = 1460
RTT = 0.01


def connect(stack, clock, sack=True):
    """An established connection whose handshake took RTT, so that SRTT is RTT."""
    peer = Peer(stack, clock)
    peer.handshake(sack=sack, complete=False)
    clock.advance(RTT)
    peer.send("A")
    [accepted] = stack.pop_events()
    assert accepted.conn.sender.rtt.srtt == pytest.approx(RTT)
    return peer, accepted.conn


@pytest.fixture
def sack(stack, clock):
    return connect(stack, clock)


def send_segments(peer, conn, clock, count):
    """Put ``count`` full segments in flight at once (cwnd opened to fit)."""
    conn.sender.cc.cwnd = count * MSS
    conn.send(bytes(range(256)) * (count * MSS // 256) + bytes(count * MSS % 256), clock.now)
    out = peer.recv()
    assert len(out) == count
    return out


def end_of(tcp):
    return tcp.seq + len(payload_of(tcp)) + ("F" in flags(tcp))


def block(*segments):
    return segments[0].seq, end_of(segments[-1])


class TestEstablished:
    def test_the_third_sacked_segment_above_a_hole_starts_recovery(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 10)
        clock.advance(RTT)
        for last in (1, 2):
            peer.send_sack([block(segs[1], segs[last])], ack=segs[0].seq)
            assert peer.recv() == []                     # below DupThresh: wait
        assert stack.next_deadline() == pytest.approx(clock.now + RTT / 4)   # RACK's timer
        peer.send_sack([block(segs[1], segs[3])], ack=segs[0].seq)
        [again] = peer.recv()
        assert again.seq == segs[0].seq and payload_of(again) == payload_of(segs[0])
        cc = conn.sender.cc
        assert stack.stats["sack_recoveries"] == 1 and cc.in_recovery
        assert cc.cwnd == cc.ssthresh == 5 * MSS           # RFC 6675 §5 (4.2): FlightSize / 2

    def test_every_hole_is_repaired_in_one_round_trip(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 10)
        clock.advance(RTT)
        peer.send_sack([block(segs[7], segs[9]), block(segs[4], segs[5]), block(segs[1], segs[2])],
                       ack=segs[0].seq)
        assert [tcp.seq for tcp in peer.recv()] == [segs[0].seq, segs[3].seq, segs[6].seq]
        assert conn.sender.scoreboard.pipe == 3 * MSS
        peer.send("A", ack=end_of(segs[9]))
        assert not conn.sender.cc.in_recovery and conn.sender.cc.cwnd == 5 * MSS
        assert stack.stats["retransmitted_segments"] == 3 and stack.stats["timeouts"] == 0

    def test_rack_resends_a_lone_hole_after_the_reordering_window(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 2)
        sent = clock.now
        clock.advance(RTT)
        peer.send_sack([block(segs[1])], ack=segs[0].seq)
        assert peer.recv() == []
        # RACK.rtt is RTT; no reordering seen yet, so the window is min_RTT / 4.
        assert fire(stack, clock) == pytest.approx(sent + RTT + RTT / 4)
        [again] = peer.recv()
        assert again.seq == segs[0].seq and stack.stats["sack_recoveries"] == 1

    def test_a_hole_filled_in_time_was_reordering_not_loss(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 2)
        clock.advance(RTT)
        peer.send_sack([block(segs[1])], ack=segs[0].seq)
        clock.advance(RTT / 8)
        peer.send("A", ack=end_of(segs[1]))
        assert peer.recv() == [] and stack.stats["retransmitted_segments"] == 0
        board = conn.sender.scoreboard
        assert board.reordering_seen and board.reorder_deadline is None and board.pipe == 0

    def test_a_dsack_widens_the_reordering_window(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 2)
        clock.advance(RTT)
        peer.send_sack([block(segs[1])], ack=segs[0].seq)
        fire(stack, clock)
        [again] = peer.recv()
        # The original arrived after all: the peer reports the copy as a duplicate.
        peer.send_sack([block(segs[0])], ack=end_of(segs[1]))
        board = conn.sender.scoreboard
        assert stack.stats["dsacks_received"] == 1 and board.reo_wnd_mult == 2
        assert board.reordering_window(False, 1.0) == pytest.approx(board.min_rtt / 4 * 2)

    def test_a_tail_loss_is_probed_not_left_to_the_rto(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 4)
        assert conn.sender.loss_probe_deadline == pytest.approx(clock.now + max(2 * RTT, TLP_MIN_PTO))
        assert conn.sender.timer == pytest.approx(clock.now + MIN_RTO)
        fire(stack, clock)
        [probe] = peer.recv()
        assert probe.seq == segs[3].seq and stack.stats["loss_probes"] == 1
        # Segments 0-2 were lost too: the SACK of the probe shows RACK what is missing.
        peer.send_sack([block(segs[3])], ack=segs[0].seq)
        assert [tcp.seq for tcp in peer.recv()] == [segs[0].seq, segs[1].seq]   # cwnd 2 MSS
        peer.send_sack([block(segs[3])], ack=end_of(segs[0]))
        peer.send_sack([block(segs[3])], ack=end_of(segs[1]))
        assert [tcp.seq for tcp in peer.recv()] == [segs[2].seq]
        peer.send("A", ack=end_of(segs[3]))
        assert stack.stats["timeouts"] == 0 and conn.sender.outstanding == 0

    def test_the_probe_sends_new_data_when_the_window_allows(self, sack, stack, clock):
        peer, conn = sack
        conn.sender.cc.cwnd = 2 * MSS
        conn.send(b"n" * 3 * MSS, clock.now)
        assert len(peer.recv()) == 2                      # cwnd-limited
        fire(stack, clock)
        [probe] = peer.recv()
        assert probe.seq == conn.sender.buffer_seq + 2 * MSS and not conn.sender.tlp_retransmission

    @pytest.mark.parametrize("dsack", [False, True], ids=["repaired", "spurious"])
    def test_a_probe_that_repaired_a_loss_halves_cwnd(self, sack, stack, clock, dsack):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 4)
        clock.advance(RTT)
        peer.send("A", ack=end_of(segs[2]))
        srtt = conn.sender.rtt.srtt
        # One segment out: the PTO allows for the peer's delayed ACK (RFC 8985 §7.2).
        # ... which here is later than the RTO, so the probe goes out at the RTO's time.
        assert 2 * srtt + TLP_DELAYED_ACK_ALLOWANCE > MIN_RTO
        assert conn.sender.loss_probe_deadline == conn.sender.timer == pytest.approx(clock.now + MIN_RTO)
        cwnd = conn.sender.cc.cwnd
        fire(stack, clock)
        [probe] = peer.recv()
        assert probe.seq == segs[3].seq
        if dsack:   # the original had arrived: the peer saw the probe twice
            peer.send_sack([block(segs[3])], ack=end_of(segs[3]))
            assert conn.sender.cc.cwnd >= cwnd and stack.stats["loss_probe_repairs"] == 0
        else:
            peer.send("A", ack=end_of(segs[3]))
            assert conn.sender.cc.cwnd == 2 * MSS < cwnd   # FlightSize / 2, at least 2 MSS
            assert stack.stats["loss_probe_repairs"] == 1
        assert stack.stats["timeouts"] == 0

    def test_an_rto_resends_only_what_the_peer_does_not_hold(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 6)
        clock.advance(RTT)
        peer.send_sack([block(segs[4], segs[5])], ack=segs[0].seq)
        while stack.stats["timeouts"] == 0:     # RACK resends 0-2 (cwnd 3), then they are lost too
            fire(stack, clock)
            sent = peer.recv()
        assert [tcp.seq for tcp in sent] == [segs[0].seq]  # the RTO's one segment
        board = conn.sender.scoreboard
        assert [s.lost for s in board.segments] == [False, True, True, True, False, False]
        assert conn.sender.cc.cwnd == MSS                 # RFC 5681 §3.1 loss window
        resent = []
        for expected in segs[:4]:   # slow start from SND.UNA; what the peer holds is skipped
            clock.advance(RTT)
            peer.send_sack([block(segs[4], segs[5])], ack=expected.seq)
            resent += [tcp.seq for tcp in peer.recv()]
        assert sorted(resent) == [tcp.seq for tcp in segs[1:4]]
        peer.send("A", ack=end_of(segs[5]))
        assert conn.sender.outstanding == 0 and stack.stats["timeouts"] == 1

    def test_a_reneging_peer_has_its_data_counted_in_flight_again(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 3)
        clock.advance(RTT)
        peer.send_sack([block(segs[2])], ack=segs[0].seq)
        board = conn.sender.scoreboard
        assert board.sacked_count == 1
        peer.send("A", ack=segs[2].seq)           # acknowledges 0-1, and forgot segment 2
        assert board.sacked_count == 0 and board.pipe == MSS

    def test_blocks_beyond_what_was_sent_are_ignored(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 3)
        clock.advance(RTT)
        end = end_of(segs[2])
        peer.send_sack([(segs[1].seq, end + 100)], ack=segs[0].seq)
        assert conn.sender.scoreboard.sacked_count == 0 and peer.recv() == []


class TestWithoutSack:
    def test_newreno_when_the_peer_did_not_offer_sack(self, stack, clock):
        peer, conn = connect(stack, clock, sack=False)
        assert conn.sender.scoreboard is None
        segs = send_segments(peer, conn, clock, 6)
        for last in (1, 2, 3):                  # blocks the peer had no right to send
            peer.send_sack([block(segs[1], segs[last])], ack=segs[0].seq)
        [again] = peer.recv()
        assert again.seq == segs[0].seq
        assert stack.stats["fast_retransmits"] == 1 and stack.stats["sack_recoveries"] == 0


class TestFinWait1:
    def test_a_lost_fin_is_probed(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 2)
        conn.close(clock.now)
        [fin] = peer.recv()
        assert flags(fin) == "FA" and conn.state == FIN_WAIT_1
        peer.send("A", ack=end_of(segs[1]))     # the data arrived, the FIN did not
        fire(stack, clock)
        [probe] = peer.recv()
        assert probe.seq == fin.seq and "F" in flags(probe) and stack.stats["loss_probes"] == 1
        peer.send("A", ack=end_of(fin))
        assert conn.state == FIN_WAIT_2 and stack.stats["timeouts"] == 0

    def test_data_before_the_fin_is_recovered_with_the_fin_acknowledged_last(self, sack, stack, clock):
        peer, conn = sack
        segs = send_segments(peer, conn, clock, 5)
        conn.close(clock.now)
        [fin] = peer.recv()
        clock.advance(RTT)
        peer.send_sack([block(segs[2], segs[4])], ack=segs[0].seq)
        resent = peer.recv()
        assert [tcp.seq for tcp in resent] == [segs[0].seq, segs[1].seq]
        assert not any("F" in flags(tcp) for tcp in resent)
        peer.send("A", ack=end_of(segs[4]))
        assert conn.state == FIN_WAIT_1
        peer.send("A", ack=end_of(fin))
        assert conn.state == FIN_WAIT_2


class TestLastAck:
    def test_recovery_after_the_peer_closed_ends_in_closed(self, sack, stack, clock):
        peer, conn = sack
        peer.send("FA")
        assert conn.state == CLOSE_WAIT
        peer.recv()
        stack.pop_events()
        conn.sender.cc.cwnd = 6 * MSS
        conn.send(b"z" * 5 * MSS, clock.now)
        conn.close(clock.now)
        out = peer.recv()
        assert conn.state == LAST_ACK and "F" in flags(out[-1])
        clock.advance(RTT)
        peer.send_sack([block(out[1], out[-1])], ack=out[0].seq)
        [again] = peer.recv()
        assert again.seq == out[0].seq and stack.stats["sack_recoveries"] == 1
        peer.send("A", ack=end_of(out[-1]))
        assert [e.reason for e in stack.pop_events() if isinstance(e, ConnectionLost)] == ["done"]
        assert stack.connections == []
