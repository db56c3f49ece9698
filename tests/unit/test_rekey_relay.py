"""Two encrypted relays on a wire with one step of latency, across rekeys: the data path's
fast sealing, its hand-over to the core when a keypair is due for a rekey, and the previous
keypair opening what was in flight, all driven by the relays' own timers on a fake clock."""

from tunrelay.control.render import render_status
from tunrelay.crypto import keys
from tunrelay.crypto.constants import REKEY_AFTER_TIME
from tunrelay.metrics import render_prometheus
from tunrelay.testing import RelayPair, encrypted_peer_config, from_device, ipv4_packet

KEY_A, KEY_B = keys.generate_private_key(), keys.generate_private_key()
STEP = 0.02


class OneStepWire:
    """What a link sends during one step arrives at the start of the next one."""

    def __init__(self, pair):
        self.in_flight = []
        for link, relay, far_link, address in ((pair.link_a, pair.b, pair.link_b, ("192.0.2.1", 51820)),
                                               (pair.link_b, pair.a, pair.link_a, ("192.0.2.2", 51820))):
            link.deliver = (lambda relay, far_link, address: lambda _, message: self.in_flight.append(
                (relay, far_link, address, message)))(relay, far_link, address)

    def deliver(self):
        arrived, self.in_flight = self.in_flight, []
        for relay, link, address, message in arrived:
            relay.datapath.received(link, [(address, message)])


def test_pings_both_ways_every_20ms_across_two_rekeys_lose_nothing():
    pair = RelayPair(encrypted_peer_config(1, 2, KEY_B), encrypted_peer_config(2, 1, KEY_A), key_a=KEY_A, key_b=KEY_B)
    pair.ping_both_ways()   # the first handshake, A initiating
    wire = OneStepWire(pair)
    sent = {"a": 0, "b": 0}
    written_before = {"a": len(pair.a.device.written), "b": len(pair.b.device.written)}
    steps = int((2 * REKEY_AFTER_TIME + 5) / STEP)
    for step in range(steps):
        for name, source, destination in (("a", "198.51.100.1", "198.51.100.2"), ("b", "198.51.100.2", "198.51.100.1")):
            from_device(getattr(pair, name), ipv4_packet(source, destination, b"%d" % step, protocol=1))
            sent[name] += 1
        pair.clock.advance(STEP)   # the relays' timers (keepalives, retransmits) run on it
        wire.deliver()
    pair.clock.advance(STEP)
    wire.deliver()

    assert len(pair.b.device.written) - written_before["b"] == sent["a"]
    assert len(pair.a.device.written) - written_before["a"] == sent["b"]
    for relay in (pair.a, pair.b):
        state = relay.snapshot()
        peer = state["peers"][0]
        assert peer["drops"] == {} and state["drops"] == {}
        assert (peer["handshakes"], peer["rekeys"]) == (3, 2)
        assert "  handshakes: 3 (2 rekeys)\n" in render_status(state, pair.clock.seconds())
        assert 'tunrelay_peer_rekeys_total{peer="%s"} 2\n' % peer["name"] in render_prometheus(
            state, pair.clock.seconds())
