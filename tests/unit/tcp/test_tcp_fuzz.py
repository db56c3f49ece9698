"""Hypothesis: no input makes segment_received, poll or the owner API raise."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunrelay.stack.tcp.constants import RECEIVE_BUFFER_SIZE

from .helpers import (
    CLIENT_B, SERVER_B, Clock, accepted_connection, build, make_stack)

FLAG_SETS = ["S", "SA", "A", "PA", "FA", "R", "RA", "", "FPU", "SF", "FPA", "SR", "U"]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_never_raise(data):
    stack = make_stack()
    stack.segment_received(CLIENT_B, SERVER_B, data, 0.0)
    stack.segment_received(CLIENT_B, SERVER_B, data[:12] + b"\x50" + data[13:], 0.0)
    assert stack.pop_outgoing() == [] or all(len(o[2]) >= 20 for o in stack.pop_outgoing())


segments = st.lists(st.tuples(
    st.sampled_from(FLAG_SETS),
    st.integers(-70000, 70000),           # seq offset from the peer's next sequence number
    st.integers(-70000, 70000),           # ack offset from the server's next sequence number
    st.integers(0, 0xFFFF),               # window
    st.binary(max_size=40),
    st.floats(0, 5),                      # time step
    st.sampled_from(["none", "send", "close", "pause", "resume", "abort"]),
), max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments)
def test_valid_segments_with_random_fields_never_raise(script):
    clock = Clock()
    stack = make_stack()
    peer, conn = accepted_connection(stack, clock)
    for flag_str, dseq, dack, window, payload, step, action in script:
        clock.advance(step)
        stack.poll(clock.now)
        segment = build(peer.sport, peer.dport, flag_str, peer.snd_nxt + dseq,
                        conn.sender.nxt + dack, window, payload)
        stack.segment_received(CLIENT_B, SERVER_B, segment, clock.now)
        if action == "send" and conn.state in ("ESTABLISHED", "CLOSE-WAIT"):
            conn.send(payload * 50, clock.now)
        elif action == "close":
            conn.close(clock.now)
        elif action == "pause":
            conn.pause_reading()
        elif action == "resume":
            conn.resume_reading(clock.now)
        elif action == "abort":
            conn.abort(clock.now)
        stack.pop_outgoing()
        stack.pop_events()
        deadline = stack.next_deadline()
        assert deadline is None or deadline >= clock.now - 5
        assert conn.receiver.ooo.byte_count <= RECEIVE_BUFFER_SIZE
        assert len(conn.receiver.held) <= RECEIVE_BUFFER_SIZE
    # Whatever happened, time alone settles every timer; what is left waits on a person.
    for _ in range(200):
        deadline = stack.next_deadline()
        if deadline is None:
            break
        stack.poll(deadline)
    assert stack.next_deadline() is None
    assert all(c.state in ("ESTABLISHED", "CLOSE-WAIT") for c in stack.connections)


sack_script = st.lists(st.tuples(
    st.integers(-3000, 3000),             # ack offset from SND.UNA
    st.lists(st.tuples(st.integers(-5000, 70000), st.integers(-100, 20000)), max_size=4),
    st.floats(0, 0.5),                    # time step
    st.sampled_from(["none", "send", "close"]),
), max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sack_script)
def test_sack_blocks_of_any_shape_never_break_the_scoreboard(script):
    """Hostile or confused SACK blocks: no exception, and the books always balance."""
    clock = Clock()
    stack = make_stack()
    peer, conn = accepted_connection(stack, clock, sack=True)
    conn.send(b"q" * 60000, clock.now)
    for dack, blocks, step, action in script:
        clock.advance(step)
        stack.poll(clock.now)
        una = conn.sender.una
        edges = tuple(edge for left, size in blocks for edge in (una + left, una + left + size))
        options = [("NOP", None), ("NOP", None), ("SAck", tuple(e & 0xFFFFFFFF for e in edges))] if edges else []
        segment = build(peer.sport, peer.dport, "A", peer.snd_nxt, una + dack, 65535, b"", options)
        stack.segment_received(CLIENT_B, SERVER_B, segment, clock.now)
        if action == "send" and conn.state == "ESTABLISHED":
            conn.send(b"r" * 5000, clock.now)
        elif action == "close":
            conn.close(clock.now)
        stack.pop_outgoing()
        stack.pop_events()
        board = conn.sender.scoreboard
        if conn.state == "CLOSED":
            break
        segments = board.segments
        assert sum(s.length for s in segments) == conn.sender.outstanding
        assert board.pipe == sum(s.length for s in segments if not s.sacked and not s.lost)
        assert board.sacked_count == sum(1 for s in segments if s.sacked)
        assert board.lost_pending == sum(1 for s in segments if s.lost)
        assert board.retransmitted_count == sum(1 for s in segments if s.retransmitted)
        assert all(not (s.sacked and s.lost) for s in segments)
        deadline = stack.next_deadline()
        assert deadline is None or deadline >= clock.now - 0.5
