"""The TCP layer of the responder: demultiplexing, listeners, resets, timers, events.

Contract with the IP layers (``tunrelay.stack.interface`` and ``ipv6``):

* ``segment_received(source, destination, segment, now)``: packed addresses (4 bytes for
  IPv4, 16 for IPv6) and the upper-layer bytes; we verify the checksum ourselves over the
  pseudo-header of the family (RFC 9293 §3.1, RFC 8200 §8.1);
* ``pop_outgoing() -> [(source, destination, segment)]`` with the checksum filled in;
* ``poll(now)`` fires due timers, ``next_deadline()`` says when to call it next.

The stack owns at most one address per family; a listener accepts on all of them. The
MSS we offer is the IPv4 one, less 20 over IPv6 (its header is 20 bytes longer), and a peer
that sends no MSS option is assumed to take 536 bytes over IPv4 and 1220 over IPv6 (RFC 9293
§3.7.1, RFC 8200 §8.3).

The owner (the Twisted adapter) calls ``listen``, pops ``events`` after every call into
the stack, and drives connections through their methods (see connection.py).

Input is checked in this order, each failure a named drop counter: the wire parser
(``truncated``, ``bad_checksum``, ``bad_data_offset``, ``bad_option``), the addresses
(``wrong_address``, ``land``), zero ports (``bad_port``), and flag combinations no
correct TCP sends (``bad_flags``: SYN+FIN, SYN+RST, and anything with none of
SYN/ACK/RST, which covers NULL, FIN and XMAS scans). These are dropped silently, not
reset, so a scanner learns nothing and a forged packet cannot trigger a reset.

Segments that match no connection follow RFC 9293 §3.10.7.1 (CLOSED) and §3.10.7.2
(LISTEN): a SYN to a listener opens a half-open connection (listener.py); an RST is
dropped (never answer an RST: that is the whole of the RST-storm defence); anything else
is answered with a reset, <SEQ=SEG.ACK><CTL=RST> when it carries an ACK and
<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> otherwise, within a stack-wide budget
(RESET_RATE). Challenge ACKs (RFC 5961 §7) share one stack-wide budget as well.

A SYN for a 4-tuple in TIME-WAIT whose sequence number lies beyond the old connection's
RCV.NXT ends the TIME-WAIT early and opens a new connection (RFC 9293 §3.10.7.4 note on
TIME-WAIT, RFC 6191 without timestamps); an older one gets a challenge ACK. The number of
TIME-WAIT connections is bounded, oldest dropped first.

SYN cookies (RFC 4987 §3.6, syncookie.py). A SYN that finds its listener's SYN queue full
is answered with a cookie SYN-ACK and forgotten (``syn_cookies_sent``). For
SYN_COOKIE_VALIDITY after that, an ACK to the listener that matches no connection is
checked as a cookie: SEG.ACK - 1 must be one we could have made for that 4-tuple and
SEG.SEQ - 1 within the last MAX_COOKIE_AGE minutes; if so the connection is rebuilt with the
MSS, window scale and SACK the cookie carries, goes straight to ESTABLISHED and the segment
is processed as if it had found it in SYN-RECEIVED (``syn_cookies_accepted``). A cookie
that does not check out is dropped as ``syn_cookie_invalid`` and answered with a reset,
as any other ACK to a listener. The cookie key is 32 random bytes per stack.

Timers. Every connection's earliest deadline sits in one binary heap of entries
(deadline, sequence, connection) with lazy deletion: a connection remembers its one live
entry, and an entry that is no longer it (the deadline moved, or the connection went) is
skipped when it reaches the top. The stack reschedules a connection after every call into
it (a segment, a timer, an owner call), so ``next_deadline`` costs O(1) amortized and
``poll`` visits only the connections that are due, in the order they were created, which
is what the walk over every connection did. A frame therefore costs the same with one
connection or ten thousand half-open ones (issue 15; bench/responder_halfopen.py).
"""

import collections
import heapq
import itertools
import os

from tunrelay.stack.ratelimit import TokenBucket
from tunrelay.stack.tcp import events
from tunrelay.stack.tcp.connection import (
    SYN_RECEIVED, TIME_WAIT, TcpConnection, timestamp_value)
