"""Fragment reassembly (IPv4: RFC 791 §3.2, RFC 815, RFC 1122 §3.3.2; IPv6: RFC 8200 §4.5,
RFC 5722) and IPv4 output fragmentation.

Reassembly. IPv4 fragments are keyed by (source, destination, protocol, identification),
IPv6 ones by (source, destination, identification): the caller passes ``key``. Each
datagram in progress keeps its received bytes as a sorted list of disjoint pieces, the
dual of RFC 815's hole list: the datagram is complete when the total length is known
(from the fragment with MF clear) and the pieces cover it exactly.

Overlaps. A fragment may overlap what was already received (retransmission, or a
different fragmentation on another path). Bytes in the overlap must agree; only the new
bytes are stored. If they disagree the datagram is ambiguous (the classic overlap attack
on IDS evasion) and it is discarded entirely. Exact duplicates therefore cost nothing and
never break reassembly. IPv6 is stricter (``strict_overlap``): RFC 5722 discards the
datagram on any overlap at all, and RFC 8200 §4.5 lets exact duplicates be dropped alone.

Bounds. Memory is charged per datagram (entry overhead + stored bytes + per-piece
overhead) against ``max_total_bytes``; at most ``max_datagrams`` may be in progress and
a datagram may hold at most ``max_fragments`` pieces and ``max_datagram_bytes`` bytes. A
new datagram beyond these bounds evicts the oldest in progress, so a flood of incomplete
datagrams costs the attacker a steady stream rather than locking reassembly for a whole
timeout. Each datagram lives ``timeout`` seconds from its first fragment (the timer is not
restarted, so trickling fragments cannot keep it alive); on expiry the caller is handed
the first fragment, if it came, to send ICMP Time Exceeded code 1 (RFC 1122 §3.3.2, RFC 8200
§4.5). Drops are counted as ``<prefix>_<reason>``, e.g. ``reasm_timeout``.

Fragmentation on output (RFC 791 §3.2, "fragmentation procedure"): payload chunks are
multiples of 8 bytes except the last; every fragment gets the same identification.
"""

import bisect
import dataclasses
from collections import Counter, OrderedDict

from tunrelay.stack import limits
from tunrelay.wire.ipv4 import MAX_DATAGRAM_LEN

__all__ = ["Reassembler", "Expired", "fragment_datagram"]


@dataclasses.dataclass(frozen=True)
class Expired:
    """A datagram that timed out after its first fragment arrived."""
    header: object          # the header of fragment zero (Ipv4Header or the IPv6 layer's)
    first_payload: bytes    # the payload of fragment zero
    deadline: float


class _Discard(Exception):
    """Internal: the datagram in progress must be thrown away for ``reason``."""

    def __init__(self, reason):
        self.reason = reason


class _Datagram:
    __slots__ = ("deadline", "starts", "pieces", "total", "received", "first_header", "cost")

    def __init__(self, deadline):
        self.deadline = deadline
        self.starts = []       # sorted piece start offsets, parallel to ``pieces``
        self.pieces = []       # piece bytes
        self.total = None      # payload length, known once the last fragment arrives
        self.received = 0      # bytes stored (pieces are disjoint)
        self.first_header = None
        self.cost = limits.REASSEMBLY_ENTRY_OVERHEAD

    def insert(self, start, data, last, max_fragments, strict_overlap=False):
        """Store ``data`` at ``start``; return the bytes of memory newly charged."""
        end = start + len(data)
        if last:
            if self.total is not None and self.total != end:
                raise _Discard("inconsistent_length")
            if self.starts and self.starts[-1] + len(self.pieces[-1]) > end:
                raise _Discard("inconsistent_length")
            self.total = end
        elif self.total is not None and end > self.total:
            raise _Discard("inconsistent_length")

        index = bisect.bisect_right(self.starts, start) - 1
        if index < 0 or self.starts[index] + len(self.pieces[index]) <= start:
            index += 1
        # Walk the pieces that overlap [start, end): check agreement, collect the gaps.
        gaps = []
        cursor = start
        while index < len(self.starts) and self.starts[index] < end:
            piece_start, piece = self.starts[index], self.pieces[index]
            piece_end = piece_start + len(piece)
            lo, hi = max(piece_start, start), min(piece_end, end)
            if piece[lo - piece_start:hi - piece_start] != data[lo - start:hi - start]:
                raise _Discard("overlap_conflict")
            if strict_overlap:
                if (piece_start, piece_end) == (start, end):
                    return 0        # an exact duplicate (RFC 8200 §4.5): nothing to store
                raise _Discard("overlap")
            if piece_start > cursor:
                gaps.append((cursor, piece_start))
            cursor = max(cursor, piece_end)
            index += 1
        if cursor < end:
            gaps.append((cursor, end))

        if len(self.pieces) + len(gaps) > max_fragments:
            raise _Discard("too_many_fragments")
        added = 0
        for gap_start, gap_end in gaps:
            position = bisect.bisect_left(self.starts, gap_start)
            self.starts.insert(position, gap_start)
            self.pieces.insert(position, data[gap_start - start:gap_end - start])
            added += gap_end - gap_start
        self.received += added
        charge = added + limits.REASSEMBLY_PIECE_OVERHEAD * len(gaps)
        self.cost += charge
        return charge

    @property
    def complete(self):
        return self.total is not None and self.received == self.total

    def payload(self):
        return b"".join(self.pieces)


def ipv4_key(header):
    return (header.source, header.destination, header.protocol, header.identification)


