"""Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4, RFC 1982 style comparison).

Sequence numbers wrap, so "a < b" means "b is less than half the sequence space ahead of
a". Every comparison in the stack goes through these helpers; a bare ``<`` on two
sequence numbers is a bug that only shows up at the wrap, which the tests exercise.
"""

from tunrelay.stack.tcp.constants import SEQ_HALF, SEQ_MASK, SEQ_MODULUS

__all__ = ["seq_add", "seq_sub", "seq_diff", "seq_lt", "seq_le", "seq_gt", "seq_ge",
           "seq_in_window", "seq_max"]


def seq_add(a, n):
    return (a + n) & SEQ_MASK


def seq_sub(a, b):
    """How far ``a`` lies ahead of ``b``, as a non-negative distance."""
    return (a - b) & SEQ_MASK


def seq_diff(a, b):
    """Signed distance ``a - b`` in the range [-2^31, 2^31)."""
    d = (a - b) & SEQ_MASK
    return d - SEQ_MODULUS if d >= SEQ_HALF else d


def seq_lt(a, b):
    return seq_diff(a, b) < 0


def seq_le(a, b):
    return seq_diff(a, b) <= 0


def seq_gt(a, b):
    return seq_diff(a, b) > 0


def seq_ge(a, b):
    return seq_diff(a, b) >= 0


def seq_in_window(x, start, size):
    """``start <= x < start + size`` on the circle."""
    return seq_sub(x, start) < size


def seq_max(a, b):
    return b if seq_lt(a, b) else a
