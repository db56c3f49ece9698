"""One TCP connection of the responder: the RFC 9293 §3.3.2 state machine, passive side.

A connection is born in SYN-RECEIVED from a listener's SYN and never sees SYN-SENT (the
responder does not open connections). It owns a ``Sender`` and a ``Receiver`` and drives
them through the "segment arrives" procedure of RFC 9293 §3.10.7.4 in its order:

1. sequence number check, with the two RFC 5961 exceptions placed where they bite: an
   out-of-window RST is dropped silently and an out-of-window SYN gets a challenge ACK;
   an otherwise unacceptable segment is answered with an ACK (not for RSTs, never), and
   for pure ACKs that answer is rate limited per connection (Linux's
   tcp_invalid_ratelimit), which is what breaks ACK ping-pong with a confused peer;
   RFC 9293's "special allowance" for a zero receive window processes the ACK field of a
   segment at exactly RCV.NXT even though its text cannot be taken;
2. RST: only an RST with SEQ = RCV.NXT resets the connection; one elsewhere in the window
   gets a challenge ACK (RFC 5961 §3.2). We never answer any RST with an RST, so there
   is no RST-ACK loop to fall into (smoltcp #338, PyTCP #5). RSTs in TIME-WAIT are
   ignored (RFC 1337);
4. SYN in a synchronized state, or a new SYN in SYN-RECEIVED: challenge ACK (RFC 5961
   §4.2); a retransmitted SYN in SYN-RECEIVED gets the SYN-ACK again;
5. ACK: SYN-RECEIVED -> ESTABLISHED when it acknowledges our SYN and the listener's accept
   queue has room (otherwise the segment is dropped and our SYN-ACK retransmission asks
   again, as Linux does); then the Sender; then the closing-state transitions;
7. text and 8. FIN through the Receiver.

The owner's view (the methods below without an underscore) is socket-like: ``send``
queues into the bounded send buffer, ``close`` queues a FIN after the data (RFC 9293
§3.10.4), ``abort`` sends an RST (§3.10.5), ``pause_reading``/``resume_reading`` stop
and restart delivery and with it the receive window.

Options. MSS and window scaling are negotiated from the peer's SYN (RFC 9293 §3.7.1,
RFC 7323 §2). Timestamps (RFC 7323) and SACK-permitted (RFC 2018) are echoed when the
SYN offers them: timestamps give an RTT sample on every ACK, which keeps both ends' RTOs
from staying backed off after retransmissions. SACK works both ways: our ACKs carry
blocks, so a Linux sender recovers several losses per window, and the peer's blocks drive
our own recovery (RFC 6675 with RACK-TLP, see sender.py). Every segment but an RST then carries TSval (a 1 ms clock with a
per-connection offset, §5.4) and TS.Recent. PAWS (§5.3 R1) rejects a non-RST segment
whose TSval is older than TS.Recent; TS.Recent is only taken from segments at or before
Last.ACK.sent (§4.3). A segment without a timestamp after negotiation is processed like
any other (RFC 7323 §3.2 only says MAY drop; gVisor #11536 shows what dropping costs).
"""

import socket

from tunrelay.stack.tcp import events
from tunrelay.stack.tcp.constants import (
    FIN_WAIT_2_TIMEOUT, LOCAL_WINDOW_SHIFT, MAX_SACK_BLOCKS, MAX_SACK_BLOCKS_WITH_TIMESTAMPS,
    MAX_TIMESTAMP_RTT, MIN_SEND_MSS, OUT_OF_WINDOW_ACK_INTERVAL, SEQ_MASK, TIME_WAIT_DURATION,
    TIMESTAMP_HZ, TIMESTAMP_OPTION_LENGTH)
from tunrelay.stack.tcp.receiver import Receiver
from tunrelay.stack.tcp.sender import (
    ACK_OK, TIMER_GIVE_UP, TIMER_PROBE, TIMER_RETRANSMIT, Sender)
from tunrelay.stack.tcp.seq import seq_add, seq_le, seq_lt, seq_sub
from tunrelay.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpSegment

__all__ = ["TcpConnection", "TcpStateError", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1",
           "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT", "CLOSED"]

SYN_RECEIVED = "SYN-RECEIVED"
ESTABLISHED = "ESTABLISHED"
FIN_WAIT_1 = "FIN-WAIT-1"
FIN_WAIT_2 = "FIN-WAIT-2"
CLOSE_WAIT = "CLOSE-WAIT"
CLOSING = "CLOSING"
LAST_ACK = "LAST-ACK"
TIME_WAIT = "TIME-WAIT"
CLOSED = "CLOSED"

