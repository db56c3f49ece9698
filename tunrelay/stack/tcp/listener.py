"""A listening port: the bounded SYN (half-open) queue and the bounded accept queue.

RFC 9293 §3.10.7.2 (LISTEN) creates a SYN-RECEIVED connection for each SYN. RFC 4987
lists the defences against SYN floods; we use a bounded half-open table per listener
(SYN_QUEUE_LIMIT) that evicts the oldest entry when full, not SYN cookies, because:

* memory stays bounded: at most SYN_QUEUE_LIMIT small SYN-RECEIVED entries (no buffers
  are allocated until data flows) per listener, however fast SYNs arrive;
* a legitimate client only loses its half-open entry when SYN_QUEUE_LIMIT newer SYNs
  arrive within its round-trip time; the responder sits at the end of a tun link whose
  RTT is sub-millisecond, and a flooder has to be an authenticated relay peer;
* cookies cannot carry the window scale and exact MSS without timestamps (which this
  stack does not negotiate), so every cookie connection would run with a 64 KiB window
  and a quantised MSS, and they complicate retransmission of the SYN-ACK.

The accept queue holds connections that completed the handshake but whose
``ConnectionAccepted`` event the owner has not yet popped; it is bounded by the backlog
(clamped to MAX_ACCEPT_BACKLOG). When it is full, new SYNs are dropped and so are
handshake-completing ACKs (the peer's retransmission, or our SYN-ACK retransmission,
tries again later), which is Linux's behaviour and keeps a slow owner from being buried.
"""

from collections import OrderedDict

from tunrelay.stack.tcp.constants import MAX_ACCEPT_BACKLOG, SYN_QUEUE_LIMIT

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
            _, oldest = self.syn_queue.popitem(last=False)
            self._stack._drop("syn_queue_full")
            self._stack._remove(oldest)
        connection = self._stack._open(self, local_address, remote_address, syn, now)
        self.syn_queue[connection.key] = connection

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
