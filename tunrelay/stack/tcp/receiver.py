"""The receiving half of a connection: RCV.NXT, the receive window, reassembly, ACK timing.

Acceptability (RFC 9293 §3.10.7.4, the four-case table) is judged against the right edge
we last advertised (RCV.NXT + RCV.WND), not against current buffer space, so a window we
offered is honoured even after the owner pauses reading.

Receive window (RFC 9293 §3.8.6.2.2, RFC 7323 §2.3). The buffer is RECEIVE_BUFFER_SIZE
bytes; in-order bytes go straight to the owner unless reading is paused, in which case
they are held here and count against the buffer. The advertised right edge never moves
left (RFC 9293 §3.8.6.2.2 "shrinking the window" is strongly discouraged) and moves
right only when it can move by at least min(buffer/2, MSS) (receiver-side silly window
syndrome avoidance). Pausing is therefore implemented by not moving the edge: the
window the peer sees drains to zero as it sends, and resuming re-opens it with an
immediate window update. The field is scaled by our RFC 7323 shift except on a SYN.

ACK timing (RFC 9293 §3.8.6.3, RFC 5681 §4.2): an ACK is sent at once for out-of-order
data (the duplicate ACK fast retransmit depends on), for data that fills a hole, for a
FIN, for a window re-opening, and when two full-sized segments are unacknowledged;
otherwise it is delayed by at most DELAYED_ACK_TIMEOUT. Any segment we send carries the
ACK, which is when ``ack_sent`` clears all of this.

SACK (RFC 2018), receiver side only: when the peer offered it, our ACKs carry the held
out-of-order ranges, the one holding the most recently received segment first (§4) and
the rest from the highest down. This is what lets a Linux sender repair several losses
per window (and use RACK-TLP) instead of waiting for its retransmission timer.
"""

from tunrelay.stack.tcp.constants import (
    ACK_EVERY_FULL_SEGMENTS, DEFAULT_SEND_MSS, DELAYED_ACK_TIMEOUT, MAX_WINDOW_FIELD,
    RECEIVE_BUFFER_SIZE, SWS_DIVISOR)
from tunrelay.stack.tcp.reassembly import ReassemblyQueue
from tunrelay.stack.tcp.seq import (
    seq_add, seq_diff, seq_ge, seq_gt, seq_in_window, seq_lt, seq_sub)

__all__ = ["Receiver"]


