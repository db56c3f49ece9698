"""PeerReach carries out an endpoint list's choice on a real Relay, with memory links and a fake clock."""

from twisted.internet.task import Clock

from tunrelay.crypto import keys
from tunrelay.endpoint_choice import FAILOVER_AFTER, PROBE_INITIAL
from tunrelay.reach import PeerReach
from tunrelay.testing import MemoryLink, relay_from_yaml

OWN, OTHER = keys.generate_private_key(), keys.generate_private_key()


class FakeUdpSockets:
    def __init__(self):
        self.link = MemoryLink("udp", "udp")

    def link_for(self, family):
        return self.link


def reach_for(endpoints):
    text = ("interface: {name: tr0, addresses: [198.51.100.1/24]}\nprivate_key_file: unused.key\n"
            "peers:\n  - name: b\n    public_key: \"%s\"\n    endpoint: [%s]\n    allowed_ips: [198.51.100.2/32]\n"
            % (keys.encode_key(keys.public_key(OTHER)), ", ".join(endpoints)))
    clock = Clock()
    relay = relay_from_yaml(text, clock, OWN)
    udp = FakeUdpSockets()
    reach = PeerReach(relay, udp, clock, {})
    peer = relay.peers["b"]
    reach.add(peer)          # not started: TCP clients are recorded, never dialled
    reach.connect_datagram(peer)
    return clock, relay, udp, reach, peer


def silent_turns(clock, reach, peer, seconds):
    """We keep sending and hear nothing, a turn a second."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        peer.last_sent = clock.seconds()
        reach._check_choice(peer, clock.seconds())


def test_two_udp_endpoints_on_one_port_are_told_apart():
    clock, relay, udp, reach, peer = reach_for(["udp://192.0.2.1:51820", "udp://198.18.0.1:51820"])
    assert peer.active_path == (udp.link, ("192.0.2.1", 51820))
    silent_turns(clock, reach, peer, FAILOVER_AFTER)
    assert peer.endpoint_choice.index == 1 and peer.active_path == (udp.link, ("198.18.0.1", 51820))
    # The second one works: authenticated traffic from it, turn after turn.
    for _ in range(10):
        clock.advance(1.0)
        peer.last_received = peer.last_sent = clock.seconds()
        reach._check_choice(peer, clock.seconds())
    assert peer.endpoint_choice.index == 1, peer.endpoint_choice.reason
    assert peer.active_path == (udp.link, ("198.18.0.1", 51820))


def test_only_the_endpoint_in_use_and_better_ones_being_probed_are_dialled():
    clock, relay, udp, reach, peer = reach_for(
        ["udp://192.0.2.1:51820", "tcp://192.0.2.1:443", "tcp://192.0.2.1:80"])
    silent_turns(clock, reach, peer, FAILOVER_AFTER)          # udp -> tcp:443
    assert list(reach.clients["b"]) == [peer.config.endpoints[1]]
    silent_turns(clock, reach, peer, FAILOVER_AFTER)          # tcp:443 -> tcp:80
    assert peer.endpoint_choice.index == 2
    assert list(reach.clients["b"]) == [peer.config.endpoints[2]]
    silent_turns(clock, reach, peer, PROBE_INITIAL - 1)       # tcp:80 in use; probes start
    for _ in range(3):
        clock.advance(1.0)
        peer.last_received = peer.last_sent = clock.seconds()
        reach._check_choice(peer, clock.seconds())
    assert peer.config.endpoints[1] in reach.clients["b"]     # probed by dialling it
    silent_turns(clock, reach, peer, FAILOVER_AFTER + 1)      # tcp:80 fails: round to udp
    assert peer.endpoint_choice.index == 0
    assert reach.clients["b"] == {}, reach.clients["b"]


def test_a_probe_to_a_better_udp_endpoint_leaves_the_session_and_path_alone():
    clock, relay, udp, reach, peer = reach_for(["udp://192.0.2.1:51820", "udp://198.18.0.1:51820"])
    silent_turns(clock, reach, peer, FAILOVER_AFTER)
    in_use = peer.active_path
    udp.link.sent.clear()
    for _ in range(int(PROBE_INITIAL) + 1):
        clock.advance(1.0)
        peer.last_received = peer.last_sent = clock.seconds()
        reach._check_choice(peer, clock.seconds())
    initiations = [address for address, message in udp.link.sent if message[0] == 1]
    # The probe, and (the far side being silent here) the core's own retries where it sends.
    assert initiations.count(("192.0.2.1", 51820)) == 1
    assert set(initiations) <= {("192.0.2.1", 51820), in_use[1]}
    assert peer.active_path == in_use and relay.sessions.core.peer_status(peer)["endpoint"] == in_use
