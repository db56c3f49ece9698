#!/usr/bin/env python3
"""Per-frame cost of the responder with 1 to 10,000 half-open TCP connections, in memory.

A relay with its responder on ``tunrelay.testing``'s memory device and fake clock (no
sockets, no kernel). For each count N, the responder's http listener is given room for N
half-open connections (its SYN queue limit raised, so that none is answered with a SYN
cookie instead), N SYNs from distinct sources are fed straight to the TCP core, and then
two kinds of frame go in through the relay's device path, each followed by the reactor
turn that flushes what it queued (``clock.advance(0)``):

- ``echo``: an ICMP echo request (answered by the interface, no TCP involved);
- ``ack``: a pure ACK on one established connection to the echo service.

Before issue 15 every frame cost a walk over all connections (``next_deadline``), and each
flush another (``poll``); with the timer heap a frame should cost the same at any N.
Run it against another checkout with ``PYTHONPATH=/path/to/checkout``.

    python3 bench/responder_halfopen.py [--frames 2000] [--rounds 3] [--counts 1,100,1000,10000]

Prints a table, then one JSON line.
"""

import argparse
import json
import os
import statistics
import struct
import sys
import time

if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tunrelay.testing import from_device, ipv4_packet, relay_with_responder  # noqa: E402
from tunrelay.wire.checksum import internet_checksum  # noqa: E402
from tunrelay.wire.tcp import ACK, SYN, TcpSegment  # noqa: E402

CLIENT, RESPONDER = "198.51.100.1", "198.51.100.9"
CONFIG = """\
interface: {addresses: [198.51.100.1/24]}
plaintext: true
responder:
  address: 198.51.100.9
  services: {7: echo, 80: http}
"""


def packed(address):
    return bytes(int(part) for part in address.split("."))


def echo_request(sequence):
    body = struct.pack("!BBHHH", 8, 0, 0, 7, sequence & 0xFFFF) + b"x" * 56
    checksum = internet_checksum(body)
    return ipv4_packet(CLIENT, RESPONDER, body[:2] + struct.pack("!H", checksum) + body[4:], protocol=1)


def tcp_packet(source, segment):
    return ipv4_packet(source, RESPONDER, segment.emit(packed(source), packed(RESPONDER)), protocol=6)


def build(count):
    relay = relay_with_responder(CONFIG)
    responder = relay.responder
    responder.tcp._listeners[80].syn_queue_limit = max(count, 1)
    now = relay.clock.seconds()
    for index in range(count):
        source = bytes([198, 18 + index // 65025 % 2, index // 255 % 255 + 1, index % 255 + 1])
        syn = TcpSegment(1024 + index % 60000, 80, index, 0, SYN, 65535, mss=1460)
        responder.tcp.segment_received(source, packed(RESPONDER), syn.emit(source, packed(RESPONDER)), now)
        responder.tcp.pop_outgoing()
    responder._settle()
    half_open = sum(1 for connection in responder.tcp.connections if connection.state == "SYN-RECEIVED")
    assert half_open == count, (half_open, count)
    # One established connection to the echo service, for the ACK frames.
    from_device(relay, tcp_packet(CLIENT, TcpSegment(40000, 7, 1000, 0, SYN, 65535, mss=1460)))
    relay.clock.advance(0)
    synack = TcpSegment.parse(relay.device.written[-1][20:])
    assert synack.flags == SYN | ACK, synack
    ack = tcp_packet(CLIENT, TcpSegment(40000, 7, 1001, (synack.seq + 1) & 0xFFFFFFFF, ACK, 65535))
    from_device(relay, ack)
    relay.clock.advance(0)
    relay.device.written.clear()
    return relay, ack


def per_frame_us(relay, frames):
    clock, device = relay.clock, relay.device
    started = time.process_time()
    for frame in frames:
        from_device(relay, frame)
        clock.advance(0)
    elapsed = time.process_time() - started
    device.written.clear()
    return elapsed / len(frames) * 1e6


def measure(count, frame_count, rounds):
    relay, ack = build(count)
    echoes = [echo_request(index) for index in range(frame_count)]
    acks = [ack] * frame_count
    results = {"echo": [], "ack": []}
    for _ in range(rounds):
        results["echo"].append(per_frame_us(relay, echoes))
        results["ack"].append(per_frame_us(relay, acks))
    replies = relay.responder.interface.stats.get("tx_frames", 0)
    assert replies >= rounds * frame_count, replies       # every echo request was answered
    return {kind: statistics.median(values) for kind, values in results.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--counts", default="1,100,1000,10000")
    arguments = parser.parse_args()
    counts = [int(item) for item in arguments.counts.split(",")]
    rows = {}
    print("%12s %14s %14s" % ("half-open", "echo us/frame", "ack us/frame"))
    for count in counts:
        rows[count] = measure(count, arguments.frames, arguments.rounds)
        print("%12d %14.1f %14.1f" % (count, rows[count]["echo"], rows[count]["ack"]))
    import tunrelay
    print(json.dumps({"benchmark": "responder_halfopen", "tunrelay": os.path.dirname(tunrelay.__file__),
                      "frames": arguments.frames, "rounds": arguments.rounds,
                      "us_per_frame": {str(count): {kind: round(value, 2) for kind, value in row.items()}
                                       for count, row in rows.items()}}))


if __name__ == "__main__":
    main()
