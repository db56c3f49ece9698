"""The sending half of a connection: SND.* variables, the send buffer, RTO, persist, recovery.

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

Loss recovery has two forms, chosen by whether the peer's SYN offered SACK:

* without SACK, NewReno (RFC 5681 fast retransmit, RFC 6582 partial ACKs, RFC 3042, RFC
  5827), and an RTO goes back N as above;
* with SACK, RFC 6675 over a ``Scoreboard`` of the segments in flight, with RACK (RFC 8985
  §6) as a second loss detector. What either marks lost is sent again first, and
  everything, retransmissions and new data alike, goes out while cwnd - pipe leaves room
  for it (RFC 6675 §5 step 4: the first retransmission of an episode goes regardless).
  Entering recovery sets cwnd = ssthresh = FlightSize / 2 once per window. An RTO marks
  everything not SACKed lost instead of rewinding SND.NXT, so SACKed data is not sent
  twice. Tail losses, where no later segment is left to be SACKed, get a Tail Loss Probe
  (RFC 8985 §7): PTO = 2 * SRTT (see constants.py) after new data or an advancing ACK,
  outside recovery and with nothing SACKed; it sends one new segment if the window allows,
  else the last one again, restarts the RTO, and makes the peer's answer show RACK what is
  missing. A probe that repaired a loss (its ACK came without a D-SACK) halves cwnd.
"""

from collections import namedtuple

from tunrelay.stack.tcp.congestion import FULL_ACK, PARTIAL_ACK, NewReno, SackCongestion
from tunrelay.stack.tcp.constants import (
    DUPACK_THRESHOLD, EARLY_RETRANSMIT_SEGMENTS, MAX_PROBE_BACKOFF_EXPONENT,
    MAX_RETRANSMISSIONS, MAX_RTO, MAX_SYNACK_RETRANSMISSIONS,
    MAX_UNANSWERED_PROBES, RTO_AFTER_SYN_RETRANSMISSION, SEND_BUFFER_LOW_WATER,
    SEND_BUFFER_SIZE, SWS_DIVISOR, TLP_DELAYED_ACK_ALLOWANCE, TLP_INITIAL_PTO, TLP_MIN_PTO)
