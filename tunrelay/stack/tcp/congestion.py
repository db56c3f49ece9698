"""Congestion control: RFC 5681 slow start / congestion avoidance, with RFC 6582 NewReno
recovery for peers without SACK and RFC 6675 recovery for peers with it.

The controller only does arithmetic on cwnd, ssthresh and ``recover``; the sender asks it
what to do and performs the (re)transmissions itself.

* Initial window: RFC 5681 §3.1, min(4*SMSS, max(2*SMSS, 4380)).
* Slow start grows cwnd by at most one SMSS per ACK (RFC 5681 §3.1 with RFC 3465 L=1),
  which keeps a peer that splits its ACKs ("ACK division") from inflating the window.
* Congestion avoidance adds SMSS*SMSS/cwnd per ACK (RFC 5681 eq. 3).
* The third duplicate ACK starts fast retransmit only if the cumulative ACK covers
  ``recover`` (RFC 6582 §3.2 step 2), which stops a burst of stale duplicates after a
  timeout from halving the window again. ``recover`` is stored as SND.MAX, one past the
  highest byte sent, so "covers more than recover" is ``una >= recover`` and a full
  acknowledgement is ``ack >= recover``.
* Partial ACKs deflate cwnd by the newly acknowledged amount and add back one SMSS if at
  least that much was acknowledged (RFC 6582 §3.2 step 4); the full ACK sets
  cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS) (step 3, option 1).
* An RTO collapses cwnd to the loss window of one SMSS (RFC 5681 §3.1) and records
  ``recover`` (RFC 6582 §4).
* Limited transmit (RFC 3042): the first two duplicate ACKs each allow one new segment
  beyond cwnd without changing cwnd, so that a small window still produces the three
  duplicates fast retransmit needs. The sender may lower the threshold itself for early
  retransmit (RFC 5827). Both matter against a Linux receiver on a tun device, whose
  advertised window often stays at a handful of segments.

``SackCongestion`` is the same growth with RFC 6675 §5's recovery: on entry (the sender's
scoreboard found a loss) ssthresh = cwnd = FlightSize / 2, and cwnd then stays put until
the cumulative ACK covers ``recover`` (RecoveryPoint): no inflation by duplicates and no
deflation by partial ACKs, because the sender paces by its pipe estimate, not by counting
duplicate ACKs. A loss that a tail loss probe repaired (RFC 8985 §7.4.2) halves the
window the same way without entering recovery.
"""

from tunrelay.stack.tcp.constants import (
    DUPACK_THRESHOLD, INITIAL_SSTHRESH, LIMITED_TRANSMIT_SEGMENTS)
from tunrelay.stack.tcp.seq import seq_ge

__all__ = ["NewReno", "SackCongestion", "initial_window", "PARTIAL_ACK", "FULL_ACK"]

PARTIAL_ACK = "partial"
FULL_ACK = "full"


def initial_window(mss):
    return min(4 * mss, max(2 * mss, 4380))


class NewReno:
    def __init__(self, mss, iss):
        self.mss = mss
        self.cwnd = initial_window(mss)
        self.ssthresh = INITIAL_SSTHRESH
        self.dupacks = 0
        self.in_recovery = False
        self.recover = iss

    def send_allowance(self):
        """How much may be in flight: cwnd, plus the RFC 3042 limited-transmit segments."""
        if self.in_recovery or not self.dupacks:
            return self.cwnd
        return self.cwnd + min(self.dupacks, LIMITED_TRANSMIT_SEGMENTS) * self.mss

    def _halve(self, flight_size):
        # RFC 5681 eq. 4
        self.ssthresh = max(flight_size // 2, 2 * self.mss)

    def on_new_ack(self, ack, acked, flight_size_after):
        """New data was acknowledged; return PARTIAL_ACK, FULL_ACK or None."""
        self.dupacks = 0
        if self.in_recovery:
            if seq_ge(ack, self.recover):
                self.cwnd = min(self.ssthresh, max(flight_size_after, self.mss) + self.mss)
                self.in_recovery = False
                return FULL_ACK
            self.cwnd = max(self.cwnd - acked, 0)
            if acked >= self.mss:
                self.cwnd += self.mss
            self.cwnd = max(self.cwnd, self.mss)
            return PARTIAL_ACK
        self._grow(acked)
        return None

    def _grow(self, acked):
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, self.mss)
        else:
            self.cwnd += max(1, self.mss * self.mss // self.cwnd)

    def on_duplicate_ack(self, una, flight_size, snd_max, threshold=DUPACK_THRESHOLD):
        """A duplicate ACK (RFC 5681 §2); return True when fast retransmit should fire."""
        self.dupacks += 1
        if self.in_recovery:
            # RFC 5681 §3.2 step 4: each further duplicate means a segment left the network.
            self.cwnd += self.mss
            return False
        if self.dupacks < threshold or not seq_ge(una, self.recover):
            return False
        self.recover = snd_max
        self._halve(flight_size)
        self.cwnd = self.ssthresh + DUPACK_THRESHOLD * self.mss
        self.in_recovery = True
        return True

    def on_timeout(self, flight_size, snd_max):
        self._halve(flight_size)
        self.cwnd = self.mss
        self.dupacks = 0
        self.in_recovery = False
        self.recover = snd_max


class SackCongestion(NewReno):
    def send_allowance(self):
        return self.cwnd

    def may_enter_recovery(self, una):
        """Not twice for one window, nor for losses from before an RTO (RFC 6675 §5, §5.1)."""
        return not self.in_recovery and seq_ge(una, self.recover)

    def enter_recovery(self, flight_size, snd_max):
        self.recover = snd_max
        self._halve(flight_size)
        self.cwnd = self.ssthresh
        self.in_recovery = True

    def reduce(self, flight_size):
        """A loss repaired outside recovery (a tail loss probe's): halve, as recovery would."""
        self._halve(flight_size)
        self.cwnd = self.ssthresh

    def on_new_ack(self, ack, acked, flight_size_after):
        self.dupacks = 0
        if self.in_recovery:
            if seq_ge(ack, self.recover):
                self.in_recovery = False
                return FULL_ACK
            return PARTIAL_ACK
        self._grow(acked)
        return None
