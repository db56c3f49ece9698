"""Events the stack reports to its owner (the Twisted adapter), popped with ``pop_events``.

They mirror the calls a Twisted ``Protocol`` receives: ``ConnectionAccepted`` ->
``makeConnection``, ``DataReceived`` -> ``dataReceived``, ``PeerClosed`` ->
``readConnectionLost`` (the peer's FIN, RFC 9293 §3.6), ``ConnectionLost`` ->
``connectionLost`` (exactly once per accepted connection), and ``WritableAgain`` ->
``resumeProducing`` for a producer paused because ``send`` accepted less than offered.
"""

from dataclasses import dataclass

__all__ = ["ConnectionAccepted", "DataReceived", "PeerClosed", "ConnectionLost",
           "WritableAgain", "LOST_DONE", "LOST_RESET", "LOST_TIMED_OUT", "LOST_ABORTED",
           "LOST_REASONS"]

# ConnectionLost reasons.
LOST_DONE = "done"            # both FINs exchanged and ours acknowledged
LOST_RESET = "reset"          # the peer sent an acceptable RST
LOST_TIMED_OUT = "timed_out"  # retransmissions or zero-window probes went unanswered
LOST_ABORTED = "aborted"      # the owner called abort()
LOST_REASONS = (LOST_DONE, LOST_RESET, LOST_TIMED_OUT, LOST_ABORTED)


@dataclass(frozen=True, eq=False)
class ConnectionAccepted:
    conn: object


@dataclass(frozen=True, eq=False)
class DataReceived:
    conn: object
    data: bytes


@dataclass(frozen=True, eq=False)
class PeerClosed:
    conn: object


@dataclass(frozen=True, eq=False)
class ConnectionLost:
    conn: object
    reason: str


@dataclass(frozen=True, eq=False)
class WritableAgain:
    conn: object
