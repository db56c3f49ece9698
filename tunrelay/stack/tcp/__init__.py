"""A pure, clock-injected TCP (RFC 9293) for the in-process responder.

No sockets, no Twisted, no wall clock: every entry point takes ``now`` and the owner
moves bytes in and out. Modules:

* ``stack``: ``TcpStack``, the layer the IPv4 and IPv6 code talk to; demux, resets, timers;
* ``listener``: bounded SYN and accept queues;
* ``connection``: the RFC 9293 state machine of one connection and the owner's API;
* ``sender`` / ``receiver``: the two halves of a connection's data transfer;
* ``congestion`` (RFC 5681 growth; RFC 6582 NewReno or RFC 6675 recovery), ``scoreboard``
  (what is in flight and SACKed, RFC 6675, and RACK loss detection, RFC 8985), ``rtt``
  (RFC 6298), ``reassembly`` (the out-of-order queue), ``isn`` (RFC 6528), ``seq`` (mod
  2^32 arithmetic), ``events``, ``constants``.
"""

from tunrelay.stack.tcp.connection import (
    CLOSE_WAIT, CLOSED, CLOSING, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK,
    SYN_RECEIVED, TIME_WAIT, TcpConnection, TcpStateError)
from tunrelay.stack.tcp.events import (
    LOST_ABORTED, LOST_DONE, LOST_RESET, LOST_TIMED_OUT, ConnectionAccepted,
    ConnectionLost, DataReceived, PeerClosed, WritableAgain)
from tunrelay.stack.tcp.listener import Listener
from tunrelay.stack.tcp.stack import TcpStack

__all__ = [
    "TcpStack", "TcpConnection", "TcpStateError", "Listener",
    "ConnectionAccepted", "DataReceived", "PeerClosed", "ConnectionLost", "WritableAgain",
    "LOST_DONE", "LOST_RESET", "LOST_TIMED_OUT", "LOST_ABORTED",
    "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",
    "LAST_ACK", "TIME_WAIT", "CLOSED",
]
