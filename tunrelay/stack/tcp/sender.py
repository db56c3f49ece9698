"""The sending half of a connection: SND.* variables, the send buffer, RTO, persist, NewReno.

Sequence space. SND.UNA <= SND.NXT <= SND.MAX (RFC 9293 §3.3.1, plus SND.MAX from BSD:
the highest sequence number ever sent). An RTO rewinds SND.NXT to SND.UNA and resends
from there at a one-segment window (RFC 5681 §3.1, go-back-N as BSD and Linux do); an
ACK beyond SND.NXT but within SND.MAX moves SND.NXT forward again. The SYN occupies ISS
and the FIN the sequence number after the last byte; the buffer holds the bytes from
``buffer_seq`` (SND.UNA once the SYN is acknowledged) and is SEND_BUFFER_SIZE bounded.

Transmission (RFC 9293 §3.8.6.2.1, RFC 5681). New data goes out while
SND.NXT - SND.UNA < min(SND.WND, cwnd), cwnd widened by RFC 3042 limited transmit on the
first two duplicate ACKs; early retransmit (RFC 5827) lowers the duplicate threshold when
fewer than four segments are out. Sender-side silly window avoidance: a segment
smaller than both MSS and what is queued is only sent when it is at least half the
largest window the peer ever offered, or when nothing is in flight (otherwise nothing
would ever clock the rest out). Nagle is off, like TCP_NODELAY, because the owner is a
Twisted transport that already coalesces writes. A FIN needs no window.

Timers (RFC 6298 §5). One timer: it is the retransmission timer while anything is
outstanding and the persist timer (RFC 9293 §3.8.6.1) while the peer's window is zero
and data waits. A persist expiry sends a zero-window probe, and so does an RTO that finds
the window closed, since retransmitting into a zero window only gets the data dropped.
The probe is an ACK with SEQ = SND.UNA - 1 and no data, as Linux sends: it is outside
the peer's window, so RFC 9293 §3.10.7.4 obliges the peer to answer with an ACK carrying
its current window, and it never puts a byte beyond the window the peer advertised.
Probes back off exponentially from the RTO until the window opens (as Linux's
icsk_backoff does); any ACK resets the count of unanswered probes, which is what
MAX_UNANSWERED_PROBES bounds.

RTT sampling follows Karn's rule (RFC 6298 §3): one segment at a time is timed, only when
sent for the first time, and the sample is discarded if anything is retransmitted. When
timestamps are in use, the echo in every ACK of new data is a sample instead (RFC 7323
§4.1), which stays valid across retransmissions and so clears a backed-off RTO at once.
Consecutive expiries without progress count towards MAX_RETRANSMISSIONS (or
MAX_SYNACK_RETRANSMISSIONS before the handshake completes); past it the connection gives
up.

ACK processing (RFC 9293 §3.10.7.4 fifth check, RFC 5961 §5.2): an ACK for data never
sent, or one older than SND.UNA - MAX.SND.WND, is refused, and the caller answers it
with a (rate-limited) ACK. The send window is updated only from segments newer than the
last update (SND.WL1/SND.WL2). A duplicate ACK in the RFC 5681 §2 sense (no data, no
SYN/FIN, same window, same ACK, data outstanding) feeds fast retransmit.
"""

from collections import namedtuple

from tunrelay.stack.tcp.congestion import PARTIAL_ACK, NewReno
from tunrelay.stack.tcp.constants import (
    DUPACK_THRESHOLD, EARLY_RETRANSMIT_SEGMENTS, MAX_PROBE_BACKOFF_EXPONENT,
    MAX_RETRANSMISSIONS, MAX_RTO, MAX_SYNACK_RETRANSMISSIONS,
    MAX_UNANSWERED_PROBES, RTO_AFTER_SYN_RETRANSMISSION, SEND_BUFFER_LOW_WATER,
    SEND_BUFFER_SIZE, SWS_DIVISOR)
from tunrelay.stack.tcp.rtt import RttEstimator
from tunrelay.stack.tcp.seq import (
    seq_add, seq_ge, seq_gt, seq_le, seq_lt, seq_max, seq_sub)

__all__ = ["Sender", "Transmission", "ACK_OK", "ACK_UNSENT", "ACK_TOO_OLD",
           "TIMER_RETRANSMIT", "TIMER_PROBE", "TIMER_GIVE_UP"]

# One segment to put on the wire: the connection adds ACK, window and options.
Transmission = namedtuple("Transmission", "seq payload syn fin")

ACK_OK = "ok"
ACK_UNSENT = "unsent"
ACK_TOO_OLD = "too_old"

TIMER_RETRANSMIT = "retransmit"
TIMER_PROBE = "probe"
TIMER_GIVE_UP = "give_up"


