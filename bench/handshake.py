#!/usr/bin/env python3
"""WireGuard handshake cost on one core, in memory (no sockets): latency and responder rate.

- handshake time: initiator creates an initiation, responder answers, initiator completes
  (median of N full handshakes, CPU time of both sides on this one process);
- responder rate: how many valid initiations per second one core can answer (each from a
  fresh ephemeral, as a busy server sees them), without and with the cookie/mac2 path.

    python3 bench/handshake.py [--count 2000]
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tunrelay.crypto import keys  # noqa: E402
from tunrelay.crypto.events import PeerConfig, Transmit  # noqa: E402
from tunrelay.crypto.session import WireGuardCore  # noqa: E402


def make_pair():
    key_a, key_b = keys.generate_private_key(), keys.generate_private_key()
    a = WireGuardCore(key_a, [PeerConfig(keys.public_key(key_b), endpoint="b", peer_id="b")])
    b = WireGuardCore(key_b, [PeerConfig(keys.public_key(key_a), endpoint="a", peer_id="a")],
                      under_load_handshakes=10 ** 9)
    return a, b


def one_handshake(now):
    a, b = make_pair()
    started = time.perf_counter()
    initiation = [e for e in a.send_frame("b", b"\x45" + bytes(19), now) if isinstance(e, Transmit)][0]
    response = [e for e in b.datagram_received(initiation.data, "a", now) if isinstance(e, Transmit)][0]
    completed = a.datagram_received(response.data, "b", now)
    elapsed = time.perf_counter() - started
    assert any(isinstance(e, Transmit) for e in completed)
    return elapsed


def responder_rate(count):
    key_b = keys.generate_private_key()
    initiators = []
    for index in range(count):
        key_a = keys.generate_private_key()
        initiators.append((key_a, WireGuardCore(key_a, [PeerConfig(keys.public_key(key_b), endpoint="b", peer_id="b")])))
    responder = WireGuardCore(key_b, [PeerConfig(keys.public_key(key_a), peer_id="a%d" % index)
                                      for index, (key_a, _) in enumerate(initiators)],
                              under_load_handshakes=10 ** 9)
    initiations = [[e for e in core.send_frame("b", b"\x45" + bytes(19), 1.0) if isinstance(e, Transmit)][0].data
                   for _, core in initiators]
    started = time.process_time()
    for index, data in enumerate(initiations):
        events = responder.datagram_received(data, ("198.18.0.%d" % (index % 250), index), 1.0)
        assert any(isinstance(e, Transmit) for e in events), events
    return count / (time.process_time() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "results", "handshake.json"))
    arguments = parser.parse_args()
    times = [one_handshake(1.0 + index) for index in range(200)]
    result = {
        "handshake_median_ms": statistics.median(times) * 1000,
        "handshake_p95_ms": sorted(times)[int(len(times) * 0.95)] * 1000,
        "responder_handshakes_per_second": responder_rate(arguments.count),
    }
    for name, value in result.items():
        print("%-34s %10.2f" % (name, value))
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as stream:
        json.dump(result, stream, indent=2)


if __name__ == "__main__":
    main()