class Reassembler:
    """Bounded reassembly on an injected clock; see the module docstring.

    Fragment headers need ``source``, ``destination``, ``identification`` (and whatever
    ``key`` reads), ``fragment_offset`` in bytes, ``more_fragments`` and
    ``header_length``, the bytes that precede the fragmentable part; the whole datagram
    comes back with fragment zero's header, MF and offset cleared by ``dataclasses.replace``.
    """

    def __init__(self, drops=None, *, key=ipv4_key, prefix="reasm", strict_overlap=False,
                 timeout=limits.REASSEMBLY_TIMEOUT,
                 max_datagrams=limits.REASSEMBLY_MAX_DATAGRAMS,
                 max_total_bytes=limits.REASSEMBLY_MAX_TOTAL_BYTES,
                 max_fragments=limits.REASSEMBLY_MAX_FRAGMENTS,
                 max_datagram_bytes=MAX_DATAGRAM_LEN):
        self.drops = drops if drops is not None else Counter()
        self._key = key
        self._prefix = prefix
        self.strict_overlap = strict_overlap
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_total_bytes = max_total_bytes
        self.max_fragments = max_fragments
        self.max_datagram_bytes = max_datagram_bytes
        # Insertion order is deadline order because the timeout is fixed and not restarted.
        self._datagrams = OrderedDict()
        # Timeouts noticed inside add() wait here for the next expire() call, so that
        # their Time Exceeded is not lost; bounded like the datagrams themselves.
        self._expired = []
        self.bytes_in_use = 0

    def __len__(self):
        return len(self._datagrams)

    def add(self, header, payload, now):
        """Add one fragment; return ``(header, payload)`` of the whole datagram or None.

        The returned header is fragment zero's, with MF and offset cleared.
        """
        if header.more_fragments and (not payload or len(payload) % 8):
            # RFC 791: every fragment but the last carries a non-empty multiple of 8 bytes.
            self._count("bad_fragment_length")
            return None
        if header.fragment_offset + len(payload) + header.header_length > self.max_datagram_bytes:
            self._count("too_big")
            return None
        self._collect_expired(now)
        key = self._key(header)
        datagram = self._datagrams.get(key)
        if datagram is None:
            datagram = self._make_room_and_create(key, now)
        try:
            if header.fragment_offset == 0 and datagram.first_header is None:
                datagram.first_header = header
            charge = datagram.insert(header.fragment_offset, payload,
                                     not header.more_fragments, self.max_fragments,
                                     self.strict_overlap)
            if (datagram.total is not None and datagram.first_header is not None
                    and datagram.first_header.header_length + datagram.total
                    > self.max_datagram_bytes):
                raise _Discard("too_big")
        except _Discard as discard:
            self._remove(key, discard.reason)
            return None
        self.bytes_in_use += charge
        self._enforce_total_bytes(keep=key)
        if key not in self._datagrams:
            return None
        if datagram.complete:
            self._remove(key, None)
            whole = dataclasses.replace(datagram.first_header, more_fragments=False,
                                        fragment_offset=0)
            return whole, datagram.payload()
        return None

    def expire(self, now):
        """Drop datagrams whose time is up; return :class:`Expired` for those with fragment 0."""
        self._collect_expired(now)
        expired, self._expired = self._expired, []
        return expired

    def next_deadline(self):
        if self._expired:
            return self._expired[0].deadline
        for datagram in self._datagrams.values():
            return datagram.deadline
        return None

    def _collect_expired(self, now):
        while self._datagrams:
            key, datagram = next(iter(self._datagrams.items()))
            if datagram.deadline > now:
                break
            self._remove(key, "timeout")
            if (datagram.first_header is not None and datagram.starts and datagram.starts[0] == 0
                    and len(self._expired) < self.max_datagrams):
                self._expired.append(
                    Expired(datagram.first_header, datagram.pieces[0], datagram.deadline))

    def _make_room_and_create(self, key, now):
        while len(self._datagrams) >= self.max_datagrams:
            self._remove(next(iter(self._datagrams)), "evicted")
        datagram = _Datagram(now + self.timeout)
        self._datagrams[key] = datagram
        self.bytes_in_use += datagram.cost
        return datagram

    def _enforce_total_bytes(self, keep):
        """Evict the oldest other datagrams, then ``keep`` itself, until under the bound."""
        while self.bytes_in_use > self.max_total_bytes and self._datagrams:
            victim = next(iter(self._datagrams))
            if victim == keep and len(self._datagrams) > 1:
                victim = list(self._datagrams)[1]
            self._remove(victim, "evicted")

    def _remove(self, key, reason):
        datagram = self._datagrams.pop(key)
        self.bytes_in_use -= datagram.cost
        if reason is not None:
            self._count(reason)

    def _count(self, reason):
        self.drops["%s_%s" % (self._prefix, reason)] += 1


def fragment_datagram(header, payload, mtu):
    """Serialize ``header`` + ``payload`` as one datagram or as fragments of at most ``mtu``.

    Fragments never carry DF. Output headers carry no options, so there is no need to
    choose which options to copy into later fragments (RFC 791 "copied" flag).
    """
    if header.header_length + len(payload) <= mtu:
        return [header.emit(payload)]
    if header.options:
        raise ValueError("fragmenting datagrams with options is not supported")
    if header.dont_fragment:
        raise ValueError("datagram larger than the MTU has DF set")
    chunk = (mtu - header.header_length) // 8 * 8
    if chunk < 8:
        raise ValueError("MTU too small to fragment")
    fragments = []
    for offset in range(0, len(payload), chunk):
        piece = payload[offset:offset + chunk]
        more = offset + chunk < len(payload) or header.more_fragments
        fragments.append(dataclasses.replace(
            header, fragment_offset=header.fragment_offset + offset,
            more_fragments=more).emit(piece))
    return fragments
