"""ESTABLISHED: data both ways, ACK timing, reordering, retransmission, congestion and flow
control, RFC 5961 checks. Each test drives the stack with scapy-built segments."""

import pytest

from tunrelay.stack.tcp import (
    LOST_ABORTED, LOST_RESET, LOST_TIMED_OUT, ConnectionLost, DataReceived, TcpStateError,
    WritableAgain)
from tunrelay.stack.tcp.constants import (
    CHALLENGE_ACK_BURST, DELAYED_ACK_TIMEOUT, MAX_RETRANSMISSIONS, MAX_RTO,
    MAX_UNANSWERED_PROBES, MIN_RTO, RECEIVE_BUFFER_SIZE, SEND_BUFFER_LOW_WATER,
    SEND_BUFFER_SIZE)

from .helpers import MASK, Peer, accepted_connection, fire, flags, make_stack, payload_of

MSS = 1460


@pytest.fixture
def est(stack, clock):
    peer, conn = accepted_connection(stack, clock)
    return peer, conn


def data_events(stack):
    return b"".join(e.data for e in stack.pop_events() if isinstance(e, DataReceived))


class TestReceiving:
    def test_window_field_is_scaled(self, est, stack, clock):
        peer, conn = est
        peer.send("PA", payload=b"x")
        fire(stack, clock)
        assert peer.recv_one().window == RECEIVE_BUFFER_SIZE >> 3

    def test_single_segment_ack_is_delayed_at_most_200ms(self, est, stack, clock):
        peer, conn = est
        start = clock.now
        peer.send("PA", payload=b"hello")
        assert data_events(stack) == b"hello"
        assert peer.recv() == []
        assert stack.next_deadline() - start == pytest.approx(DELAYED_ACK_TIMEOUT)
        assert DELAYED_ACK_TIMEOUT <= 0.2
        fire(stack, clock)
        ack = peer.recv_one()
        assert flags(ack) == "A" and ack.ack == peer.snd_nxt
        assert stack.next_deadline() is None

    def test_every_second_full_segment_is_acked_at_once(self, est, stack, clock):
        peer, conn = est
        peer.send("A", payload=b"a" * MSS)
        assert peer.recv() == []
        peer.send("A", payload=b"b" * MSS)
        assert peer.recv_one().ack == peer.snd_nxt

    def test_reply_data_carries_the_ack(self, est, stack, clock):
        peer, conn = est
        peer.send("PA", payload=b"ping")
        conn.send(b"pong", clock.now)
        reply = peer.recv_one()
        assert payload_of(reply) == b"pong" and reply.ack == peer.snd_nxt
        # No delayed-ACK timer left, only the retransmission timer.
        assert stack.next_deadline() == clock.now + conn.sender.rtt.rto

    def test_out_of_order_then_fill(self, est, stack, clock):
        peer, conn = est
        base = peer.snd_nxt
        peer.send("A", seq=base + 10, payload=b"K" * 10, advance=False)
        dup = peer.recv_one()
        assert flags(dup) == "A" and dup.ack == base            # immediate duplicate ACK
        peer.send("A", seq=base + 30, payload=b"M" * 5, advance=False)
        assert peer.recv_one().ack == base
        assert data_events(stack) == b""
        peer.send("A", seq=base, payload=b"J" * 10, advance=False)
        fill = peer.recv_one()                                  # filling a hole: at once
        assert fill.ack == (base + 20) & MASK
        peer.send("A", seq=base + 20, payload=b"L" * 10, advance=False)
        assert peer.recv_one().ack == (base + 35) & MASK
        assert data_events(stack) == b"J" * 10 + b"K" * 10 + b"L" * 10 + b"M" * 5

    def test_duplicate_data_is_acked_at_once_and_not_delivered_twice(self, est, stack, clock):
        peer, conn = est
        seq = peer.snd_nxt
        peer.send("PA", payload=b"once")
        peer.send("PA", seq=seq, payload=b"once", advance=False)
        assert peer.recv_one().ack == peer.snd_nxt
        assert data_events(stack) == b"once"

    def test_overlapping_retransmission_delivers_only_new_bytes(self, est, stack, clock):
        peer, conn = est
        seq = peer.snd_nxt
        peer.send("PA", payload=b"abcd")
        peer.send("PA", seq=seq + 2, payload=b"cdef", advance=False)
        assert data_events(stack) == b"abcdef"

    @pytest.mark.parametrize("offset", [-100000, 1 << 20, 1 << 31])
    def test_out_of_window_data_is_acked_and_dropped(self, est, stack, clock, offset):
        peer, conn = est
        peer.send("PA", seq=peer.snd_nxt + offset, payload=b"zz", advance=False)
        ack = peer.recv_one()
        assert flags(ack) == "A" and ack.ack == peer.snd_nxt
        assert data_events(stack) == b"" and stack.drops["out_of_window"] == 1

    def test_out_of_window_pure_acks_answered_at_most_every_half_second(self, est, stack,
                                                                        clock):
        peer, conn = est
        for _ in range(5):
            peer.send("A", seq=peer.snd_nxt + 500000, advance=False)
        assert len(peer.recv()) == 1
        clock.advance(0.5)
        peer.send("A", seq=peer.snd_nxt + 500000, advance=False)
        assert len(peer.recv()) == 1
        assert stack.stats["out_of_window_acks_suppressed"] == 4

    def test_segments_without_timestamps_after_timestamps_are_processed(self, stack, clock):
        peer = Peer(stack, clock)
        peer.send("S", options=[("MSS", 1460), ("Timestamp", (1, 0)), ("WScale", 7)])
        synack = peer.recv_one()
        peer.rcv_nxt = synack.seq + 1
        peer.send("A", options=[("Timestamp", (2, 0))])
        conn = stack.pop_events()[0].conn
        conn.send(b"data", clock.now)
        sent = peer.recv_one()
        peer.send("PA", payload=b"with ts", options=[("Timestamp", (3, 0))])
        peer.ack(sent)                    # no timestamp option at all
        peer.send("PA", payload=b" without")
        assert data_events(stack) == b"with ts without"
        assert conn.sender.una == conn.sender.max and stack.next_deadline() is not None

    def test_ack_without_ack_flag_dropped(self, est, stack, clock):
        peer, conn = est
        peer.send("P", payload=b"x")
        assert data_events(stack) == b"" and stack.drops["bad_flags"] == 1


