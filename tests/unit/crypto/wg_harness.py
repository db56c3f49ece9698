"""An in-memory network of two WireGuard cores with an injected clock.

``Net`` routes ``Transmit`` events between core ``a`` (source value "A") and core ``b``
("B"); a ``filter`` callable can drop or rewrite datagrams in flight.  ``advance`` moves
time forward deadline by deadline, firing each core's timers exactly when due.
"""

import random

from tunrelay.crypto import keys
from tunrelay.crypto.events import Deliver, PeerConfig, Transmit
from tunrelay.crypto.session import WireGuardCore

START = 1_700_000_000.0


def ipv4_packet(payload=b"hello", ident=1):
    """A minimal IPv4 header (checksum irrelevant to the core) plus ``payload``."""
    total = 20 + len(payload)
    header = bytes([0x45, 0, total >> 8, total & 0xFF, ident >> 8, ident & 0xFF, 0, 0, 64, 17, 0, 0,
                    198, 51, 100, 1, 198, 51, 100, 2])
    return header + payload


class Net:
    def __init__(self, seed=0, stream=False, a_endpoint_known=True, b_endpoint_known=True,
                 persistent_keepalive=0.0, **core_options):
        self.now = START
        seeded = random.Random(seed)
        self.a_private = keys.generate_private_key(seeded.randbytes)
        self.b_private = keys.generate_private_key(seeded.randbytes)
        self.a = WireGuardCore(
            self.a_private,
            [PeerConfig(keys.public_key(self.b_private), endpoint="B" if a_endpoint_known else None,
                        peer_id="b", stream=stream, persistent_keepalive=persistent_keepalive)],
            rng=random.Random(seed + 1).randbytes, jitter=random.Random(seed + 2), **core_options)
        self.b = WireGuardCore(
            self.b_private,
            [PeerConfig(keys.public_key(self.a_private), endpoint="A" if b_endpoint_known else None,
                        peer_id="a", stream=stream)],
            rng=random.Random(seed + 3).randbytes, jitter=random.Random(seed + 4), **core_options)
        self.filter = None  # (sender_name, data) -> data or None to lose it
        self.events = {"A": [], "B": []}  # every non-Transmit event, per core
        self.wire = []  # (sender_name, data) of every datagram put on the wire

    def core(self, name):
        return self.a if name == "A" else self.b

    def pump(self, events, origin):
        queue = [(origin, e) for e in events]
        while queue:
            name, event = queue.pop(0)
            if not isinstance(event, Transmit):
                self.events[name].append(event)
                continue
            self.wire.append((name, event.data))
            data = event.data if self.filter is None else self.filter(name, event.data)
            if data is None:
                continue
            target = "B" if name == "A" else "A"
            queue.extend((target, e) for e in self.core(target).datagram_received(data, name, self.now))

    def send(self, name, frame):
        peer = "b" if name == "A" else "a"
        self.pump(self.core(name).send_frame(peer, frame, self.now), name)

    def advance(self, seconds):
        target = self.now + seconds
        while True:
            deadlines = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
            if not deadlines or min(deadlines) > target:
                break
            self.now = max(self.now, min(deadlines))
            self.pump(self.a.tick(self.now), "A")
            self.pump(self.b.tick(self.now), "B")
        self.now = target

    def delivered(self, name):
        return [e.frame for e in self.events[name] if isinstance(e, Deliver)]

    def of_type(self, name, cls):
        return [e for e in self.events[name] if isinstance(e, cls)]

    def handshake(self):
        self.send("A", ipv4_packet(b"first"))
        assert self.delivered("B") == [ipv4_packet(b"first")]