class Sender:
    def __init__(self, iss, mss, stats, buffer_size=SEND_BUFFER_SIZE):
        self.iss = iss
        self.una = iss
        self.nxt = iss
        self.max = iss
        self.mss = mss
        self.stats = stats
        self.buffer_size = buffer_size
        self.wnd = 0
        self.max_wnd = 0
        self.wl1 = 0
        self.wl2 = iss
        self.shift = 0
        self.buffer = bytearray()
        self.buffer_seq = seq_add(iss, 1)
        self.fin_queued = False
        self.rtt = RttEstimator()
        self.cc = NewReno(mss, iss)
        self.timer = None
        self.retries = 0
        self.probes = 0             # unanswered zero-window probes in a row
        self.probe_backoff = 0      # probes since the window closed
        self.timed = None           # (sequence number that acknowledges it, time sent)
        self.want_writable = False
        self.syn_retransmitted = False

    # -- state queries ------------------------------------------------------------------
    @property
    def syn_acked(self):
        return seq_gt(self.una, self.iss)

    @property
    def fin_seq(self):
        return seq_add(self.buffer_seq, len(self.buffer)) if self.fin_queued else None

    @property
    def fin_acked(self):
        return self.fin_queued and seq_gt(self.una, self.fin_seq)

    @property
    def outstanding(self):
        """FlightSize of RFC 5681: sent and not yet acknowledged."""
        return seq_sub(self.max, self.una)

    def unsent(self):
        """Queued bytes beyond SND.NXT."""
        if seq_lt(self.nxt, self.buffer_seq):
            return len(self.buffer)
        return max(len(self.buffer) - seq_sub(self.nxt, self.buffer_seq), 0)

    def ends_buffer(self, transmission):
        end = seq_add(transmission.seq, len(transmission.payload))
        return end == seq_add(self.buffer_seq, len(self.buffer))

    def free(self):
        return self.buffer_size - len(self.buffer)

    # -- the owner's data ----------------------------------------------------------------
    def queue(self, data):
        accepted = min(len(data), self.free())
        self.buffer += data[:accepted]
        if accepted < len(data):
            self.want_writable = True
        return accepted

    def queue_fin(self):
        self.fin_queued = True

    def writable_again(self):
        """True once, when a refused writer may resume."""
        if self.want_writable and self.free() >= SEND_BUFFER_LOW_WATER:
            self.want_writable = False
            return True
        return False

    # -- transmission ------------------------------------------------------------------
    def syn_ack(self, now):
        self._sent(self.iss, 1, now)
        return Transmission(self.iss, b"", True, False)

    def _segment_at(self, seq, limit):
        offset = seq_sub(seq, self.buffer_seq)
        payload = bytes(self.buffer[offset:offset + limit])
        fin = self.fin_queued and offset + len(payload) == len(self.buffer)
        return Transmission(seq, payload, False, fin)

    def next_segments(self, now):
        """New (or go-back-N) segments that window, cwnd and SWS avoidance allow now."""
        out = []
        if not self.syn_acked:
            return out
        while True:
            in_flight = seq_sub(self.nxt, self.una)
            pending = self.unsent()
            if pending > 0:
                room = min(self.wnd, self.cc.send_allowance()) - in_flight
                size = min(self.mss, pending)
                if room < size:
                    if room <= 0 or (in_flight > 0 and room < self.max_wnd // SWS_DIVISOR):
                        break
                    size = room
                segment = self._segment_at(self.nxt, size)
            elif self.fin_queued and self.nxt == self.fin_seq:
                segment = Transmission(self.nxt, b"", False, True)
            else:
                break
            out.append(segment)
            self._sent(segment.seq, len(segment.payload) + segment.fin, now)
        return out

    def retransmit_first(self, now):
        """The first unacknowledged segment again (fast retransmit, partial ACK)."""
        if not self.syn_acked:
            return self.syn_ack(now)
        data_outstanding = min(seq_sub(self.max, self.buffer_seq), len(self.buffer))
        segment = self._segment_at(self.una, min(self.mss, data_outstanding))
        if segment.fin and not seq_gt(self.max, self.fin_seq):
            segment = segment._replace(fin=False)
        self._sent(segment.seq, len(segment.payload) + segment.fin, now)
        return segment

    def _sent(self, seq, length, now):
        if length == 0:
            return
        end = seq_add(seq, length)
        if seq_lt(seq, self.max):
            self.stats["retransmitted_segments"] += 1
            # Karn's rule: the one place a retransmission happens is the one place the
            # sample in progress is discarded.
            self.timed = None
        elif self.timed is None:
            self.timed = (end, now)
        if seq_gt(end, self.nxt):
            self.nxt = end
        self.max = seq_max(self.max, end)
        if self.timer is None:
            self.timer = now + self.rtt.rto

    def arm_timer(self, now):
        """Start, keep or stop the one timer after anything changed (RFC 6298 §5.1, §5.2)."""
        if self.outstanding:
            if self.timer is None:
                self.timer = now + self.rtt.rto
        elif self.wnd == 0 and self.unsent() and self.syn_acked:
            if self.timer is None:
                self.timer = now + self._probe_interval()
        else:
            self.timer = None

    def _probe_interval(self):
        exponent = min(self.probe_backoff, MAX_PROBE_BACKOFF_EXPONENT)
        return min(self.rtt.rto * (2 ** exponent), MAX_RTO)

    def on_timer(self, now):
        """The timer fired; return TIMER_RETRANSMIT, TIMER_PROBE or TIMER_GIVE_UP."""
        self.timer = None
        if self.syn_acked and self.wnd == 0 and (self.unsent() or self.outstanding):
            self.probes += 1
            self.probe_backoff += 1
            if self.probes > MAX_UNANSWERED_PROBES:
                return TIMER_GIVE_UP
            # The peer drops whatever lies beyond a zero window; resend it once it opens.
            self.nxt = self.una
            self.timer = now + self._probe_interval()
            return TIMER_PROBE
        if not self.outstanding:
            return None
        self.retries += 1
        limit = MAX_RETRANSMISSIONS if self.syn_acked else MAX_SYNACK_RETRANSMISSIONS
        if self.retries > limit:
            return TIMER_GIVE_UP
        self.cc.on_timeout(self.outstanding, self.max)
        self.rtt.back_off()
        self.nxt = self.una
        if not self.syn_acked:
            self.syn_retransmitted = True
        self.timer = now + self.rtt.rto
        return TIMER_RETRANSMIT

    def probe(self):
        return Transmission(seq_sub(self.una, 1), b"", False, False)

    # -- acknowledgements ------------------------------------------------------------------
    def on_ack(self, ack, seq, window, pure, now, echo_rtt=None):
        """Process SEG.ACK and the window; return (ACK_*, [segments to retransmit now]).

        ``echo_rtt`` is the RTT measured from an echoed timestamp (RFC 7323 §4), which is
        valid even for retransmitted data; without it, Karn's rule applies.
        """
        if seq_gt(ack, self.max):
            return ACK_UNSENT, []
        if seq_lt(ack, seq_sub(self.una, self.max_wnd)):
            return ACK_TOO_OLD, []
        self.probes = 0
        new_window = window << self.shift
        duplicate = (ack == self.una and pure and new_window == self.wnd
                     and self.outstanding > 0)
        if seq_lt(self.wl1, seq) or (self.wl1 == seq and seq_le(self.wl2, ack)):
            self.set_window(new_window, seq, ack)
        retransmit = []
        if seq_gt(ack, self.una):
            retransmit = self._new_ack(ack, now, echo_rtt)
        elif duplicate:
            if self.cc.on_duplicate_ack(self.una, self.outstanding, self.max,
                                        self._dupack_threshold()):
                self.stats["fast_retransmits"] += 1
                retransmit.append(self.retransmit_first(now))
        return ACK_OK, retransmit

    def _dupack_threshold(self):
        """RFC 5827 early retransmit: with few segments out and none new allowed, fewer
        duplicates are all the peer can send, so wait for fewer."""
        segments_out = -(-self.outstanding // self.mss)
        if segments_out >= EARLY_RETRANSMIT_SEGMENTS:
            return DUPACK_THRESHOLD
        pending = self.unsent()
        window_room = self.wnd - seq_sub(self.nxt, self.una)
        if pending and window_room >= min(self.mss, pending):
            return DUPACK_THRESHOLD
        return max(segments_out - 1, 1)

    def set_window(self, window, seq, ack):
        if window:
            self.probe_backoff = 0
        self.wnd = window
        self.wl1 = seq
        self.wl2 = ack
        self.max_wnd = max(self.max_wnd, window)

    def _new_ack(self, ack, now, echo_rtt):
        acked = seq_sub(ack, self.una)
        if not self.syn_acked:
            acked_data = acked - 1
            if self.syn_retransmitted:
                self.rtt.raise_floor(RTO_AFTER_SYN_RETRANSMISSION)
        else:
            acked_data = acked
        drop = min(max(acked_data, 0), len(self.buffer))
        del self.buffer[:drop]
        self.buffer_seq = seq_add(self.buffer_seq, drop)
        self.una = ack
        if seq_lt(self.nxt, ack):
            self.nxt = ack
        if echo_rtt is not None:
            self.rtt.sample(echo_rtt)
            self.timed = None
        elif self.timed is not None and seq_ge(ack, self.timed[0]):
            self.rtt.sample(now - self.timed[1])
            self.timed = None
        self.retries = 0
        self.timer = None if not self.outstanding else now + self.rtt.rto
        if self.cc.on_new_ack(ack, acked, self.outstanding) == PARTIAL_ACK:
            return [self.retransmit_first(now)]
        return []
