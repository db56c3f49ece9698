"""A listening port: the bounded SYN (half-open) queue and the bounded accept queue.

RFC 9293 §3.10.7.2 (LISTEN) creates a SYN-RECEIVED connection for each SYN, up to
SYN_QUEUE_LIMIT half-open connections per listener. Past that, as Linux does with
net.ipv4.tcp_syncookies=1, a SYN is answered with a SYN cookie (RFC 4987 §3.6,
syncookie.py) and nothing is kept: memory stays bounded however fast SYNs arrive, no
half-open entry is ever evicted, and a legitimate client whose SYN found the queue full
still connects when its ACK returns the cookie (``cookie_sent`` remembers when, so that
ACKs are checked as cookies only for SYN_COOKIE_VALIDITY after the last one). What a cookie
connection loses: its SYN-ACK is not retransmitted (the client's SYN retransmission asks
again), its MSS is rounded down to a table entry, and window scaling and SACK survive only
if the SYN offered timestamps.

The accept queue holds connections that completed the handshake but whose
``ConnectionAccepted`` event the owner has not yet popped; it is bounded by the backlog
(clamped to MAX_ACCEPT_BACKLOG). When it is full, new SYNs are dropped and so are
handshake-completing ACKs (the peer's retransmission, or our SYN-ACK retransmission,
tries again later), which is Linux's behaviour and keeps a slow owner from being buried.
"""

from collections import OrderedDict

from tunrelay.stack.tcp.constants import (
    MAX_ACCEPT_BACKLOG, SYN_COOKIE_VALIDITY, SYN_QUEUE_LIMIT)

__all__ = ["Listener"]


class Listener:
    def __init__(self, stack, port, backlog, syn_queue_limit=SYN_QUEUE_LIMIT):
        if not 0 < port <= 0xFFFF:
            raise ValueError("port must be 1..65535")
        self._stack = stack
        self.port = port
        self.backlog = max(1, min(int(backlog), MAX_ACCEPT_BACKLOG))
        self.syn_queue_limit = syn_queue_limit
        self.syn_queue = OrderedDict()      # key -> connection in SYN-RECEIVED, oldest first
        self.accept_queue = OrderedDict()   # key -> established, not yet popped by the owner
        self.cookie_sent = None             # when a SYN was last answered with a cookie

    def __repr__(self):
        return "<Listener :%d syn=%d accept=%d/%d>" % (
            self.port, len(self.syn_queue), len(self.accept_queue), self.backlog)

    def accept_queue_full(self):
        return len(self.accept_queue) >= self.backlog

    def syn_arrived(self, local_address, remote_address, syn, now):
        if self.accept_queue_full():
            self._stack._drop("accept_queue_full")
            return
        if len(self.syn_queue) >= self.syn_queue_limit:
            self.cookie_sent = now
            self._stack._send_cookie(local_address, remote_address, syn, now)
            return
        connection = self._stack._open(self, local_address, remote_address, syn, now)
        self.syn_queue[connection.key] = connection

    def checks_cookies(self, now):
        """Whether an ACK to this listener may be returning one of its SYN cookies."""
        return self.cookie_sent is not None and now - self.cookie_sent <= SYN_COOKIE_VALIDITY

    def admit(self, connection):
        """Move a connection that completed its handshake to the accept queue, if it fits."""
        if self.accept_queue_full():
            return False
        self.syn_queue.pop(connection.key, None)
        self.accept_queue[connection.key] = connection
        return True

    def accepted(self, connection):
        """The owner popped its ConnectionAccepted: it no longer counts against the backlog."""
        self._discard(self.accept_queue, connection)

    def forget(self, connection):
        self._discard(self.syn_queue, connection)
        self._discard(self.accept_queue, connection)

    @staticmethod
    def _discard(queue, connection):
        # By identity: the 4-tuple may already belong to a newer incarnation.
        if queue.get(connection.key) is connection:
            del queue[connection.key]
