"""Rekeys under a steady flow, on an injected clock: nothing lost, nothing refused, counted.

The wire here has latency and jitter, so packets sealed under the old keypair are still in
flight (and overtaken) when each side switches to the new one: the previous keypair must
still open them, and the responder must not seal with its new keypair before the initiator
has confirmed it (whitepaper §5.4.7, §6.1).
"""

import random

from wg_harness import Net, ipv4_packet
from tunrelay.crypto.constants import REKEY_AFTER_TIME
from tunrelay.crypto.events import Drop, HandshakeComplete

STEP = 0.02   # a packet each way every 20 ms


class LatentWire:
    """Delivers each datagram ``latency`` ± ``jitter`` seconds after it was sent (so, reordered)."""

    def __init__(self, net, latency=0.03, jitter=0.02, seed=5):
        self.net = net
        self.latency = latency
        self.jitter = jitter
        self.random = random.Random(seed)
        self.in_flight = []   # (due, sequence, sender, data)
        self._sequence = 0
        self.opened_by_previous = {"A": 0, "B": 0}   # data that arrived under the receiver's previous keypair
        net.filter = self._hold

    def _hold(self, sender, data):
        due = self.net.now + self.latency + self.random.uniform(-self.jitter, self.jitter)
        self._sequence += 1
        self.in_flight.append((due, self._sequence, sender, data))
        return None

    def deliver_due(self):
        net = self.net
        while True:
            due = sorted(item for item in self.in_flight if item[0] <= net.now)
            if not due:
                return
            for item in due:
                self.in_flight.remove(item)
                _, _, sender, data = item
                target = "B" if sender == "A" else "A"
                previous = net.core(target).peer_handle(sender.lower()).previous
                if data[0] == 4 and previous is not None and remote_index(data) == previous.local_index:
                    self.opened_by_previous[target] += 1
                net.pump(net.core(target).datagram_received(data, sender, net.now), target)


def run_flow(net, wire, seconds, sent):
    """Both sides send one numbered frame every STEP for ``seconds``; the wire carries them."""
    for _ in range(int(round(seconds / STEP))):
        for name in ("A", "B"):
            frame = ipv4_packet(b"%s %d" % (name.encode(), len(sent[name])), ident=len(sent[name]) & 0xFFFF)
            sent[name].append(frame)
            net.send(name, frame)
        net.advance(STEP)
        wire.deliver_due()
    net.advance(1.0)   # the last packets land
    wire.deliver_due()


def remote_index(datagram):
    return int.from_bytes(datagram[4:8], "little")


def test_a_flow_across_two_rekeys_loses_nothing_and_counts_them():
    net = Net(seed=3)
    net.handshake()   # A initiates (a simultaneous first initiation is another test's subject)
    wire = LatentWire(net)
    sent = {"A": [], "B": []}
    run_flow(net, wire, 2 * REKEY_AFTER_TIME + 10, sent)

    assert sorted(net.delivered("B")[1:]) == sorted(sent["A"])
    assert sorted(net.delivered("A")) == sorted(sent["B"])
    assert net.of_type("A", Drop) == [] and net.of_type("B", Drop) == []
    assert net.a.drops == {} and net.b.drops == {}
    # The first handshake and two rekeys, seen from both sides; A (the initiator) rekeyed on time.
    for core, peer in ((net.a, "b"), (net.b, "a")):
        status = core.peer_status(peer)
        assert (status["handshakes"], status["rekeys"]) == (3, 2)
    assert [event.rekey for event in net.of_type("A", HandshakeComplete)] == [False, True, True]
    assert [event.rekey for event in net.of_type("B", HandshakeComplete)] == [False, True, True]
    # The switch really had packets in flight: both sides received some under the keypair
    # they had just retired, and delivered them (the assertions above).
    assert wire.opened_by_previous["A"] > 0 and wire.opened_by_previous["B"] > 0, wire.opened_by_previous


def test_the_responder_seals_with_its_new_keypair_only_after_confirmation():
    net = Net(seed=4)
    net.handshake()
    net.send("B", ipv4_packet(b"on the first keys"))
    first_current = net.b.peer_handle("a").current
    net.advance(REKEY_AFTER_TIME + 1)
    # A's rekey initiation reaches B; hold B's response so that A cannot confirm yet.
    held = []
    net.filter = lambda sender, data: held.append((sender, data)) or None if sender == "B" else data
    net.send("A", ipv4_packet(b"triggers the rekey"))
    peer_b = net.b.peer_handle("a")
    assert peer_b.next is not None and peer_b.current is first_current
    net.send("B", ipv4_packet(b"still the old keys"))
    sealed = [data for sender, data in held if data[0] == 4]
    assert [remote_index(data) for data in sealed] == [first_current.remote_index]
    net.filter = None
    for sender, data in held:   # the response, then the data sealed under the old keys
        net.pump(net.a.datagram_received(data, sender, net.now), "A")
    assert net.delivered("A")[-1] == ipv4_packet(b"still the old keys")   # A's previous keypair opened it
    # A confirmed the new keys (its keepalive): B now seals with them and counts the rekey.
    assert peer_b.current is not first_current and peer_b.previous is first_current
    assert net.b.peer_status("a")["rekeys"] == 1
    net.send("B", ipv4_packet(b"new keys"))
    assert net.delivered("A")[-1] == ipv4_packet(b"new keys")
    assert net.a.drops == {} and net.b.drops == {}


def test_a_handshake_after_the_keys_were_wiped_is_not_a_rekey(net):
    net.handshake()
    net.advance(1.0)
    net.a.forget_sessions("b")
    net.send("A", ipv4_packet(b"again"))
    assert net.delivered("B")[-1] == ipv4_packet(b"again")
    assert (net.a.peer_status("b")["handshakes"], net.a.peer_status("b")["rekeys"]) == (2, 0)
    assert [event.rekey for event in net.of_type("A", HandshakeComplete)] == [False, False]
    # B still held the first session when A's new handshake replaced it: for B it is a rekey.
    assert (net.b.peer_status("a")["handshakes"], net.b.peer_status("a")["rekeys"]) == (2, 1)