class Receiver:
    def __init__(self, irs, local_mss, window_shift, buffer_size=RECEIVE_BUFFER_SIZE):
        self.irs = irs
        self.nxt = seq_add(irs, 1)
        self.shift = window_shift
        self.local_mss = local_mss
        self.buffer_size = buffer_size
        self.held = bytearray()
        self.paused = False
        self.ooo = ReassemblyQueue()
        self.fin_seq = None
        self.fin_received = False
        self.right_edge = self.nxt
        # Largest payload seen, as the "full-sized segment" of RFC 5681 §4.2.
        self.segment_size = min(DEFAULT_SEND_MSS, local_mss)
        self.unacked_bytes = 0
        self.ack_now = False
        self.ack_deadline = None
        self.last_ack_sent = self.nxt    # Last.ACK.sent of RFC 7323 §4.3
        self.last_out_of_order = None
        self.dropped_out_of_order = 0

    # -- window ---------------------------------------------------------------------
    def window(self):
        """RCV.WND: what is left of the window we advertised."""
        return seq_sub(self.right_edge, self.nxt) if seq_ge(self.right_edge, self.nxt) else 0

    def _free(self):
        return self.buffer_size - len(self.held)

    def _edge_may_move(self):
        gain = self._free() - self.window()
        return gain > 0 and gain >= min(self.buffer_size // SWS_DIVISOR, self.local_mss)

    def window_field(self, syn=False):
        """The value for an outgoing header's window field; records what was advertised."""
        if syn:
            field = min(self._free(), MAX_WINDOW_FIELD)
            self.right_edge = seq_add(self.nxt, field)
            return field
        if self._edge_may_move():
            field = min(self._free() >> self.shift, MAX_WINDOW_FIELD)
            candidate = seq_add(self.nxt, field << self.shift)
            if seq_gt(candidate, self.right_edge):
                self.right_edge = candidate
        return min(self.window() >> self.shift, MAX_WINDOW_FIELD)

    # -- acceptability -----------------------------------------------------------------
    def acceptable(self, seq, seg_len):
        """The RFC 9293 §3.10.7.4 test: does any part of the segment fall in the window?"""
        wnd = self.window()
        if seg_len == 0:
            return seq == self.nxt if wnd == 0 else seq_in_window(seq, self.nxt, wnd)
        if wnd == 0:
            return False
        last = seq_add(seq, seg_len - 1)
        return seq_in_window(seq, self.nxt, wnd) or seq_in_window(last, self.nxt, wnd)

    # -- segment text and FIN ----------------------------------------------------------------
    def process(self, seq, payload, fin, now):
        """Take an acceptable segment's text; return ``(bytes for the owner, fin_now)``."""
        end = seq_add(seq, len(payload))
        if fin and seq_lt(end, self.nxt):
            fin = False
        if seq_lt(seq, self.nxt):
            payload = payload[seq_sub(self.nxt, seq):]
            seq = self.nxt
        room = seq_sub(self.right_edge, seq) if seq_ge(self.right_edge, seq) else 0
        if len(payload) > room:
            payload = payload[:room]
            fin = False
        if self.fin_seq is not None:
            # A peer cannot send past its own FIN; keep the first one we saw.
            limit = seq_diff(self.fin_seq, seq)
            if len(payload) > limit:
                payload = payload[:max(limit, 0)]
            fin = fin and seq_add(seq, len(payload)) == self.fin_seq
        if fin:
            self.fin_seq = seq_add(seq, len(payload))
        if payload:
            self.segment_size = max(self.segment_size, min(len(payload), self.local_mss))
        if seq != self.nxt:
            if payload:
                if self.ooo.insert(self.nxt, seq, payload):
                    self.last_out_of_order = seq
                else:
                    self.dropped_out_of_order += 1
            if payload or fin:
                self.ack_now = True
            return b"", False
        filled_hole = len(self.ooo) > 0
        data = payload + self.ooo.pop_contiguous(seq_add(seq, len(payload)))
        self.nxt = seq_add(self.nxt, len(data))
        fin_now = self.fin_seq is not None and self.nxt == self.fin_seq and not self.fin_received
        if fin_now:
            self.nxt = seq_add(self.nxt, 1)
            self.fin_received = True
            self.ooo.clear()
        if data or fin_now:
            self._schedule_ack(len(data), filled_hole or fin_now, now)
        if self.paused:
            self.held += data
            return b"", fin_now
        return data, fin_now

    def _schedule_ack(self, length, immediately, now):
        self.unacked_bytes += length
        if immediately or self.unacked_bytes >= ACK_EVERY_FULL_SEGMENTS * self.segment_size:
            self.ack_now = True
        elif self.ack_deadline is None:
            self.ack_deadline = now + DELAYED_ACK_TIMEOUT

    def sack_blocks(self, limit):
        ranges = self.ooo.ranges()
        first = [r for r in ranges if self.last_out_of_order is not None
                 and seq_in_window(self.last_out_of_order, r[0], seq_sub(r[1], r[0]))]
        rest = [r for r in reversed(ranges) if r not in first]
        return tuple(first + rest)[:limit]

    def ack_sent(self):
        self.last_ack_sent = self.nxt
        self.unacked_bytes = 0
        self.ack_now = False
        self.ack_deadline = None

    # -- flow control towards the owner ------------------------------------------------------
    def pause(self):
        self.paused = True

    def resume(self):
        """Return the held bytes; ask for a window update if the window can re-open."""
        self.paused = False
        data = bytes(self.held)
        self.held.clear()
        if self._edge_may_move():
            self.ack_now = True
        return data
