"""Replay protection: a numbered table in the style of the kernel's selftest, plus a model."""

from hypothesis import given, settings, strategies as st

from tunrelay.crypto.constants import REJECT_AFTER_MESSAGES, REPLAY_WINDOW_SIZE
from tunrelay.crypto.replay import ReplayWindow, StrictCounter

W = REPLAY_WINDOW_SIZE  # 8128: the oldest accepted counter is greatest - W
R = REJECT_AFTER_MESSAGES

# One window, fed in order; each row: (number, counter, accepted?).
WINDOW_TABLE = [
    (1, 0, True),            # counter 0 is valid once
    (2, 0, False),
    (3, 1, True),
    (4, 1, False),
    (5, 9, True),            # jump ahead
    (6, 8, True),            # behind, in window, unseen
    (7, 7, True),
    (8, 7, False),
    (9, 2, True),
    (10, 9, False),
    (11, W, True),           # greatest = W; counter 0 is the oldest acceptable
    (12, W - 1, True),
    (13, 0, False),          # seen anyway
    (14, 3, True),           # 3 + W > W: still inside
    (15, W + 3, True),       # greatest = W + 3: oldest acceptable is 3
    (16, 4, True),
    (17, 5, True),
    (18, 3, False),          # seen, at the very edge
    (19, 6, True),
    (20, 10, True),
    (21, W + 3, False),
    (22, 4 * W, True),       # big jump clears the whole ring
    (23, 3 * W - 1, False),  # one outside the window
    (24, 3 * W, True),       # exactly the oldest acceptable counter
    (25, 3 * W, False),
    (26, 4 * W - 1, True),
    (27, 4 * W - 64, True),  # a whole word behind the top
    (28, 4 * W + 64 * 130, True),  # jump more than the ring (128 words)
    (29, 4 * W + 64 * 130 - 1, True),
    (30, 4 * W + 64 * 130 + 8192, True),      # same ring bit as row 28: its word was cleared
    (31, 4 * W + 64 * 130 - 1 + 8192, True),  # same ring bit as row 29
    (32, 4 * W + 64 * 130 + 8192 - 64, True), # one word behind the new top
    (33, 4 * W, False),
    (34, R - 2, True),       # the largest counters
    (35, R - 1, True),
    (36, R, False),          # never: REJECT_AFTER_MESSAGES
    (37, R + 1, False),
    (38, 2**64 - 1, False),
    (39, R - 1, False),
    (40, R - 3, True),
    (41, R - W - 2, False),  # outside: greatest is R - 1
    (42, R - W - 1, True),
]


def test_window_table():
    window = ReplayWindow()
    failures = [(n, c, want) for n, c, want in WINDOW_TABLE if window.accept(c) != want]
    assert failures == []


def test_table_numbering_is_sequential():
    assert [row[0] for row in WINDOW_TABLE] == list(range(1, len(WINDOW_TABLE) + 1))


def test_window_accepts_a_full_window_of_reordered_counters():
    window = ReplayWindow()
    assert window.accept(W)
    assert all(window.accept(c) for c in range(W))  # W + 1 counters in all
    assert not any(window.accept(c) for c in range(W + 1))
    assert window.accept(W + 2)
    assert window.accept(1) is False and window.accept(W + 1)  # 1 is seen; W + 1 is new


STRICT_TABLE = [
    (1, 0, True),
    (2, 0, False),
    (3, 1, True),
    (4, 5, True),   # gaps are fine: the sender may have dropped encrypted packets
    (5, 4, False),  # anything not greater is refused
    (6, 5, False),
    (7, 6, True),
    (8, R - 1, True),
    (9, R, False),
]


def test_strict_counter_table():
    strict = StrictCounter()
    assert [(n, c, want) for n, c, want in STRICT_TABLE if strict.accept(c) != want] == []


def model_accepts(seen, greatest, counter):
    if counter >= R or counter in seen:
        return False
    return greatest is None or counter + W >= greatest


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.integers(0, 20000),
    st.integers(R - 20000, 2**64 - 1),
    # Counters a whole ring apart share a bit: they catch a window that forgets to clear.
    st.builds(lambda k, offset: k * 8192 + offset, st.integers(0, 4), st.integers(0, 130)),
), max_size=60))
def test_window_matches_a_naive_model(counters):
    window, seen, greatest = ReplayWindow(), set(), None
    for counter in counters:
        expected = model_accepts(seen, greatest, counter)
        assert window.accept(counter) == expected, counter
        if expected:
            seen.add(counter)
            greatest = counter if greatest is None else max(greatest, counter)
