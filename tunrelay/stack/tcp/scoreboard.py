"""What is in flight and what the peer holds: the RFC 6675 scoreboard and RACK (RFC 8985).

Used by the sender when the peer offered SACK (RFC 2018); without it the sender falls
back to NewReno (``congestion.py``) and needs none of this.

Segments. Every transmission unit in [SND.UNA, SND.MAX) is a ``Segment`` (its sequence
range, FIN included, and when it was last sent), kept in sequence order. Each transmission
also takes the next number of a counter (``order``): RACK must know which of two segments
left later, and two sent within one clock tick (a retransmission right after a probe) are
told apart by it, where RFC 8985's tie-break by sequence number would guess wrong. A segment is in
exactly one of four conditions: in the network (counted in ``pipe``), SACKed, lost and
waiting to be sent again, or cumulatively acknowledged (gone). A retransmitted segment is
in the network again. ``pipe`` is thus RFC 6675's SetPipe() estimate kept up to date
incrementally (as Linux's packets_in_flight): what is neither SACKed nor lost, plus what
was sent again.

SACK blocks (RFC 2018 §3, RFC 6675 §2) mark the segments they cover whole. A first block
at or below the cumulative ACK, or inside the second block, is a D-SACK (RFC 2883): the
peer got something twice, which RACK takes as evidence of reordering. Blocks reaching
beyond SND.MAX are ignored. If the cumulative ACK stops right at a SACKed segment the peer
has reneged on it (RFC 2018 §8): the marks are forgotten and that data is in flight again.

Loss (``detect_losses``) is decided two ways, and either suffices:

* RFC 6675 IsLost(): a segment never retransmitted with DupThresh (3) SACKed segments, or
  more than (DupThresh - 1) * SMSS SACKed bytes, above it;
* RACK (RFC 8985 §6): a segment sent before the most recently sent segment that has been
  delivered (SACKed or acknowledged, ``rack_order``), and outstanding for
  longer than RACK.rtt plus the reordering window, is lost. One still within that time
  arms the reorder timer (``reorder_deadline``) for when it will be. The reordering
  window is min_RTT / 4 times a multiplier that each D-SACK round raises (RFC 8985
  §6.2 step 4), at most SRTT, and zero while no reordering has been seen and the sender
  is in recovery or DupThresh segments are SACKed. A retransmitted segment whose
  acknowledgement may be for its first copy (RTT below min_RTT, or an echoed timestamp
  older than the retransmission) is no RACK sample.

Time is the injected clock's seconds, as everywhere in the stack. The common case, no
SACKed or retransmitted segment outstanding, costs no scan: without them nothing in
flight was sent before what was just acknowledged.
"""

from tunrelay.stack.tcp.constants import (
    DUPACK_THRESHOLD, RACK_REORDER_PERSIST, TIMESTAMP_RESOLUTION)
from tunrelay.stack.tcp.seq import seq_gt, seq_le, seq_lt, seq_sub

__all__ = ["Segment", "Scoreboard"]


class Segment:
    __slots__ = ("seq", "end", "sent_at", "order", "retransmitted", "sacked", "lost")

    def __init__(self, seq, end, sent_at, order):
        self.seq = seq
        self.end = end
        self.sent_at = sent_at
        self.order = order
        self.retransmitted = False
        self.sacked = False
        self.lost = False

    @property
    def length(self):
        return seq_sub(self.end, self.seq)

    def __repr__(self):
        marks = "".join(flag for flag, on in (("R", self.retransmitted), ("S", self.sacked),
                                              ("L", self.lost)) if on)
        return "<Segment %d-%d %s@%.3f>" % (self.seq, self.end, marks, self.sent_at)