from tunrelay.stack.tcp.constants import (
    CHALLENGE_ACK_BURST, CHALLENGE_ACK_RATE, DEFAULT_BACKLOG, DEFAULT_LOCAL_MSS,
    DEFAULT_SEND_MSS, DEFAULT_SEND_MSS_IPV6, IPV6_HEADER_EXTRA, LOCAL_WINDOW_SHIFT,
    MAX_MSS_OPTION, MAX_TIME_WAIT_CONNECTIONS, MAX_WINDOW_FIELD, MIN_SEND_MSS,
    RECEIVE_BUFFER_SIZE, RESET_BURST, RESET_RATE)
from tunrelay.stack.tcp.isn import IsnGenerator
from tunrelay.stack.tcp.listener import Listener
from tunrelay.stack.tcp.seq import seq_add, seq_gt, seq_sub
from tunrelay.stack.tcp.syncookie import SynCookies, decode_timestamp, encode_timestamp
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

__all__ = ["TcpStack"]


def _bad_flags(flags):
    if flags & SYN and flags & (FIN | RST):
        return True
    return not flags & (SYN | ACK | RST)


class TcpStack:
    """The TCP layer for the responder's addresses: one packed address, or a list of them
    (at most one IPv4 and one IPv6). ``mss`` is what we offer over IPv4."""

    def __init__(self, address, isn_secret, mss=DEFAULT_LOCAL_MSS, cookie_secret=None):
        addresses = [address] if isinstance(address, (bytes, bytearray)) else list(address)
        lengths = sorted(len(item) for item in addresses)
        if lengths not in ([4], [16], [4, 16]):
            raise ValueError("addresses must be one packed IPv4 and/or one packed IPv6 address")
        if not MIN_SEND_MSS + IPV6_HEADER_EXTRA <= mss <= MAX_MSS_OPTION:
            raise ValueError("mss out of range")
        self.addresses = frozenset(bytes(item) for item in addresses)
        self.address = bytes(addresses[0])
        self.mss = mss
        self._isn = IsnGenerator(isn_secret)
        self._cookies = SynCookies(cookie_secret if cookie_secret is not None else os.urandom(32))
        self._listeners = {}
        self._connections = {}
        self._time_wait = collections.OrderedDict()
        self._timers = []                       # heap of (deadline, sequence, connection)
        self._timer_sequence = itertools.count()
        self._creation_order = itertools.count()
        self._outgoing = []
        self._events = []
        self._challenge_bucket = TokenBucket(CHALLENGE_ACK_RATE, CHALLENGE_ACK_BURST)
        self._reset_bucket = TokenBucket(RESET_RATE, RESET_BURST)
        self.drops = collections.Counter()
        self.stats = collections.Counter()

    # -- owner API ---------------------------------------------------------------------
    def listen(self, port, backlog=DEFAULT_BACKLOG):
        if port in self._listeners:
            raise ValueError("port %d is already listening" % port)
        listener = Listener(self, port, backlog)
        self._listeners[port] = listener
        return listener

    def stop_listening(self, port):
        """Stop accepting; half-open connections go, established ones are kept."""
        listener = self._listeners.pop(port)
        for connection in list(listener.syn_queue.values()):
            self._remove(connection)

    def pop_events(self):
        popped, self._events = self._events, []
        for event in popped:
            if isinstance(event, events.ConnectionAccepted):
                event.conn.listener.accepted(event.conn)
        return popped

    @property
    def connections(self):
        return list(self._connections.values())

    @property
    def counters(self):
        """Drop reasons and statistics together, for logging and metrics."""
        merged = collections.Counter(self.stats)
        merged.update({"drop_" + k: v for k, v in self.drops.items()})
        return merged

    def local_mss(self, local_address):
        return self.mss - (IPV6_HEADER_EXTRA if len(local_address) == 16 else 0)

    @staticmethod
    def default_send_mss(local_address):
        return DEFAULT_SEND_MSS_IPV6 if len(local_address) == 16 else DEFAULT_SEND_MSS

    # -- the IP layers' API ------------------------------------------------------------
    def segment_received(self, source, destination, segment, now):
        source = bytes(source)
        destination = bytes(destination)
        self.stats["segments_received"] += 1
        try:
            seg = TcpSegment.parse(segment, source, destination)
        except MalformedPacket as error:
            self._drop(error.reason)
            return
        if destination not in self.addresses:
            self._drop("wrong_address")
            return
        if source == destination:
            self._drop("land")
            return
        if seg.source_port == 0 or seg.destination_port == 0:
            self._drop("bad_port")
            return
        if _bad_flags(seg.flags):
            self._drop("bad_flags")
            return
        key = (source, seg.source_port, seg.destination_port)
        connection = self._connections.get(key)
        if connection is not None:
            if not self._reopens_time_wait(connection, seg):
                connection.segment_arrived(seg, now)
                self._reschedule(connection)
                return
            self.stats["time_wait_reopened"] += 1
            self._remove(connection)
        listener = self._listeners.get(seg.destination_port)
        if seg.rst:
            self._drop("rst_no_connection")
        elif listener is None:
            self._drop("no_listener")
            self._reset_reply(destination, source, seg, now)
        elif seg.has_ack and not seg.syn and listener.checks_cookies(now):
            self._cookie_returned(listener, destination, source, seg, now)
        elif seg.has_ack:
            self._drop("ack_to_listener")
            self._reset_reply(destination, source, seg, now)
        else:
            listener.syn_arrived(destination, source, seg, now)

    def _reopens_time_wait(self, connection, seg):
        return (connection.state == TIME_WAIT and seg.syn and not seg.has_ack
                and seg.destination_port in self._listeners
                and seq_gt(seg.seq, connection.receiver.nxt))

    def pop_outgoing(self):
        popped, self._outgoing = self._outgoing, []
        return popped

    def poll(self, now):
        timers = self._timers
        due = []
        while timers and timers[0][0] <= now:
            entry = heapq.heappop(timers)
            connection = entry[2]
            if entry is connection.timer_entry:
                connection.timer_entry = None
                due.append(connection)
        due.sort(key=lambda connection: connection.creation_order)
        for connection in due:
            deadline = connection.deadline()
            if deadline is not None and deadline <= now:
                connection.poll(now)
            self._reschedule(connection)

    def next_deadline(self):
        timers = self._timers
        while timers and timers[0] is not timers[0][2].timer_entry:
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    def _reschedule(self, connection):
        """Give ``connection`` one live heap entry at its current deadline (or none)."""
        live = self._connections.get(connection.key) is connection
        deadline = connection.deadline() if live else None
        entry = connection.timer_entry
        if entry is not None and entry[0] == deadline:
            return
        if deadline is None:
            connection.timer_entry = None
            return
        entry = (deadline, next(self._timer_sequence), connection)
        connection.timer_entry = entry
        heapq.heappush(self._timers, entry)
        self._compact_timers()

    def _compact_timers(self):
        """Stale entries outnumber live ones: rebuild, O(n) once per n pushes or removals.
        (A stale entry still holds its connection, buffers and all, until it is popped.)"""
        if len(self._timers) > 2 * len(self._connections) + 64:
            self._timers = [c.timer_entry for c in self._connections.values()
                            if c.timer_entry is not None]
            heapq.heapify(self._timers)

    # -- services for connections and listeners --------------------------------------------
    def _drop(self, reason):
        self.drops[reason] += 1

    def _event(self, event):
        self._events.append(event)

    def _transmit(self, local_address, remote_address, segment):
        self.stats["segments_sent"] += 1
        self._outgoing.append(
            (local_address, remote_address, segment.emit(local_address, remote_address)))

    def _open(self, listener, local_address, remote_address, syn, now):
        iss = self._isn(local_address, syn.destination_port, remote_address, syn.source_port,
                        now)
        connection = TcpConnection(self, listener, local_address, remote_address, syn, iss,
                                   self.local_mss(local_address), now)
        self._add(connection)
        connection._send_syn_ack(connection.sender.syn_ack(now), now)
        self._reschedule(connection)
        return connection

    def _send_cookie(self, local_address, remote_address, syn, now):
        """Answer ``syn`` with a SYN cookie and keep nothing (syncookie.py)."""
        local_mss = self.local_mss(local_address)
        peer_mss = syn.mss if syn.mss is not None else self.default_send_mss(local_address)
        iss = self._cookies.make(local_address, syn.destination_port, remote_address,
                                 syn.source_port, syn.seq, peer_mss, now)
        timestamps = syn.timestamp is not None
        timestamp = None
        if timestamps:
            # The connection's TSval offset will be its ISS, as for any other (connection.py).
            tsval = encode_timestamp(timestamp_value(now, iss), syn.window_scale,
                                     syn.sack_permitted)
            timestamp = (tsval, syn.timestamp[0])
        reply = TcpSegment(
            syn.destination_port, syn.source_port, iss, seq_add(syn.seq, 1), SYN | ACK,
            min(RECEIVE_BUFFER_SIZE, MAX_WINDOW_FIELD), mss=local_mss,
            window_scale=LOCAL_WINDOW_SHIFT if timestamps and syn.window_scale is not None
            else None,
            sack_permitted=timestamps and syn.sack_permitted, timestamp=timestamp)
        self.stats["syn_cookies_sent"] += 1
        self._transmit(local_address, remote_address, reply)

    def _cookie_returned(self, listener, local_address, remote_address, seg, now):
        """An ACK that may carry one of our SYN cookies: rebuild its connection or drop it."""
        irs, iss = seq_sub(seg.seq, 1), seq_sub(seg.ack, 1)
        mss = self._cookies.check(local_address, seg.destination_port, remote_address,
                                  seg.source_port, irs, iss, now)
        if mss is None:
            self._drop("syn_cookie_invalid")
            self._reset_reply(local_address, remote_address, seg, now)
            return
        if listener.accept_queue_full():
            self._drop("accept_queue_full")
            return
        window_scale, sack = (None, False)
        if seg.timestamp is not None:
            window_scale, sack = decode_timestamp(seg.timestamp[1])
        syn = TcpSegment(seg.source_port, seg.destination_port, irs, 0, SYN, 0, mss=mss,
                         window_scale=window_scale, sack_permitted=sack,
                         timestamp=(seg.timestamp[0], 0) if seg.timestamp is not None else None)
        connection = TcpConnection(self, listener, local_address, remote_address, syn, iss,
                                   self.local_mss(local_address), now)
        connection._syn_ack_sent_as_cookie()
        self._add(connection)
        self.stats["syn_cookies_accepted"] += 1
        connection.segment_arrived(seg, now)
        if connection.state == SYN_RECEIVED:
            # Cannot happen with a valid cookie and room to accept; never keep a connection
            # with no SYN-ACK timer of its own.
            self._remove(connection)
        self._reschedule(connection)

    def _add(self, connection):
        connection.creation_order = next(self._creation_order)
        self._connections[connection.key] = connection

    def _remove(self, connection):
        if self._connections.get(connection.key) is connection:
            del self._connections[connection.key]
        self._time_wait.pop(connection.key, None)
        connection.listener.forget(connection)
        connection._terminate()
        connection.timer_entry = None           # its heap entry, if any, is now stale
        self._compact_timers()                  # a mass close must not keep the dead alive

    def _entered_time_wait(self, connection):
        self.stats["time_wait_entered"] += 1
        self._time_wait[connection.key] = connection
        connection.listener.forget(connection)
        while len(self._time_wait) > MAX_TIME_WAIT_CONNECTIONS:
            _, oldest = self._time_wait.popitem(last=False)
            self.stats["time_wait_overflow"] += 1
            self._remove(oldest)

    def _challenge_ack_allowed(self, now):
        if self._challenge_bucket.consume(now):
            return True
        self.stats["challenge_acks_suppressed"] += 1
        return False

    def _reset_reply(self, local_address, remote_address, seg, now):
        """RFC 9293 §3.10.7.1 reset generation; never in reply to a reset."""
        if seg.rst:
            return
        if not self._reset_bucket.consume(now):
            self.stats["resets_suppressed"] += 1
            return
        if seg.has_ack:
            reply = TcpSegment(seg.destination_port, seg.source_port, seg.ack, 0, RST, 0)
        else:
            reply = TcpSegment(seg.destination_port, seg.source_port, 0,
                               seq_add(seg.seq, seg.seg_len), RST | ACK, 0)
        self.stats["resets_sent"] += 1
        self._transmit(local_address, remote_address, reply)
