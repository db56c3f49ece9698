"""UDP segmentation offload: which datagrams share a UDP_SEGMENT send, and that what is sent
batched arrives as the same datagrams, split again on receive (real loopback sockets)."""

import socket
import struct

from twisted.internet.task import Clock

from tunrelay.stats import DropReporter
from tunrelay.twisted_io.datagram import UDP_BATCH_LIMIT, UdpLink
from tunrelay.twisted_io.gso import UDP_GRO, GroPort, SendBatcher

A, B = ("192.0.2.1", 51820), ("192.0.2.2", 51820)


def test_same_sized_datagrams_to_one_address_share_a_send():
    batcher = SendBatcher()
    for _ in range(5):
        batcher.add(A, b"x" * 100)
    assert batcher.take() == [(A, 100, [b"x" * 100] * 5)]
    assert batcher.take() == []


def test_a_shorter_datagram_ends_its_group_and_a_longer_one_starts_a_new_one():
    batcher = SendBatcher()
    for size in (100, 100, 60, 100, 120):
        batcher.add(A, bytes(size))
    assert [(size, [len(m) for m in messages]) for _, size, messages in batcher.take()] == [
        (100, [100, 100, 60]), (100, [100]), (120, [120])]


def test_groups_break_at_a_new_address_the_segment_cap_and_oversized_datagrams():
    batcher = SendBatcher(max_segments=3, max_segment_size=1000)
    for address, size in ((A, 10), (B, 10), (B, 10), (B, 10), (B, 10), (B, 5000), (B, 10)):
        batcher.add(address, bytes(size))
    groups = [(address, [len(m) for m in messages]) for address, _, messages in batcher.take()]
    assert groups == [(A, [10]), (B, [10, 10, 10]), (B, [10]), (B, [5000]), (B, [10])]


def test_a_group_never_exceeds_one_datagrams_payload_limit():
    batcher = SendBatcher(max_segments=1000, max_segment_size=1452)
    for _ in range(100):
        batcher.add(A, bytes(1452))
    groups = batcher.take()
    assert sum(len(messages) for _, _, messages in groups) == 100
    assert all(sum(map(len, messages)) <= 65507 for _, _, messages in groups)


class FakeRelay:
    def __init__(self):
        self.clock = Clock()
        self.received = []
        self.drops = DropReporter(self.clock)

    def message_received(self, link, address, message):
        self.received.append((address, message))

    def peer_of_path(self, link, address):
        return None


class SocketTransport:
    def __init__(self, sock):
        self.socket = sock


def loopback_pair():
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    return sender, receiver


def test_a_turns_datagrams_leave_together_and_arrive_as_they_were_sent():
    sender, receiver = loopback_pair()
    relay, receiving_relay = FakeRelay(), FakeRelay()
    link = UdpLink(relay)
    link.transport = SocketTransport(sender)
    link.startProtocol()
    receiving_link = UdpLink(receiving_relay)
    receiving_link.transport = SocketTransport(receiver)
    receiving_link.startProtocol()
    port = GroPort(0, receiving_link, "127.0.0.1", 65535)
    port.socket = receiver
    messages = [bytes([index]) * 128 for index in range(40)] + [b"last" * 10, b"z" * 1400]
    assert link.gso, "this kernel takes UDP_SEGMENT (Linux 4.18+)"
    try:
        for message in messages:
            assert link.send(receiver.getsockname(), message) is None
        assert relay.clock.getDelayedCalls(), "nothing may leave before the end of the turn"
        relay.clock.advance(0)
        port.doRead()
        assert [message for _, message in receiving_relay.received] == messages
        assert {address for address, _ in receiving_relay.received} == {sender.getsockname()}
    finally:
        sender.close()
        receiver.close()


def test_the_batch_is_bounded_within_a_turn():
    sender, receiver = loopback_pair()
    link = UdpLink(FakeRelay())
    link.transport = SocketTransport(sender)
    link.startProtocol()
    try:
        for _ in range(UDP_BATCH_LIMIT + 1):
            link.send(receiver.getsockname(), b"m" * 64)
        assert link.batcher.queued == 1   # the limit forced a send; one waits for the turn's end
    finally:
        sender.close()
        receiver.close()


class CoalescingSocket:
    """Returns what a GRO socket returns: several datagrams in one buffer, their size in a cmsg."""

    def __init__(self, reads):
        self.reads = list(reads)

    def recvmsg(self, size, control_size):
        if not self.reads:
            raise BlockingIOError()
        data, segment = self.reads.pop(0)
        ancillary = [(socket.SOL_UDP, UDP_GRO, struct.pack("=i", segment))] if segment else []
        return data, ancillary, 0, A


def test_coalesced_datagrams_are_cut_apart_at_the_reported_size():
    relay = FakeRelay()
    link = UdpLink(relay)
    port = GroPort(0, link, "127.0.0.1", 65535)
    port.socket = CoalescingSocket([(b"a" * 100 + b"b" * 100 + b"c" * 30, 100), (b"plain", 0)])
    port.doRead()
    assert [message for _, message in relay.received] == [b"a" * 100, b"b" * 100, b"c" * 30, b"plain"]


class RefusingSocket:
    """A kernel that will not segment (or a path narrower than a segment): EINVAL on sendmsg."""

    def __init__(self, refusal=22):
        self.refusal = refusal
        self.sent = []

    def sendmsg(self, buffers, ancillary, flags, address):
        raise OSError(self.refusal, "refused")

    def sendto(self, message, address):
        self.sent.append((address, message))


def test_a_refused_segmented_send_goes_out_one_by_one_and_gso_stays_off():
    relay = FakeRelay()
    link = UdpLink(relay)
    link.transport = SocketTransport(RefusingSocket())
    link.gso = True
    for index in range(3):
        link.send(A, bytes([index]) * 100)
    relay.clock.advance(0)
    assert link.transport.socket.sent == [(A, bytes([index]) * 100) for index in range(3)]
    assert not link.gso and not relay.drops.counters.drops
    link.send(A, b"next")          # no GSO now: straight out, no turn-end call
    assert link.transport.socket.sent[-1] == (A, b"next") and not relay.clock.getDelayedCalls()


def test_a_full_buffer_drops_every_datagram_of_the_batch_and_counts_each():
    relay = FakeRelay()
    link = UdpLink(relay)
    link.transport = SocketTransport(RefusingSocket(refusal=105))   # ENOBUFS
    link.gso = True
    for _ in range(4):
        link.send(A, b"x" * 100)
    relay.clock.advance(0)
    assert relay.drops.counters.drops["tx_queue_full"] == 4 and link.gso