_SENDING_STATES = (ESTABLISHED, CLOSE_WAIT)
_RECEIVING_STATES = (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2)
_OUTPUT_STATES = (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK)
# The state the peer's FIN leads to; FIN-WAIT-1 (simultaneous close) is handled apart.
_ON_PEER_FIN = {ESTABLISHED: CLOSE_WAIT, FIN_WAIT_2: TIME_WAIT}


def timestamp_value(now, offset):
    """Our TSval at ``now``: a 1 ms clock plus a per-connection offset (RFC 7323 §5.4)."""
    return (int(now * TIMESTAMP_HZ) + offset) & SEQ_MASK


class TcpStateError(RuntimeError):
    """``send`` after ``close``/``abort`` or after the connection was lost."""


class TcpConnection:
    def __init__(self, stack, listener, local_address, remote_address, syn, iss, local_mss, now):
        self._stack = stack
        self.listener = listener
        self.local_address = bytes(local_address)
        self.local_port = syn.destination_port
        self.remote_address = bytes(remote_address)
        self.remote_port = syn.source_port
        self.key = (self.remote_address, self.remote_port, self.local_port)
        self.state = SYN_RECEIVED
        self.created = now
        scaling = syn.window_scale is not None
        peer_mss = syn.mss if syn.mss is not None else stack.default_send_mss(local_address)
        self.send_mss = max(min(peer_mss, local_mss), MIN_SEND_MSS)
        self.local_mss = local_mss
        self.timestamps = syn.timestamp is not None
        self.ts_recent = syn.timestamp[0] if self.timestamps else 0
        # RFC 7323 §5.4: a per-connection offset; ISS is a keyed hash, so TSval - ISS does
        # not reveal our clock either.
        self._ts_offset = iss
        self.sack = syn.sack_permitted
        self._max_sack_blocks = (MAX_SACK_BLOCKS_WITH_TIMESTAMPS if self.timestamps
                                 else MAX_SACK_BLOCKS)
        payload_mss = self.send_mss - (TIMESTAMP_OPTION_LENGTH if self.timestamps else 0)
        self.receiver = Receiver(syn.seq, local_mss, LOCAL_WINDOW_SHIFT if scaling else 0)
        self.sender = Sender(iss, payload_mss, stack.stats, sack=self.sack)
        # RFC 7323 §2.2: the window in a SYN is never scaled; the peer's shift applies after.
        self.sender.set_window(syn.window, syn.seq, iss)
        self.sender.shift = syn.window_scale if scaling else 0
        self._offer_window_scale = scaling
        self.accepted = False       # ConnectionAccepted has been queued for the owner
        self.lost = False           # ConnectionLost has been queued (or never will be)
        self._close_requested = False
        self._half_close = False
        self.fin_wait_2_deadline = None
        self._peer_closed_pending = False
        self.time_wait_deadline = None
        self._last_out_of_window_ack = None
        self.timer_entry = None     # the stack's live heap entry for deadline() (stack.py)
        self.creation_order = 0     # set by the stack; poll() order among due connections

    # -- addresses, for getHost()/getPeer() -----------------------------------------------
    @property
    def family(self):
        return socket.AF_INET6 if len(self.local_address) == 16 else socket.AF_INET

    @property
    def host(self):
        return socket.inet_ntop(self.family, self.local_address), self.local_port

    @property
    def peer(self):
        return socket.inet_ntop(self.family, self.remote_address), self.remote_port

    def __repr__(self):
        return "<TcpConnection %s:%d <- %s:%d %s>" % (self.host + self.peer + (self.state,))

    # -- owner API ---------------------------------------------------------------------
    def send(self, data, now):
        """Queue ``data``; return how many bytes fit (the rest: wait for WritableAgain)."""
        if self.state not in _SENDING_STATES or self._close_requested:
            raise TcpStateError("connection is %s, cannot send" % self.state)
        accepted = self.sender.queue(bytes(data))
        self._output(now)
        self._stack._reschedule(self)
        return accepted

    def send_buffer_free(self):
        return self.sender.free() if self.state in _SENDING_STATES else 0

    def close(self, now, half_close=False):
        """Send a FIN after everything queued (RFC 9293 §3.10.4).

        Data from the peer is still delivered until its FIN. With ``half_close`` false
        (Twisted's loseConnection) FIN-WAIT-2 lasts at most FIN_WAIT_2_TIMEOUT; with it
        true (loseWriteConnection) the peer may keep sending for as long as it likes.
        """
        if self._close_requested or self.state not in _SENDING_STATES:
            return
        self._close_requested = True
        self._half_close = half_close
        self.sender.queue_fin()
        self.state = FIN_WAIT_1 if self.state == ESTABLISHED else LAST_ACK
        self._output(now)
        self._stack._reschedule(self)

    def abort(self, now):
        """Reset the connection (RFC 9293 §3.10.5) and report it lost."""
        if self.state in (CLOSED, TIME_WAIT):
            return
        if self.state != SYN_RECEIVED:
            self._emit(self.sender.max, ACK | RST, now)
        self._lose(events.LOST_ABORTED)
        self._stack._reschedule(self)

    def pause_reading(self):
        self.receiver.pause()
        self._stack._reschedule(self)

    def resume_reading(self, now):
        self._deliver_held()
        self._output(now)
        self._stack._reschedule(self)

    @property
    def reading_paused(self):
        return self.receiver.paused

    # -- timers ----------------------------------------------------------------------
    def deadline(self):
        candidates = [t for t in (self.sender.timer, self.sender.loss_deadline,
                                  self.receiver.ack_deadline, self.time_wait_deadline,
                                  self.fin_wait_2_deadline)
                      if t is not None]
        return min(candidates) if candidates else None

    def poll(self, now):
        if self.time_wait_deadline is not None:
            if now >= self.time_wait_deadline:
                self._stack._remove(self)
            return
        if self.fin_wait_2_deadline is not None and now >= self.fin_wait_2_deadline:
            self._stack.stats["fin_wait_2_timeouts"] += 1
            self._lose(events.LOST_TIMED_OUT)
            return
        if self.receiver.ack_deadline is not None and now >= self.receiver.ack_deadline:
            self._send_ack(now)
        if self.sender.loss_deadline is not None and now >= self.sender.loss_deadline:
            # Before the RTO: a loss probe due at the same time replaces it.
            for transmission in self.sender.on_loss_timer(now):
                self._send_transmission(transmission, now)
            self._output(now)
        if self.sender.timer is not None and now >= self.sender.timer:
            self._timer_fired(now)

    def _timer_fired(self, now):
        outcome = self.sender.on_timer(now)
        if outcome == TIMER_GIVE_UP:
            self._stack.stats["gave_up"] += 1
            if self.state == SYN_RECEIVED:
                self._stack.stats["synack_timeouts"] += 1
                self._stack._remove(self)
            else:
                self._lose(events.LOST_TIMED_OUT)
        elif outcome == TIMER_PROBE:
            self._stack.stats["window_probes"] += 1
            segment = self.sender.probe()
            self._emit(segment.seq, ACK, now)
        elif outcome == TIMER_RETRANSMIT:
            self._stack.stats["timeouts"] += 1
            if self.state == SYN_RECEIVED:
                self._send_syn_ack(self.sender.syn_ack(now), now)
            else:
                self._output(now)

    # -- segment output -----------------------------------------------------------------
    def _emit(self, seq, flags, now, payload=b"", syn_options=False):
        receiver = self.receiver
        if syn_options:
            window = receiver.window_field(syn=True)
        else:
            window = receiver.window_field()
        timestamp = None
        if self.timestamps and not flags & RST:
            timestamp = (self._ts_value(now), self.ts_recent)
        sack_blocks = ()
        if self.sack and flags == ACK and not payload and len(receiver.ooo):
            sack_blocks = receiver.sack_blocks(self._max_sack_blocks)
        segment = TcpSegment(
            self.local_port, self.remote_port, seq, receiver.nxt if flags & ACK else 0,
            flags, window, payload=payload,
            mss=self.local_mss if syn_options else None,
            window_scale=LOCAL_WINDOW_SHIFT if syn_options and self._offer_window_scale
            else None,
            sack_permitted=syn_options and self.sack,
            timestamp=timestamp, sack_blocks=sack_blocks)
        if flags & ACK:
            receiver.ack_sent()
        self._stack._transmit(self.local_address, self.remote_address, segment)

    def _ts_value(self, now):
        return timestamp_value(now, self._ts_offset)

    def _echo_rtt(self, seg, now):
        """The RTT an echoed timestamp measures (RFC 7323 §4.1), or None."""
        if not self.timestamps or seg.timestamp is None:
            return None
        elapsed = seq_sub(self._ts_value(now), seg.timestamp[1]) / TIMESTAMP_HZ
        return elapsed if elapsed <= MAX_TIMESTAMP_RTT else None

    def _syn_ack_sent_as_cookie(self):
        """Our SYN-ACK went out as a SYN cookie (stack.py): count it as sent, untimed, and
        the window it advertised as offered."""
        self.receiver.window_field(syn=True)
        self.sender.syn_ack_sent_statelessly()

    def _send_syn_ack(self, transmission, now):
        self._emit(transmission.seq, SYN | ACK, now, syn_options=True)

    def _send_transmission(self, transmission, now):
        if transmission.syn:
            self._send_syn_ack(transmission, now)
            return
        flags = ACK | (FIN if transmission.fin else 0)
        if transmission.payload and self.sender.ends_buffer(transmission):
            # PSH marks the end of what the owner gave us, as BSD and Linux do.
            flags |= PSH
        self._emit(transmission.seq, flags, now, transmission.payload)

    def _send_ack(self, now):
        # SND.MAX, not SND.NXT: after an RTO rewound SND.NXT, an ACK carrying the old
        # number would fall below the peer's window (Linux checks it against rcv_wup) and
        # be discarded. BSD does the same.
        self._emit(self.sender.max, ACK, now)

    def _challenge_ack(self, now):
        if self._stack._challenge_ack_allowed(now):
            self._stack.stats["challenge_acks"] += 1
            self._send_ack(now)

    def _output(self, now):
        if self.state in _OUTPUT_STATES:
            for transmission in self.sender.next_segments(now):
                self._send_transmission(transmission, now)
            self.sender.arm_timer(now)
        if self.receiver.ack_now:
            self._send_ack(now)
        if self.state in _SENDING_STATES and self.sender.writable_again():
            self._stack._event(events.WritableAgain(self))

    # -- segment arrival (RFC 9293 §3.10.7.4) -------------------------------------------
    def segment_arrived(self, seg, now):
        receiver = self.receiver
        if (self.state == SYN_RECEIVED and seg.syn and not seg.has_ack
                and seg.seq == receiver.irs):
            self._stack.stats["duplicate_syns"] += 1
            self._send_syn_ack(self.sender.retransmit_first(now), now)
            return
        if (self.timestamps and seg.timestamp is not None and not seg.rst
                and seq_lt(seg.timestamp[0], self.ts_recent)):
            self._reject(seg, now, "paws")          # RFC 7323 §5.3 R1
            return
        if not receiver.acceptable(seg.seq, seg.seg_len):
            self._unacceptable(seg, now)
            return
        if (self.timestamps and seg.timestamp is not None
                and seq_le(seg.seq, receiver.last_ack_sent)):
            self.ts_recent = seg.timestamp[0]       # RFC 7323 §4.3 / §5.3 R3
        if seg.rst:
            self._rst_arrived(seg, now)
            return
        if seg.syn:
            self._stack._drop("syn_in_window")
            self._challenge_ack(now)
            return
        if not seg.has_ack:
            self._stack._drop("no_ack")
            return
        if self.state == SYN_RECEIVED and not self._complete_handshake(seg, now):
            return
        if not self._ack_arrived(seg, now):
            return
        if self.state in _RECEIVING_STATES:
            data, fin = receiver.process(seg.seq, seg.payload, seg.fin, now)
            if data:
                self._stack._event(events.DataReceived(self, data))
            if fin:
                self._peer_fin(now)
        elif seg.payload or seg.fin:
            # Text after the peer's FIN: the peer is stale or confused; tell it where we are.
            receiver.ack_now = True
        if self.state == TIME_WAIT:
            if receiver.ack_now:
                self._send_ack(now)
            return
        self._output(now)

    def _unacceptable(self, seg, now):
        if seg.rst:
            self._stack._drop("out_of_window")
            return
        if seg.syn:
            self._stack._drop("syn_out_of_window")
            self._challenge_ack(now)
            return
        receiver = self.receiver
        if seg.has_ack and receiver.window() == 0 and seg.seq == receiver.nxt:
            # RFC 9293 §3.10.7.4: with RCV.WND zero, still take ACKs (and answer at once,
            # since the peer is probing our closed window).
            if self._ack_arrived(seg, now) and self.state != TIME_WAIT:
                receiver.ack_now = True
                self._output(now)
            return
        self._reject(seg, now, "out_of_window")

    def _reject(self, seg, now, reason):
        """Drop a segment we may not take, telling the peer where we are (never an RST)."""
        self._stack._drop(reason)
        if seg.rst:
            return
        if self.state == TIME_WAIT and seg.fin:
            # A retransmitted FIN: our last ACK was lost. RFC 9293: restart the 2 MSL wait.
            self.time_wait_deadline = now + TIME_WAIT_DURATION
        if not (seg.payload or seg.fin):
            last = self._last_out_of_window_ack
            if last is not None and now - last < OUT_OF_WINDOW_ACK_INTERVAL:
                self._stack.stats["out_of_window_acks_suppressed"] += 1
                return
            self._last_out_of_window_ack = now
        self._send_ack(now)

    def _rst_arrived(self, seg, now):
        if seg.seq != self.receiver.nxt:
            self._stack._drop("rst_not_exact")
            self._challenge_ack(now)
            return
        if self.state == TIME_WAIT:
            self._stack._drop("rst_in_time_wait")
            return
        self._stack.stats["resets_received"] += 1
        if self.state == SYN_RECEIVED:
            self._stack._remove(self)
        else:
            self._lose(events.LOST_RESET)

    def _complete_handshake(self, seg, now):
        if seg.ack != seq_add(self.sender.iss, 1):
            # RFC 9293 §3.10.7.4 SYN-RECEIVED: an unacceptable ACK gets <SEQ=SEG.ACK><RST>.
            self._stack._drop("bad_handshake_ack")
            self._stack._reset_reply(self.local_address, self.remote_address, seg, now)
            return False
        if not self.listener.admit(self):
            self._stack._drop("accept_queue_full")
            return False
        self.state = ESTABLISHED
        self.accepted = True
        self._stack._event(events.ConnectionAccepted(self))
        return True

    def _ack_arrived(self, seg, now):
        """Step five; False when the segment must not be processed further."""
        pure = not (seg.payload or seg.syn or seg.fin)
        status, retransmit = self.sender.on_ack(seg.ack, seg.seq, seg.window, pure, now,
                                                self._echo_rtt(seg, now), seg.sack_blocks)
        if status != ACK_OK:
            self._stack._drop("ack_" + status)
            self._challenge_ack(now)
            return False
        for transmission in retransmit:
            self._send_transmission(transmission, now)
        if self.sender.fin_acked:
            if self.state == FIN_WAIT_1:
                self.state = FIN_WAIT_2
                if not self._half_close:
                    self.fin_wait_2_deadline = now + FIN_WAIT_2_TIMEOUT
            elif self.state == CLOSING:
                self._enter_time_wait(now)
            elif self.state == LAST_ACK:
                self._lose(events.LOST_DONE)
                return False
        return True

    def _peer_fin(self, now):
        if self.receiver.paused:
            self._peer_closed_pending = True
        else:
            self._stack._event(events.PeerClosed(self))
        if self.state == FIN_WAIT_1:
            # Simultaneous close (RFC 9293 Figure 13) unless the same segment acked our FIN.
            self.state = CLOSING
        else:
            self.state = _ON_PEER_FIN[self.state]
        if self.state == TIME_WAIT:
            self._send_ack(now)
            self._enter_time_wait(now)

    # -- endings -------------------------------------------------------------------------
    def _enter_time_wait(self, now):
        self.state = TIME_WAIT
        self.fin_wait_2_deadline = None
        self.sender.cancel_timers()
        self.receiver.ack_deadline = None
        self.time_wait_deadline = now + TIME_WAIT_DURATION
        self._report_lost(events.LOST_DONE)
        self._stack._entered_time_wait(self)

    def _lose(self, reason):
        self._report_lost(reason)
        self._stack._remove(self)

    def _report_lost(self, reason):
        if self.lost:
            return
        self.lost = True
        if not self.accepted:
            return
        if reason == events.LOST_DONE:
            # A clean close still owes the owner what it held while reading was paused.
            self._deliver_held()
        self._stack._event(events.ConnectionLost(self, reason))

    def _deliver_held(self):
        data = self.receiver.resume()
        if data:
            self._stack._event(events.DataReceived(self, data))
        if self._peer_closed_pending:
            self._peer_closed_pending = False
            self._stack._event(events.PeerClosed(self))

    def _terminate(self):
        """Forget everything; used by the stack when it removes the connection."""
        self.state = CLOSED
        self.sender.cancel_timers()
        self.receiver.ack_deadline = None
        self.time_wait_deadline = None
        self.fin_wait_2_deadline = None
