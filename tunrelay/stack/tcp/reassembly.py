"""The out-of-order queue of the receiver (RFC 9293 §3.10.7.4 "segment text", RFC 5681 §4.2).

Segments that arrive beyond RCV.NXT but inside the advertised window are kept as disjoint
byte ranges; overlapping parts of later arrivals are discarded on insertion, so the bytes
held never exceed the window and a peer replaying overlapping segments cannot multiply
memory. The number of ranges is bounded too (MAX_OUT_OF_ORDER_RANGES): a peer that sends
every other byte would otherwise make a list as long as half the window. A segment that
would exceed the bound is dropped; the sender retransmits it later.

Positions are kept as absolute sequence numbers and compared relative to RCV.NXT, which
is correct at the 2^32 wrap because everything held lies within one window of RCV.NXT.
"""

from tunrelay.stack.tcp.constants import MAX_OUT_OF_ORDER_RANGES
from tunrelay.stack.tcp.seq import seq_add, seq_diff, seq_sub

__all__ = ["ReassemblyQueue"]


class ReassemblyQueue:
    def __init__(self, max_ranges=MAX_OUT_OF_ORDER_RANGES):
        self.max_ranges = max_ranges
        self._ranges = []   # [(seq, bytes)] sorted and disjoint relative to the base

    def __len__(self):
        return len(self._ranges)

    @property
    def byte_count(self):
        return sum(len(data) for _, data in self._ranges)

    def insert(self, base, seq, data):
        """Add ``data`` at ``seq`` (at or beyond ``base``); False if the range limit hit."""
        start = seq_sub(seq, base)
        end = start + len(data)
        pieces = []
        cursor = start
        for held_seq, held in self._ranges:
            held_start = seq_sub(held_seq, base)
            held_end = held_start + len(held)
            if held_end <= cursor:
                continue
            if held_start >= end:
                break
            if held_start > cursor:
                pieces.append((cursor, held_start))
            cursor = max(cursor, held_end)
            if cursor >= end:
                break
        if cursor < end:
            pieces.append((cursor, end))
        if not pieces:
            return True
        if len(self._ranges) + len(pieces) > self.max_ranges:
            return False
        for piece_start, piece_end in pieces:
            self._ranges.append(
                (seq_add(base, piece_start), data[piece_start - start:piece_end - start]))
        self._ranges.sort(key=lambda item: seq_sub(item[0], base))
        return True

    def ranges(self):
        """The held bytes as maximal ``(start, end)`` sequence ranges, in order."""
        merged = []
        for held_seq, held in self._ranges:
            end = seq_add(held_seq, len(held))
            if merged and merged[-1][1] == held_seq:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((held_seq, end))
        return merged

    def pop_contiguous(self, base):
        """Remove and return the bytes that now continue the stream at ``base``."""
        out = bytearray()
        while self._ranges:
            held_seq, held = self._ranges[0]
            offset = seq_diff(seq_add(base, len(out)), held_seq)
            if offset < 0:
                break
            del self._ranges[0]
            if offset < len(held):
                out += held[offset:]
        return bytes(out)

    def clear(self):
        self._ranges.clear()
