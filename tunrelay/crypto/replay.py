"""Receive-counter checks for transport messages.

``ReplayWindow`` is the RFC 6479 sliding window in the shape the Linux kernel's
WireGuard uses (``receive.c``/``counter_validate``): a ring of 64-bit words holding
8192 bits.  When a counter moves the window forward, the words it passes are zeroed a
whole word at a time, so the last word is always partly stale; that is why only
8192 - 64 = 8128 counters behind the greatest one are accepted (REPLAY_WINDOW_SIZE).

Counters are compared after adding one, so that "nothing received yet" can be 0 and
counter 0 is still accepted exactly once.  Counters at or above REJECT_AFTER_MESSAGES
are always refused (whitepaper §6.1).

``StrictCounter`` is for stream transports (TCP), where packets cannot be reordered:
a counter is accepted only if it is *greater than* the previous accepted one.  Gaps are
allowed because a sender may drop an already-encrypted packet under back-pressure;
anything equal or lower is a replay or a reordering, which a stream cannot produce.

Both are updated only after the packet authenticated (the caller decrypts first), so
forged packets cannot move the window.
"""

from .constants import REJECT_AFTER_MESSAGES, REPLAY_BITMAP_BITS, REPLAY_WINDOW_SIZE, REPLAY_WORD_BITS

__all__ = ["ReplayWindow", "StrictCounter"]

_WORDS = REPLAY_BITMAP_BITS // REPLAY_WORD_BITS
_WORD_SHIFT = REPLAY_WORD_BITS.bit_length() - 1
_BIT_MASK = REPLAY_WORD_BITS - 1
_RING_MASK = _WORDS - 1


class ReplayWindow:
    __slots__ = ("_top", "_words")

    def __init__(self):
        self._top = 0  # greatest accepted counter + 1; 0 before the first packet
        self._words = [0] * _WORDS

    def accept(self, counter):
        """Record ``counter``; False if it is a replay, too old or too large."""
        position = counter + 1
        top = self._top
        words = self._words
        if position > top:
            # Ahead of everything seen (the usual case): no bit to test, since bits above the
            # greatest counter are never set and a word the window slides into is cleared.
            if counter >= REJECT_AFTER_MESSAGES:
                return False
            word = position >> _WORD_SHIFT
            current = top >> _WORD_SHIFT
            if word != current:
                # Clear every word the window slides over, but never more than the ring.
                for i in range(1, min(word - current, _WORDS) + 1):
                    words[(current + i) & _RING_MASK] = 0
            self._top = position
            words[word & _RING_MASK] |= 1 << (position & _BIT_MASK)
            return True
        if counter < 0 or position + REPLAY_WINDOW_SIZE < top:
            return False
        word = (position >> _WORD_SHIFT) & _RING_MASK
        bit = 1 << (position & _BIT_MASK)
        value = words[word]
        if value & bit:
            return False
        words[word] = value | bit
        return True


class StrictCounter:
    __slots__ = ("_last",)

    def __init__(self):
        self._last = -1

    def accept(self, counter):
        if counter >= REJECT_AFTER_MESSAGES or counter <= self._last:
            return False
        self._last = counter
        return True
