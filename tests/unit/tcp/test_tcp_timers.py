"""The stack's timer heap: the same deadlines as a walk over every connection, and a poll
that visits only the connections that are due (issue 15)."""

from tunrelay.stack.tcp import TcpStack
from tunrelay.stack.tcp.connection import TcpConnection
from tunrelay.stack.tcp.constants import INITIAL_RTO

from .driver import Transfer
from .helpers import PORT, SECRET, SERVER_B, build

MIB = 1 << 20


def walked_deadline(stack):
    """What next_deadline() returned before the heap: a minimum over every connection."""
    return min((d for d in (c.deadline() for c in stack.connections) if d is not None), default=None)


class CheckedStack(TcpStack):
    checks = 0

    def next_deadline(self):
        deadline = super().next_deadline()
        assert deadline == walked_deadline(self)
        self.checks += 1
        return deadline


def test_heap_agrees_with_a_walk_throughout_a_lossy_transfer():
    stack = CheckedStack(SERVER_B, SECRET)
    stack.listen(PORT, 16)
    transfer = Transfer(stack, 3, MIB // 4, timestamps=True, sack=True, pause_every=64 * 1024,
                        pause=0.3, loss=0.05, duplicate=0.02, reorder=0.05).run()
    assert transfer.finished() and transfer.pauses
    assert stack.checks > 100 and stack.next_deadline() is None


def half_open(stack, count, start, spacing):
    for i in range(count):
        source = bytes([10, 1, i // 250, i % 250 + 1])
        src = ".".join(map(str, source))
        stack.segment_received(source, SERVER_B, build(1024 + i % 60000, PORT, "S", i, src=src),
                               start + i * spacing)
    stack.pop_outgoing()


def test_poll_visits_only_due_connections(monkeypatch):
    stack = TcpStack(SERVER_B, SECRET)
    stack.listen(PORT, 16)
    half_open(stack, 200, 0.0, 0.001)
    visited = []
    original = TcpConnection.poll
    monkeypatch.setattr(TcpConnection, "poll", lambda conn, now: (visited.append(conn), original(conn, now)))
    assert stack.next_deadline() == INITIAL_RTO
    stack.poll(INITIAL_RTO + 0.0025)           # the first three SYN-ACKs are due, no others
    assert len(visited) == 3 and len(stack.pop_outgoing()) == 3
    assert [c.peer[1] for c in visited] == [1024, 1025, 1026]          # in creation order
    assert stack.next_deadline() == INITIAL_RTO + 0.003 == walked_deadline(stack)


def test_stale_heap_entries_stay_bounded():
    stack = TcpStack(SERVER_B, SECRET)
    stack.listen(PORT, 16)
    half_open(stack, 50, 0.0, 0.0)
    conn = stack.connections[0]
    for step in range(1000):                   # each call moves this connection's deadline
        conn.sender.timer = 5.0 + step
        stack._reschedule(conn)
    assert len(stack._timers) <= 2 * len(stack.connections) + 64
    assert stack.next_deadline() == walked_deadline(stack)
