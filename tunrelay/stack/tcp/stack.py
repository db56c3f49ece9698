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
"""

import collections

from tunrelay.stack.ratelimit import TokenBucket
from tunrelay.stack.tcp import events
from tunrelay.stack.tcp.connection import TIME_WAIT, TcpConnection
from tunrelay.stack.tcp.constants import (
    CHALLENGE_ACK_BURST, CHALLENGE_ACK_RATE, DEFAULT_BACKLOG, DEFAULT_LOCAL_MSS,
    DEFAULT_SEND_MSS, DEFAULT_SEND_MSS_IPV6, IPV6_HEADER_EXTRA, MAX_MSS_OPTION,
    MAX_TIME_WAIT_CONNECTIONS, MIN_SEND_MSS, RESET_BURST, RESET_RATE)
from tunrelay.stack.tcp.isn import IsnGenerator
from tunrelay.stack.tcp.listener import Listener
from tunrelay.stack.tcp.seq import seq_add, seq_gt
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

    def __init__(self, address, isn_secret, mss=DEFAULT_LOCAL_MSS):
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
        self._listeners = {}
        self._connections = {}
        self._time_wait = collections.OrderedDict()
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
                return
            self.stats["time_wait_reopened"] += 1
            self._remove(connection)
        listener = self._listeners.get(seg.destination_port)
        if seg.rst:
            self._drop("rst_no_connection")
        elif listener is None:
            self._drop("no_listener")
            self._reset_reply(destination, source, seg, now)
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
        for connection in list(self._connections.values()):
            deadline = connection.deadline()
            if deadline is not None and deadline <= now:
                connection.poll(now)

    def next_deadline(self):
        deadlines = [d for d in (c.deadline() for c in self._connections.values())
                     if d is not None]
        return min(deadlines) if deadlines else None

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
        self._connections[connection.key] = connection
        connection._send_syn_ack(connection.sender.syn_ack(now), now)
        return connection

    def _remove(self, connection):
        if self._connections.get(connection.key) is connection:
            del self._connections[connection.key]
        self._time_wait.pop(connection.key, None)
        connection.listener.forget(connection)
        connection._terminate()

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