class TestFlowControl:
    @staticmethod
    def fill_window(peer, stack):
        """Send full segments until the advertised window is closed; return bytes taken."""
        start = peer.snd_nxt
        windows = []
        while not windows or windows[-1] > 0:
            peer.send("A", payload=b"p" * MSS)
            out = peer.recv()
            if out:
                windows.append(out[-1].window << 3)
                taken = (out[-1].ack - start) & MASK
            assert len(windows) < RECEIVE_BUFFER_SIZE // MSS
        peer.snd_nxt = out[-1].ack
        return taken, windows

    def test_pause_closes_window_and_resume_reopens_it(self, est, stack, clock):
        peer, conn = est
        conn.pause_reading()
        taken, windows = self.fill_window(peer, stack)
        assert windows == sorted(windows, reverse=True) and windows[-1] == 0
        assert taken == RECEIVE_BUFFER_SIZE            # what we offered was honoured
        assert data_events(stack) == b""
        conn.resume_reading(clock.now)
        assert data_events(stack) == b"p" * taken
        update = peer.recv_one()
        assert update.window << 3 == RECEIVE_BUFFER_SIZE and update.ack == peer.snd_nxt

    def test_data_into_a_zero_window_is_refused_but_its_ack_is_taken(self, est, stack, clock):
        peer, conn = est
        conn.pause_reading()
        self.fill_window(peer, stack)
        conn.send(b"out", clock.now)
        out = peer.recv_one()
        assert out.window == 0
        peer.rcv_nxt = out.seq + 3
        peer.send("PA", payload=b"in", advance=False)
        ack = peer.recv_one()
        assert ack.window == 0 and ack.ack == peer.snd_nxt
        assert conn.sender.una == conn.sender.max        # the ACK field was processed
        assert data_events(stack) == b""

    def test_send_buffer_is_bounded_and_writable_again_is_raised(self, est, stack, clock):
        peer, conn = est
        accepted = conn.send(b"s" * (SEND_BUFFER_SIZE + 1000), clock.now)
        assert accepted == SEND_BUFFER_SIZE and conn.send_buffer_free() == 0
        assert conn.send(b"more", clock.now) == 0
        acked = 0
        for _ in range(SEND_BUFFER_SIZE // MSS):
            if any(isinstance(e, WritableAgain) for e in stack.pop_events()):
                break
            for tcp in peer.recv():
                peer.ack(tcp)
                acked += len(payload_of(tcp))
        else:
            pytest.fail("no WritableAgain")
        assert acked <= SEND_BUFFER_SIZE - SEND_BUFFER_LOW_WATER + 10 * MSS
        assert conn.send_buffer_free() >= SEND_BUFFER_LOW_WATER

    def test_zero_window_persist_probes_back_off_and_window_reopens(self, est, stack, clock):
        peer, conn = est
        conn.send(b"a" * 100, clock.now)
        first = peer.recv_one()
        peer.ack(first, window=0)
        conn.send(b"b" * 100, clock.now)
        assert peer.recv() == []
        times = []
        for _ in range(4):
            times.append(fire(stack, clock))
            probe = peer.recv_one()
            assert flags(probe) == "A" and payload_of(probe) == b""
            assert probe.seq == (first.seq + 100 - 1) & MASK
            peer.send("A", window=0)        # answered, still closed
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert gaps == pytest.approx([gaps[0], gaps[0] * 2, gaps[0] * 4]) and gaps[0] >= MIN_RTO
        peer.send("A", window=1000)
        data = peer.recv_one()
        assert payload_of(data) == b"b" * 100 and stack.stats["window_probes"] == 4

    def test_window_closing_under_data_in_flight_probes_then_resends(self, est, stack,
                                                                       clock):
        peer, conn = est
        conn.sender.cc.cwnd = 3 * MSS
        conn.send(b"q" * 3 * MSS, clock.now)
        segs = peer.recv()
        peer.ack(segs[0], window=0)          # the other two fell beyond a closed window
        fire(stack, clock)
        probe = peer.recv_one()
        assert payload_of(probe) == b"" and probe.seq == (segs[1].seq - 1) & MASK
        assert stack.stats["timeouts"] == 0 and stack.stats["window_probes"] == 1
        peer.send("A", window=0xFFFF)         # the answer opens the window
        assert [t.seq for t in peer.recv()] == [segs[1].seq, segs[2].seq]

    def test_unanswered_probes_give_up(self, est, stack, clock):
        peer, conn = est
        conn.send(b"a", clock.now)
        peer.ack(peer.recv_one(), window=0)
        conn.send(b"b", clock.now)
        for _ in range(MAX_UNANSWERED_PROBES + 1):
            fire(stack, clock)
        assert [e.reason for e in stack.pop_events()] == [LOST_TIMED_OUT]
        assert stack.connections == []


class TestRetransmission:
    def test_rto_backs_off_and_karn_skips_retransmitted_samples(self, est, stack, clock):
        peer, conn = est
        conn.send(b"x" * 10, clock.now)
        original = peer.recv_one()
        rto = conn.sender.rtt.rto
        assert rto == MIN_RTO                          # from the SYN-ACK's RTT sample of 0
        sent_at = [clock.now]
        for _ in range(3):
            sent_at.append(fire(stack, clock))
            again = peer.recv_one()
            assert again.seq == original.seq and payload_of(again) == b"x" * 10
        gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
        assert gaps == pytest.approx([rto, 2 * rto, 4 * rto])
        clock.advance(0.01)
        srtt = conn.sender.rtt.srtt
        peer.ack(again)
        assert conn.sender.rtt.srtt == srtt            # Karn: no sample from a retransmission
        assert conn.sender.rtt.rto == pytest.approx(8 * rto)   # backed-off RTO kept
        conn.send(b"y", clock.now)
        fresh = peer.recv_one()
        clock.advance(0.05)
        peer.ack(fresh)
        assert conn.sender.rtt.srtt == pytest.approx(0.05 / 8)
        assert conn.sender.rtt.rto == MIN_RTO
        assert stack.stats["timeouts"] == 3

    def test_pure_acks_after_an_rto_carry_snd_max(self, est, stack, clock):
        peer, conn = est
        conn.sender.cc.cwnd = 3 * MSS
        conn.send(b"r" * 3 * MSS, clock.now)
        segs = peer.recv()
        fire(stack, clock)                        # go-back-N rewinds SND.NXT
        peer.recv()
        assert conn.sender.nxt != conn.sender.max
        peer.send("PA", payload=b"x" * MSS, ack=segs[0].seq)
        peer.send("PA", payload=b"y" * MSS, ack=segs[0].seq)
        ack = peer.recv_one()
        assert payload_of(ack) == b"" and ack.seq == (segs[-1].seq + MSS) & MASK

    def test_backoff_is_capped_and_connection_gives_up(self, est, stack, clock):
        peer, conn = est
        conn.send(b"x", clock.now)
        peer.recv()
        times = [clock.now]
        for _ in range(100):
            if not stack.connections:
                break
            times.append(fire(stack, clock))
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert len(gaps) == MAX_RETRANSMISSIONS + 1 and max(gaps) == MAX_RTO
        retransmits = peer.recv()
        assert len(retransmits) == MAX_RETRANSMISSIONS
        assert all(flags(t) != "R" and "R" not in flags(t) for t in retransmits)
        assert [type(e) for e in stack.pop_events()] == [ConnectionLost]
        assert conn.state == "CLOSED" and stack.stats["gave_up"] == 1

    def _grow(self, peer, conn, clock, segments):
        conn.sender.cc.cwnd = segments * MSS
        conn.send((bytes(range(256)) * (segments * MSS // 256 + 1))[:segments * MSS],
                  clock.now)
        out = peer.recv()
        assert len(out) == segments
        return out

    def test_fast_retransmit_and_newreno_partial_ack(self, est, stack, clock):
        peer, conn = est
        segs = self._grow(peer, conn, clock, 10)
        cc = conn.sender.cc
        # Segments 0 and 3 are lost; the peer ACKs 1, 2 as duplicates of segment 0's start.
        for _ in range(3):
            peer.send("A", ack=segs[0].seq)
        retransmit = peer.recv_one()
        assert retransmit.seq == segs[0].seq and len(payload_of(retransmit)) == MSS
        assert stack.stats["fast_retransmits"] == 1 and cc.in_recovery
        assert cc.ssthresh == 5 * MSS and cc.cwnd == 8 * MSS
        for _ in range(5):                       # segments 4..9 arriving: inflation
            peer.send("A", ack=segs[0].seq)
        assert cc.cwnd == 13 * MSS
        peer.recv()
        # Partial ACK up to the second hole: retransmit segment 3 at once.
        peer.send("A", ack=segs[3].seq)
        partial = peer.recv()
        assert partial[0].seq == segs[3].seq and cc.in_recovery
        assert stack.stats["fast_retransmits"] == 1
        # Full ACK: recovery ends with cwnd = min(ssthresh, flight + MSS).
        peer.send("A", ack=conn.sender.max)
        assert not cc.in_recovery and cc.cwnd <= cc.ssthresh

    def test_limited_transmit_sends_new_data_on_first_two_dupacks(self, est, stack, clock):
        peer, conn = est
        segs = self._grow(peer, conn, clock, 4)
        conn.send(b"n" * 3 * MSS, clock.now)        # new data, but cwnd is full
        assert peer.recv() == []
        cwnd = conn.sender.cc.cwnd
        sent = []
        for _ in range(3):
            peer.send("A", ack=segs[0].seq)
            sent.append(peer.recv())
        assert [payload_of(t[0])[:1] for t in sent[:2]] == [b"n", b"n"]   # RFC 3042
        assert sent[2][0].seq == segs[0].seq                              # then fast rexmit
        assert conn.sender.cc.in_recovery and stack.stats["fast_retransmits"] == 1
        assert conn.sender.cc.ssthresh == max(6 * MSS // 2, 2 * MSS) and cwnd == 4 * MSS

    def test_early_retransmit_with_two_segments_outstanding(self, est, stack, clock):
        peer, conn = est
        segs = self._grow(peer, conn, clock, 2)
        peer.send("A", ack=segs[0].seq)             # one duplicate is all the peer can send
        again = peer.recv_one()
        assert again.seq == segs[0].seq and stack.stats["fast_retransmits"] == 1

    def test_dup_acks_with_window_change_or_data_do_not_count(self, est, stack, clock):
        peer, conn = est
        segs = self._grow(peer, conn, clock, 6)
        for window in (60000, 60001, 60002):
            peer.send("A", ack=segs[0].seq, window=window)
        peer.send("PA", ack=segs[0].seq, window=60002, payload=b"d")
        assert stack.stats["fast_retransmits"] == 0
        assert all(payload_of(t) == b"" for t in peer.recv())

    def test_rto_collapses_cwnd_and_goes_back_n(self, est, stack, clock):
        peer, conn = est
        segs = self._grow(peer, conn, clock, 6)
        fire(stack, clock)
        [again] = peer.recv()
        assert again.seq == segs[0].seq and conn.sender.cc.cwnd == MSS
        peer.send("A", ack=segs[2].seq)          # the peer had 0 and 1
        resent = peer.recv()
        assert [t.seq for t in resent] == [segs[2].seq, segs[3].seq]   # slow start: 2 MSS


class TestRfc5961:
    def test_exact_rst_resets_without_reply(self, est, stack, clock):
        peer, conn = est
        peer.send("R")
        assert peer.recv() == []
        assert [(type(e), e.reason) for e in stack.pop_events()] == [(ConnectionLost,
                                                                      LOST_RESET)]
        assert stack.connections == []
        peer.send("RA")                          # and a second RST: still nothing
        assert peer.recv() == []

    def test_in_window_rst_gets_challenge_ack(self, est, stack, clock):
        peer, conn = est
        peer.send("R", seq=peer.snd_nxt + 1000, advance=False)
        challenge = peer.recv_one()
        assert flags(challenge) == "A" and challenge.ack == peer.snd_nxt
        assert conn.state == "ESTABLISHED" and stack.stats["challenge_acks"] == 1
        peer.send("R", seq=challenge.ack)        # what a real peer answers with
        assert conn.state == "CLOSED"

    def test_out_of_window_rst_is_ignored(self, est, stack, clock):
        peer, conn = est
        peer.send("R", seq=peer.snd_nxt + (1 << 30), advance=False)
        assert peer.recv() == [] and conn.state == "ESTABLISHED"

    def test_syn_in_established_gets_challenge_ack(self, est, stack, clock):
        peer, conn = est
        for seq in (peer.snd_nxt, peer.snd_nxt + (1 << 30)):
            peer.send("S", seq=seq, advance=False)
            assert flags(peer.recv_one()) == "A"
        assert conn.state == "ESTABLISHED" and stack.stats["challenge_acks"] == 2

    def test_challenge_acks_are_rate_limited(self, est, stack, clock):
        peer, conn = est
        for i in range(CHALLENGE_ACK_BURST * 3):
            peer.send("R", seq=peer.snd_nxt + 1 + i, advance=False)
        assert len(peer.recv()) == CHALLENGE_ACK_BURST
        assert stack.stats["challenge_acks_suppressed"] == CHALLENGE_ACK_BURST * 2
        clock.advance(1.0)
        peer.send("R", seq=peer.snd_nxt + 1, advance=False)
        assert len(peer.recv()) == 1

    def test_no_ack_storm_with_a_desynchronised_peer(self, est, stack, clock):
        """A peer that answers each of our ACKs with an out-of-window ACK (the loop of
        smoltcp #338) gets at most one answer per OUT_OF_WINDOW_ACK_INTERVAL."""
        peer, conn = est
        peer.send("A", seq=peer.snd_nxt + 300000, advance=False)
        answers = 0
        for _ in range(1000):
            out = peer.recv()
            answers += len(out)
            assert all("R" not in flags(t) for t in out)
            clock.advance(0.01)
            peer.send("A", seq=peer.snd_nxt + 300000, advance=False)
        assert answers <= 10 / 0.5 + 1 and conn.state == "ESTABLISHED"

    def test_ack_of_unsent_data_is_answered_not_processed(self, est, stack, clock):
        peer, conn = est
        conn.send(b"abc", clock.now)
        peer.recv()
        peer.send("PA", ack=conn.sender.max + 100, payload=b"bogus")
        ack = peer.recv_one()
        assert ack.ack == (peer.snd_nxt - 5) & MASK        # the data was not taken
        assert data_events(stack) == b"" and stack.drops["ack_unsent"] == 1
        assert conn.sender.una != conn.sender.max

    def test_ack_too_old_gets_challenge_ack(self, est, stack, clock):
        peer, conn = est
        peer.send("A", ack=conn.sender.una - conn.sender.max_wnd - 10)
        assert flags(peer.recv_one()) == "A" and stack.drops["ack_too_old"] == 1


class TestOwnerApi:
    def test_idle_connection_has_no_deadline_and_counters_merge(self, est, stack, clock):
        peer, conn = est
        assert stack.next_deadline() is None
        peer.send("A", payload=b"", corrupt_checksum=True)
        assert stack.counters["drop_bad_checksum"] == 1
        assert stack.counters["segments_received"] == 3


    def test_abort_sends_rst_and_reports(self, est, stack, clock):
        peer, conn = est
        conn.send(b"pending", clock.now)
        peer.recv()
        conn.abort(clock.now)
        rst = peer.recv_one()
        assert flags(rst) == "RA" and rst.seq == conn.sender.max
        assert [e.reason for e in stack.pop_events()] == [LOST_ABORTED]
        assert stack.connections == [] and stack.next_deadline() is None
        with pytest.raises(TcpStateError):
            conn.send(b"x", clock.now)
        peer.send("PA", payload=b"late")           # the peer did not hear the RST yet
        assert flags(peer.recv_one()) == "R"

    def test_send_after_close_raises(self, est, stack, clock):
        peer, conn = est
        conn.close(clock.now)
        with pytest.raises(TcpStateError):
            conn.send(b"x", clock.now)
        assert conn.send_buffer_free() == 0


class TestWraparound:
    def test_data_both_ways_across_the_sequence_wrap(self, clock):
        stack = make_stack()
        stack._isn = lambda *args: 0xFFFFFF00
        peer = Peer(stack, clock, isn=0xFFFFFFF0)
        peer.handshake()
        conn = stack.pop_events()[0].conn
        payload = bytes(range(256)) * 4
        for i in range(0, len(payload), 100):
            peer.send("PA", payload=payload[i:i + 100])
        assert data_events(stack) == payload
        assert peer.snd_nxt < 0x1000                   # we did wrap
        conn.sender.cc.cwnd = 10 * MSS
        conn.send(payload, clock.now)
        got = b""
        for tcp in peer.recv():
            got += payload_of(tcp)
            peer.ack(tcp)
        assert got == payload and conn.sender.una == conn.sender.max < 0x1000
        assert stack.next_deadline() is None
