"""The pure building blocks: sequence arithmetic, reassembly, RTO, NewReno, ISN."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tunrelay.stack.tcp.congestion import FULL_ACK, PARTIAL_ACK, NewReno, initial_window
from tunrelay.stack.tcp.constants import INITIAL_RTO, MAX_RTO, MIN_RTO
from tunrelay.stack.tcp.isn import IsnGenerator
from tunrelay.stack.tcp.reassembly import ReassemblyQueue
from tunrelay.stack.tcp.rtt import RttEstimator
from tunrelay.stack.tcp.seq import (
    seq_add, seq_diff, seq_ge, seq_gt, seq_in_window, seq_le, seq_lt, seq_max, seq_sub)

TOP = 0xFFFFFFFF
u32 = st.integers(0, TOP)


# -- sequence numbers --------------------------------------------------------------------
def test_comparisons_across_the_wrap():
    assert seq_lt(TOP, 0) and seq_lt(TOP - 10, 5) and seq_gt(5, TOP - 10)
    assert seq_le(TOP, TOP) and seq_ge(0, TOP) and not seq_lt(0, TOP)
    assert seq_add(TOP, 1) == 0 and seq_add(TOP, 10) == 9
    assert seq_sub(3, TOP) == 4 and seq_diff(3, TOP) == 4 and seq_diff(TOP, 3) == -4
    assert seq_in_window(1, TOP - 1, 4) and not seq_in_window(2, TOP - 1, 4)
    assert not seq_in_window(TOP - 2, TOP - 1, 4)
    assert seq_max(TOP, 1) == 1


@given(u32, st.integers(1, (1 << 31) - 1))
def test_adding_less_than_half_the_space_is_greater(a, n):
    b = seq_add(a, n)
    assert seq_lt(a, b) and seq_gt(b, a) and seq_le(a, b) and not seq_ge(a, b)
    assert seq_sub(b, a) == n and seq_diff(a, b) == -n


@given(u32, u32)
def test_exactly_one_ordering(a, b):
    assert [seq_lt(a, b), a == b, seq_gt(a, b)].count(True) == 1


# -- reassembly --------------------------------------------------------------------------
def test_reassembly_fills_holes_across_the_wrap():
    base = TOP - 4
    queue = ReassemblyQueue()
    assert queue.insert(base, seq_add(base, 10), b"KLMNO")
    assert queue.insert(base, seq_add(base, 5), b"FGHIJ")
    assert queue.pop_contiguous(base) == b""
    assert queue.pop_contiguous(seq_add(base, 5)) == b"FGHIJKLMNO"
    assert len(queue) == 0


def test_reassembly_discards_overlaps_so_memory_stays_within_the_window():
    queue = ReassemblyQueue()
    for _ in range(100):
        assert queue.insert(0, 10, b"a" * 50)
    assert queue.byte_count == 50
    assert queue.insert(0, 5, b"b" * 60)       # only [5,10) and [60,65) are new
    assert queue.byte_count == 60 and len(queue) == 3
    assert queue.pop_contiguous(5) == b"bbbbb" + b"a" * 50 + b"bbbbb"


def test_reassembly_range_limit():
    queue = ReassemblyQueue(max_ranges=3)
    for i in range(3):
        assert queue.insert(0, 10 + 10 * i, b"x")
    assert not queue.insert(0, 100, b"y")
    assert queue.insert(0, 10, b"x")           # nothing new: always fine


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 40)), max_size=30))
def test_reassembly_matches_a_naive_model(chunks):
    stream = bytes(range(256)) * 2
    base = TOP - 100
    queue = ReassemblyQueue(max_ranges=1000)
    have = set()
    for start, length in chunks:
        queue.insert(base, seq_add(base, 1 + start), stream[1 + start:1 + start + length])
        have.update(range(1 + start, 1 + start + length))
    expected = bytearray()
    i = 1
    while i in have:
        expected.append(stream[i])
        i += 1
    assert queue.pop_contiguous(seq_add(base, 1)) == bytes(expected)


# -- RTO (RFC 6298) ---------------------------------------------------------------------------
def test_rto_initial_first_sample_and_floor():
    rtt = RttEstimator()
    assert rtt.rto == INITIAL_RTO == 1.0
    rtt.sample(0.1)
    assert rtt.srtt == pytest.approx(0.1) and rtt.rttvar == pytest.approx(0.05)
    assert rtt.rto == pytest.approx(0.3)      # 0.1 + 4 * 0.05
    for _ in range(50):
        rtt.sample(0.001)
    assert rtt.rto == MIN_RTO == 0.2


def test_rto_second_sample_uses_alpha_beta():
    rtt = RttEstimator()
    rtt.sample(1.0)
    rtt.sample(2.0)
    assert rtt.rttvar == pytest.approx(0.75 * 0.5 + 0.25 * 1.0)
    assert rtt.srtt == pytest.approx(0.875 + 0.25)
    assert rtt.rto == pytest.approx(1.125 + 4 * 0.625)


def test_rto_backoff_caps_at_max():
    rtt = RttEstimator()
    values = []
    for _ in range(10):
        rtt.back_off()
        values.append(rtt.rto)
    assert values[:3] == [2.0, 4.0, 8.0] and values[-1] == MAX_RTO == 60.0


# -- NewReno (RFC 5681 / RFC 6582) ---------------------------------------------------------
MSS = 1000


def test_initial_window():
    assert initial_window(1460) == 4380 and initial_window(536) == 2144
    assert initial_window(3000) == 6000


def test_slow_start_then_congestion_avoidance():
    cc = NewReno(MSS, 0)
    cc.ssthresh = 6000
    cc.on_new_ack(4000, 4000, 0)
    assert cc.cwnd == 4000 + MSS                # at most one SMSS per ACK
    cc.on_new_ack(5000, 1000, 0)
    assert cc.cwnd == 6000
    cc.on_new_ack(6000, 1000, 0)
    assert cc.cwnd == 6000 + MSS * MSS // 6000


def test_fast_retransmit_partial_and_full_ack():
    cc = NewReno(MSS, 0)
    cc.cwnd = 10000
    assert not cc.on_duplicate_ack(1, 10000, 10001)
    assert not cc.on_duplicate_ack(1, 10000, 10001)
    assert cc.on_duplicate_ack(1, 10000, 10001)
    assert cc.in_recovery and cc.ssthresh == 5000 and cc.cwnd == 8000 and cc.recover == 10001
    assert not cc.on_duplicate_ack(1, 10000, 10001)
    assert cc.cwnd == 9000                       # inflation
    assert cc.on_new_ack(3001, 3000, 7000) == PARTIAL_ACK
    assert cc.in_recovery and cc.cwnd == 9000 - 3000 + MSS
    assert cc.on_new_ack(10001, 7000, 0) == FULL_ACK
    assert not cc.in_recovery and cc.cwnd == 2 * MSS  # min(ssthresh, max(0, MSS) + MSS)


def test_no_second_fast_retransmit_below_recover_after_timeout():
    cc = NewReno(MSS, 0)
    cc.on_timeout(8000, 8001)
    assert cc.cwnd == MSS and cc.ssthresh == 4000
    assert not any(cc.on_duplicate_ack(1001, 4000, 8001) for _ in range(5))
    cc.dupacks = 0
    assert [cc.on_duplicate_ack(8001, 4000, 9001) for _ in range(3)] == [False, False, True]


# -- ISN (RFC 6528) ---------------------------------------------------------------------
def test_isn_depends_on_tuple_secret_and_clock():
    a = IsnGenerator(b"a" * 16)
    b = IsnGenerator(b"b" * 16)
    tuple_ = (b"\x0a\0\0\1", 80, b"\x0a\0\0\2", 40000)
    assert a(*tuple_, 0.0) != b(*tuple_, 0.0)
    assert a(*tuple_, 0.0) != a(b"\x0a\0\0\1", 80, b"\x0a\0\0\2", 40001, 0.0)
    assert seq_sub(a(*tuple_, 1.0), a(*tuple_, 0.0)) == 250_000   # 4 microsecond ticks
    with pytest.raises(ValueError):
        IsnGenerator(b"short")