class Scoreboard:
    def __init__(self, mss):
        self.mss = mss
        self.segments = []          # in sequence order, contiguous over [SND.UNA, SND.MAX)
        self.pipe = 0               # bytes in the network
        self.sacked_count = 0
        self.sacked_bytes = 0
        self.lost_pending = 0       # lost and not yet sent again
        self.retransmitted_count = 0
        self._transmissions = 0     # the ``order`` counter
        # RACK (RFC 8985 §6.1): the latest transmission known delivered, and its RTT
        self.rack_order = None
        self.rack_rtt = None
        self.min_rtt = None
        self.fack = None            # the highest end delivered, to notice reordering
        self.reordering_seen = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = 0
        self.dsack_round = None     # SND.MAX when the multiplier last grew
        self.reorder_deadline = None

    # -- transmissions ------------------------------------------------------------------

    def sent(self, seq, end, now):
        """New data [seq, end) left at ``now``."""
        self._transmissions += 1
        self.segments.append(Segment(seq, end, now, self._transmissions))
        self.pipe += seq_sub(end, seq)

    def resent(self, segment, now):
        self._transmissions += 1
        segment.sent_at = now
        segment.order = self._transmissions
        if segment.lost:
            segment.lost = False
            self.lost_pending -= 1
            self.pipe += segment.length
        if not segment.retransmitted:
            segment.retransmitted = True
            self.retransmitted_count += 1

    def first_lost(self):
        if self.lost_pending:
            for segment in self.segments:
                if segment.lost:
                    return segment
        return None

    def last_unsacked(self):
        for segment in reversed(self.segments):
            if not segment.sacked:
                return segment
        return None

    def mark_all_lost(self):
        """After an RTO everything not SACKed must be sent again (RFC 6675 §5.1, RFC 8985 §6.3)."""
        for segment in self.segments:
            if not segment.sacked:
                self._lose(segment)
        self.reorder_deadline = None

    def _lose(self, segment):
        if not segment.lost:
            segment.lost = True
            self.lost_pending += 1
            self.pipe -= segment.length

    # -- acknowledgements ----------------------------------------------------------------

    def acknowledged(self, una, ack, blocks, now, echoed_at=None):
        """Apply a cumulative ACK (SND.UNA was ``una``) and SACK blocks.

        Returns ``(newly_sacked_bytes, dsack)``. ``echoed_at`` is the time the echoed
        timestamp was sent, when the peer echoes one.
        """
        delivered = self._cumulative(ack)
        dsack = False
        newly_sacked = 0
        for index, (left, right) in enumerate(blocks):
            if not seq_lt(left, right):
                continue
            if index == 0 and (seq_le(right, ack) or (
                    len(blocks) > 1 and seq_le(blocks[1][0], left) and seq_le(right, blocks[1][1]))):
                dsack = True
                continue
            newly_sacked += self._mark_sacked(left, right, delivered)
        if self.segments and self.segments[0].sacked:
            self._reneged()
        for segment in delivered:
            self._rack_update(segment, now, echoed_at)
        if dsack:
            self._dsack_seen(una)
        return newly_sacked, dsack

    def _cumulative(self, ack):
        segments = self.segments
        delivered = []
        count = 0
        for segment in segments:
            if not seq_le(segment.end, ack):
                break
            count += 1
            if segment.sacked:
                self.sacked_count -= 1
                self.sacked_bytes -= segment.length
            else:
                delivered.append(segment)
                if segment.lost:
                    self.lost_pending -= 1
                else:
                    self.pipe -= segment.length
            if segment.retransmitted:
                self.retransmitted_count -= 1
        del segments[:count]
        if segments and seq_lt(segments[0].seq, ack):
            # The peer took part of a segment (its window cut it): the rest stays.
            head = segments[0]
            taken = seq_sub(ack, head.seq)
            if head.sacked:
                self.sacked_bytes -= taken
            elif not head.lost:
                self.pipe -= taken
            head.seq = ack
        return delivered

    def _mark_sacked(self, left, right, delivered):
        segments = self.segments
        if not segments or not seq_le(right, segments[-1].end):
            return 0      # beyond anything sent: a broken or lying peer
        base = segments[0].seq
        if seq_lt(left, base):
            left = base      # the part below SND.UNA is acknowledged already
        start, end = seq_sub(left, base), seq_sub(right, base)
        index = self._index_at(start, base)
        marked = 0
        while index < len(segments):
            segment = segments[index]
            if seq_sub(segment.end, base) > end:
                break
            if not segment.sacked and seq_sub(segment.seq, base) >= start:
                segment.sacked = True
                self.sacked_count += 1
                self.sacked_bytes += segment.length
                marked += segment.length
                if segment.lost:
                    segment.lost = False
                    self.lost_pending -= 1
                else:
                    self.pipe -= segment.length
                delivered.append(segment)
            index += 1
        return marked

    def _index_at(self, offset, base):
        """The first segment ending beyond ``offset`` (bytes from ``base``): a binary search."""
        low, high = 0, len(self.segments)
        while low < high:
            middle = (low + high) // 2
            if seq_sub(self.segments[middle].end, base) <= offset:
                low = middle + 1
            else:
                high = middle
        return low

    def _reneged(self):
        for segment in self.segments:
            if segment.sacked:
                segment.sacked = False
                self.pipe += segment.length
        self.sacked_count = self.sacked_bytes = 0

    # -- RACK (RFC 8985 §6.2) -------------------------------------------------------------

    def _rack_update(self, segment, now, echoed_at):
        rtt = now - segment.sent_at
        if segment.retransmitted and (
                (echoed_at is not None and echoed_at < segment.sent_at - TIMESTAMP_RESOLUTION)
                or (self.min_rtt is not None and rtt < self.min_rtt)):
            return    # possibly the first copy's acknowledgement: no sample
        self.min_rtt = rtt if self.min_rtt is None else min(self.min_rtt, rtt)
        if self.rack_order is None or segment.order > self.rack_order:
            self.rack_order, self.rack_rtt = segment.order, rtt
        if self.fack is None or seq_gt(segment.end, self.fack):
            self.fack = segment.end
        elif seq_lt(segment.end, self.fack) and not segment.retransmitted:
            self.reordering_seen = True

    def _dsack_seen(self, una):
        self.reordering_seen = True
        if self.dsack_round is not None and not seq_lt(una, self.dsack_round):
            self.dsack_round = None
        if self.dsack_round is None:
            self.dsack_round = self.segments[-1].end if self.segments else una
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = RACK_REORDER_PERSIST

    def recovery_ended(self):
        """RFC 8985 §6.2 step 4: the multiplier decays after 16 recoveries without D-SACK."""
        self.reo_wnd_persist -= 1
        if self.reo_wnd_persist <= 0:
            self.reo_wnd_mult = 1

    def reordering_window(self, in_recovery, srtt):
        if not self.reordering_seen and (in_recovery or self.sacked_count >= DUPACK_THRESHOLD):
            return 0.0
        if self.min_rtt is None:
            return 0.0
        window = self.min_rtt / 4 * self.reo_wnd_mult
        return min(window, srtt) if srtt is not None else window

    def detect_losses(self, now, in_recovery, srtt):
        """Mark lost what RFC 6675 or RACK says is; return how many segments were marked."""
        if not (self.sacked_count or self.retransmitted_count) or self.rack_order is None:
            self.reorder_deadline = None
            return 0
        reo_wnd = self.reordering_window(in_recovery, srtt)
        dupthresh_bytes = (DUPACK_THRESHOLD - 1) * self.mss
        sacked_above = sacked_bytes_above = 0
        marked = 0
        wait = None
        for segment in reversed(self.segments):
            if segment.sacked:
                sacked_above += 1
                sacked_bytes_above += segment.length
                continue
            if segment.lost:
                continue
            if not segment.retransmitted and (sacked_above >= DUPACK_THRESHOLD
                                              or sacked_bytes_above > dupthresh_bytes):
                self._lose(segment)
                marked += 1
            elif segment.order < self.rack_order:
                remaining = segment.sent_at + self.rack_rtt + reo_wnd - now
                if remaining <= 0:
                    self._lose(segment)
                    marked += 1
                else:
                    wait = remaining if wait is None else max(wait, remaining)
        self.reorder_deadline = now + wait if wait is not None else None
        return marked
