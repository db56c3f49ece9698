"""UDP segmentation offload: which datagrams share a UDP_SEGMENT send, and that what is sent
batched arrives as the same datagrams, split again on receive (real loopback sockets)."""

import socket
import struct

from twisted.internet.task import Clock

from tunrelay.constants import UDP_BATCH_LIMIT
from tunrelay.stats import DropReporter
from tunrelay.twisted_io.datagram import UdpLink
from tunrelay.twisted_io.gso import UDP_GRO, SendBatcher

A, B = ("192.0.2.1", 51820), ("192.0.2.2", 51820)


def add(batcher, address, size, parts=1):
    """Queue one datagram of ``size`` bytes, given as ``parts`` buffers (as a WireGuard message is)."""
    message = (bytes(size),) if parts == 1 else (bytes(16), bytes(size - 16))
    batcher.add(address, message, size)


def sizes(messages):
    return [sum(map(len, message)) for message in messages]


def test_same_sized_datagrams_to_one_address_share_a_send():
    batcher = SendBatcher()
    for _ in range(5):
        add(batcher, A, 100, parts=2)
    [(address, size, messages)] = batcher.take()
    assert (address, size, sizes(messages)) == (A, 100, [100] * 5)
    assert all(len(message) == 2 for message in messages)   # gathered by sendmsg, never joined
    assert batcher.take() == []


def test_a_shorter_datagram_ends_its_group_and_a_longer_one_starts_a_new_one():
    batcher = SendBatcher()
    for size in (100, 100, 60, 100, 120):
        add(batcher, A, size)
    assert [(size, sizes(messages)) for _, size, messages in batcher.take()] == [
        (100, [100, 100, 60]), (100, [100]), (120, [120])]


def test_groups_break_at_a_new_address_the_segment_cap_and_oversized_datagrams():
    batcher = SendBatcher(max_segments=3, max_segment_size=1000)
    for address, size in ((A, 10), (B, 10), (B, 10), (B, 10), (B, 10), (B, 5000), (B, 10)):
        add(batcher, address, size)
    groups = [(address, sizes(messages)) for address, _, messages in batcher.take()]
    assert groups == [(A, [10]), (B, [10, 10, 10]), (B, [10]), (B, [5000]), (B, [10])]


def test_a_group_never_exceeds_one_datagrams_payload_limit():
    batcher = SendBatcher(max_segments=1000, max_segment_size=1452)
    for _ in range(100):
        add(batcher, A, 1452)
    groups = batcher.take()
    assert sum(len(messages) for _, _, messages in groups) == 100
    assert all(sum(sizes(messages)) <= 65507 for _, _, messages in groups)


class FakeRelay:
    def peer_of_path(self, link, address):
        return None


class FakeDatapath:
    """What a link needs of the data path: somewhere to deliver a batch, the set of links
    to flush at the batch's end, and the drop counters."""

    def __init__(self):
        self.clock = Clock()
        self.batches = []
        self.dirty_links = set()
        self.drops = DropReporter(self.clock)
        self.relay = FakeRelay()

    @property
    def received_messages(self):
        return [(address, bytes(message)) for batch in self.batches for address, message in batch]

    def received(self, link, batch):
        self.batches.append(batch)

    def finish(self):
        for link in list(self.dirty_links):
            link.flush()
        self.dirty_links.clear()


def loopback_pair():
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    return sender, receiver


def test_a_batchs_datagrams_leave_together_and_arrive_as_they_were_sent():
    sender, receiver = loopback_pair()
    datapath, receiving = FakeDatapath(), FakeDatapath()
    link = UdpLink(datapath, sender, None)
    receiving_link = UdpLink(receiving, receiver, None)
    messages = [bytes([index]) * 128 for index in range(40)] + [b"last" * 10, b"z" * 1400]
    assert link.gso, "this kernel takes UDP_SEGMENT (Linux 4.18+)"
    try:
        for message in messages:
            assert link.send(receiver.getsockname(), message[:16], message[16:]) is None
        receiving_link._readable()
        assert receiving.batches == [], "nothing may leave before the end of the batch"
        assert datapath.dirty_links == {link}
        datapath.finish()
        receiving_link._readable()
        assert [message for _, message in receiving.received_messages] == messages
        assert {address for address, _ in receiving.received_messages} == {sender.getsockname()}
        assert len(receiving.batches) == 1, "one wake-up's datagrams are one batch"
    finally:
        sender.close()
        receiver.close()


def test_the_batch_is_bounded():
    sender, receiver = loopback_pair()
    link = UdpLink(FakeDatapath(), sender, None)
    try:
        for _ in range(UDP_BATCH_LIMIT + 1):
            link.send(receiver.getsockname(), b"m" * 64)
        assert link.batcher.queued == 1   # the limit forced a send; one waits for the batch's end
    finally:
        sender.close()
        receiver.close()


class CoalescingSocket:
    """Returns what a GRO socket returns: several datagrams in one buffer, their size in a cmsg."""

    def __init__(self, reads):
        self.reads = list(reads)

    def setsockopt(self, *arguments):
        pass

    def recvmsg(self, size, control_size):
        if not self.reads:
            raise BlockingIOError()
        data, segment = self.reads.pop(0)
        ancillary = [(socket.SOL_UDP, UDP_GRO, struct.pack("=i", segment))] if segment else []
        return data, ancillary, 0, A


def test_coalesced_datagrams_are_cut_apart_at_the_reported_size():
    datapath = FakeDatapath()
    link = UdpLink(datapath, CoalescingSocket([(b"a" * 100 + b"b" * 100 + b"c" * 30, 100), (b"plain", 0)]), None)
    link._readable()
    assert [message for _, message in datapath.received_messages] == [b"a" * 100, b"b" * 100, b"c" * 30, b"plain"]


class RefusingSocket:
    """A kernel that will not segment (or a path narrower than a segment): EINVAL on a segmented send."""

    def __init__(self, refusal=22):
        self.refusal = refusal
        self.sent = []

    def setsockopt(self, *arguments):
        pass

    def sendmsg(self, buffers, ancillary, flags, address):
        if ancillary or self.refusal == 105:
            raise OSError(self.refusal, "refused")
        self.sent.append((address, b"".join(buffers)))


def test_a_refused_segmented_send_goes_out_one_by_one_and_gso_stays_off():
    datapath = FakeDatapath()
    link = UdpLink(datapath, RefusingSocket(), None)
    link.gso = True
    for index in range(3):
        link.send(A, bytes([index]) * 100)
    datapath.finish()
    assert link.socket.sent == [(A, bytes([index]) * 100) for index in range(3)]
    assert not link.gso and not datapath.drops.counters.drops
    link.send(A, b"next")          # no GSO now: straight out, nothing left for the batch's end
    assert link.socket.sent[-1] == (A, b"next") and not datapath.dirty_links


def test_a_full_buffer_drops_every_datagram_of_the_batch_and_counts_each():
    datapath = FakeDatapath()
    link = UdpLink(datapath, RefusingSocket(refusal=105), None)   # ENOBUFS
    link.gso = True
    for _ in range(4):
        link.send(A, b"x" * 100)
    datapath.finish()
    assert datapath.drops.counters.drops["tx_queue_full"] == 4 and link.gso