from tunrelay.stack.tcp.rtt import RttEstimator
from tunrelay.stack.tcp.scoreboard import Scoreboard
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
    def __init__(self, iss, mss, stats, buffer_size=SEND_BUFFER_SIZE, sack=False):
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
        self.scoreboard = Scoreboard(mss) if sack else None
        self.cc = SackCongestion(mss, iss) if sack else NewReno(mss, iss)
        self.timer = None
        self.loss_probe_deadline = None     # the TLP's PTO (RFC 8985 §7.2)
        self.tlp_end = None                 # TLP.end_seq while a probe is unanswered
        self.tlp_retransmission = False
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

    @property
    def loss_deadline(self):
        """When the RACK reorder timer or the loss probe is due, or None."""
        board = self.scoreboard
        if board is None:
            return None
        deadlines = [d for d in (board.reorder_deadline, self.loss_probe_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def cancel_timers(self):
        self.timer = None
        self.loss_probe_deadline = None
        if self.scoreboard is not None:
            self.scoreboard.reorder_deadline = None

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

    def syn_ack_sent_statelessly(self):
        """Our SYN-ACK was a SYN cookie: it is in flight, but was never timed nor armed a
        retransmission, since nothing was kept when it was sent (Karn: no RTT sample)."""
        self.nxt = self.max = seq_add(self.iss, 1)

    def _segment_at(self, seq, limit):
        offset = seq_sub(seq, self.buffer_seq)
        payload = bytes(self.buffer[offset:offset + limit])
        fin = self.fin_queued and offset + len(payload) == len(self.buffer)
        return Transmission(seq, payload, False, fin)

    def next_segments(self, now):
        """Segments that window, cwnd and SWS avoidance allow now: with SACK, what was lost
        first; then new data (or, after an RTO without SACK, go-back-N)."""
        out = []
        if not self.syn_acked:
            return out
        board = self.scoreboard
        new_data = False
        while True:
            if board is not None and board.lost_pending:
                segment = self._retransmission(now)
                if segment is None:
                    break
                out.append(segment)
                continue
            outstanding = seq_sub(self.nxt, self.una)
            in_flight = outstanding if board is None else board.pipe
            pending = self.unsent()
            if pending > 0:
                room = min(self.wnd - outstanding, self.cc.send_allowance() - in_flight)
                size = min(self.mss, pending)
                if room < size:
                    if room <= 0 or (outstanding > 0 and room < self.max_wnd // SWS_DIVISOR):
                        break
                    size = room
                segment = self._segment_at(self.nxt, size)
            elif self.fin_queued and self.nxt == self.fin_seq:
                segment = Transmission(self.nxt, b"", False, True)
            else:
                break
            out.append(segment)
            self._sent(segment.seq, len(segment.payload) + segment.fin, now)
            new_data = True
        if new_data:
            self._schedule_loss_probe(now)
        return out

    def _transmission_of(self, segment):
        """A scoreboard segment's bytes again; FIN only if the segment held it."""
        transmission = self._segment_at(segment.seq, segment.length)
        if transmission.fin and not seq_gt(segment.end, self.fin_seq):
            transmission = transmission._replace(fin=False)
        return transmission

    def _retransmission(self, now, force=False):
        """The first lost segment, if the window and (unless ``force``) cwnd - pipe allow."""
        board = self.scoreboard
        segment = board.first_lost()
        within_window = (seq_sub(segment.end, self.una) <= self.wnd
                         or (segment.seq == self.una and self.wnd > 0))
        if not force and (not within_window or
                          self.cc.send_allowance() - board.pipe < min(segment.length, self.mss)):
            return None
        transmission = self._transmission_of(segment)
        board.resent(segment, now)
        self._sent(segment.seq, segment.length, now)
        return transmission

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
        else:
            if self.timed is None:
                self.timed = (end, now)
            if self.scoreboard is not None and self.syn_acked:
                self.scoreboard.sent(seq, end, now)
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
            self._rewind()
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
        self._rewind()
        if not self.syn_acked:
            self.syn_retransmitted = True
        self.timer = now + self.rtt.rto
        return TIMER_RETRANSMIT

    def _rewind(self):
        """Everything in flight must be sent again: go back N, or with SACK mark it lost."""
        if self.scoreboard is None:
            self.nxt = self.una
        else:
            self.scoreboard.mark_all_lost()
        self.loss_probe_deadline = None
        self.tlp_end = None

    def probe(self):
        return Transmission(seq_sub(self.una, 1), b"", False, False)

    # -- acknowledgements ------------------------------------------------------------------
    def on_ack(self, ack, seq, window, pure, now, echo_rtt=None, sack_blocks=()):
        """Process SEG.ACK and the window; return (ACK_*, [segments to retransmit now]).

        ``echo_rtt`` is the RTT measured from an echoed timestamp (RFC 7323 §4), which is
        valid even for retransmitted data; without it, Karn's rule applies. ``sack_blocks``
        are the peer's, used when SACK was negotiated.
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
        if self.scoreboard is not None:
            return ACK_OK, self._sack_ack(ack, sack_blocks, now, echo_rtt)
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
        outcome = self.cc.on_new_ack(ack, acked, self.outstanding)
        if self.scoreboard is not None:
            if outcome == FULL_ACK:
                self.scoreboard.recovery_ended()
        elif outcome == PARTIAL_ACK:
            return [self.retransmit_first(now)]
        return []

    # -- SACK-based recovery (RFC 6675) and RACK-TLP (RFC 8985) ---------------------------

    def _sack_ack(self, ack, blocks, now, echo_rtt):
        board = self.scoreboard
        flight_size = self.outstanding
        una = self.una
        advanced = seq_gt(ack, una)
        if advanced:
            self._new_ack(ack, now, echo_rtt)
        echoed_at = now - echo_rtt if echo_rtt is not None else None
        _, dsack = board.acknowledged(una, ack, blocks, now, echoed_at)
        if dsack:
            self.stats["dsacks_received"] += 1
        if self.tlp_end is not None and seq_ge(ack, self.tlp_end):
            if self.tlp_retransmission and not dsack:
                self.stats["loss_probe_repairs"] += 1     # RFC 8985 §7.4.2: a real loss
                self.cc.reduce(flight_size)
            self.tlp_end = None
        out = self._recover_if_lost(now, flight_size)
        if advanced:
            self._schedule_loss_probe(now)
        return out

    def _recover_if_lost(self, now, flight_size):
        """Run loss detection; on a loss outside recovery, enter it and resend at once."""
        board = self.scoreboard
        marked = board.detect_losses(now, self.cc.in_recovery, self.rtt.srtt)
        self.stats["segments_marked_lost"] += marked
        if not board.lost_pending or not self.cc.may_enter_recovery(self.una):
            return []
        self.stats["sack_recoveries"] += 1
        self.cc.enter_recovery(flight_size, self.max)
        # A probe in flight is part of this episode now; recovery makes the one cwnd cut.
        self.loss_probe_deadline = None
        self.tlp_end = None
        return [self._retransmission(now, force=True)]

    def _schedule_loss_probe(self, now):
        """Arm the PTO (RFC 8985 §7.2) when a tail loss would otherwise wait for the RTO."""
        board = self.scoreboard
        if (board is None or not self.outstanding or self.cc.in_recovery
                or not seq_ge(self.una, self.cc.recover) or self.tlp_end is not None
                or board.sacked_count or board.lost_pending or board.reorder_deadline is not None):
            self.loss_probe_deadline = None
            return
        if self.rtt.srtt is None:
            pto = TLP_INITIAL_PTO
        else:
            pto = 2 * self.rtt.srtt
            if self.outstanding <= self.mss:
                pto += TLP_DELAYED_ACK_ALLOWANCE
            pto = max(pto, TLP_MIN_PTO)
        # Never later than the RTO: at that point the probe goes out instead (RFC 8985 §7.2),
        # and the RTO is restarted behind it.
        self.loss_probe_deadline = now + pto if self.timer is None else min(now + pto, self.timer)

    def on_loss_timer(self, now):
        """The reorder timer or the PTO fired; return the segments to send now."""
        board = self.scoreboard
        out = []
        if board.reorder_deadline is not None and now >= board.reorder_deadline:
            board.reorder_deadline = None
            out.extend(self._recover_if_lost(now, self.outstanding))
        if self.loss_probe_deadline is not None and now >= self.loss_probe_deadline:
            self.loss_probe_deadline = None
            probe = self._loss_probe(now)
            if probe is not None:
                out.append(probe)
        return out

    def _loss_probe(self, now):
        """RFC 8985 §7.3: one new segment if the window allows, else the last one again."""
        if self.cc.in_recovery or not self.outstanding:
            return None
        pending = self.unsent()
        if pending and self.wnd - seq_sub(self.nxt, self.una) >= min(self.mss, pending):
            segment = self._segment_at(self.nxt, min(self.mss, pending))
            self._sent(segment.seq, len(segment.payload) + segment.fin, now)
            self.tlp_retransmission = False
        else:
            last = self.scoreboard.last_unsacked()
            if last is None:
                return None
            segment = self._transmission_of(last)
            self.scoreboard.resent(last, now)
            self._sent(last.seq, last.length, now)
            self.tlp_retransmission = True
        self.tlp_end = self.max
        self.timer = now + self.rtt.rto
        self.stats["loss_probes"] += 1
        return segment
