#!/usr/bin/env python3
"""Per-packet cost of the data path in memory, crypto included: no sockets, no device, no kernel.

Two encrypted relays (tun, the default configuration) share an established session. Then:

- outbound: batches of ``--batch`` device frames (virtio-net header + an IPv4/TCP segment of
  one flow, ``--size`` bytes of IP packet) go through ``Datapath.from_device``: route lookup,
  seal, queue on a link that only counts;
- inbound: the messages that produced go through the other relay's ``Datapath.received`` in
  the same batches: index, decrypt, replay window, source check, coalescing, and a device
  that only counts writes.

Each figure is the best of ``--rounds`` rounds of ``--packets`` packets, in microseconds per
packet, beside the bare ChaCha20-Poly1305 seal and open of the same plaintext size (what no
Python glue could remove). The last line is one JSON object with every figure.

    python3 bench/datapath.py [--packets 20000] [--batch 64] [--rounds 5] [--size 1400]
"""

import argparse
import json
import os
import sys
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402
from scapy.layers.inet import IP, TCP  # noqa: E402

from tunrelay.crypto import keys  # noqa: E402
from tunrelay.datapath.vnet import PLAIN_HEADER  # noqa: E402
from tunrelay.testing import RelayPair  # noqa: E402

KEY_A, KEY_B = keys.generate_private_key(), keys.generate_private_key()


def config(own, peer, peer_key):
    return textwrap.dedent("""\
        interface: {name: tr0, mtu: 1420, addresses: [198.51.100.%d/24]}
        private_key_file: unused.key
        peers:
          - {name: peer, public_key: "%s", endpoint: "udp://192.0.2.%d:51820", allowed_ips: [198.51.100.%d/32]}
        """) % (own, keys.encode_key(keys.public_key(peer_key)), peer, peer)


class CountingLink:
    kind = "udp"

    def __init__(self):
        self.messages = []
        self.keep = True

    def describe(self, address):
        return "udp://bench"

    def send(self, address, *parts):
        if self.keep:
            self.messages.append(b"".join(parts))
        return None

    def flush(self):
        pass

    def close_path(self, address):
        pass


class CountingDevice:
    vnet, super_packets = True, False

    def __init__(self):
        self.writes = 0
        self.buffers = 0

    def write_many(self, writes):
        self.writes += len(writes)
        self.buffers += sum(len(write) for write in writes)
        return []


def frames(count, size, start):
    payload = size - 40
    template = bytes(IP(src="198.51.100.1", dst="198.51.100.2") /
                     TCP(sport=40000, dport=5201, seq=0, ack=1, flags="A") / bytes(payload))
    result = []
    for index in range(count):
        packet = bytearray(template)
        seq = (start + index) * payload
        packet[24:28] = (seq & 0xFFFFFFFF).to_bytes(4, "big")
        packet[36:38] = b"\x00\x00"
        fresh = IP(bytes(packet))
        fresh[TCP].chksum = None
        result.append(PLAIN_HEADER + bytes(IP(bytes(fresh))))
    return result


def setup():
    pair = RelayPair(config(1, 2, KEY_B), config(2, 1, KEY_A), key_a=KEY_A, key_b=KEY_B)
    pair.ping_both_ways()
    a, b = pair.a, pair.b
    link_a, link_b = CountingLink(), CountingLink()
    link_b.keep = False
    a.sessions.path_known(a.peers["peer"], link_a, ("192.0.2.2", 51820))
    a.peers["peer"].wg.endpoint = (link_a, ("192.0.2.2", 51820))
    b.peers["peer"].wg.endpoint = (link_b, ("192.0.2.1", 51820))
    device = CountingDevice()
    b.datapath.attach_device(device)
    return a, b, link_a, link_b, device


def run(arguments):
    a, b, link_a, link_b, device = setup()
    batch = arguments.batch
    batches = max(1, arguments.packets // batch)
    outbound = inbound = float("inf")
    start = 0
    for _ in range(arguments.rounds):
        work = [frames(batch, arguments.size, start + i * batch) for i in range(batches)]
        start += batches * batch
        link_a.messages = []
        began = time.perf_counter()
        for frames_batch in work:
            a.datapath.from_device(frames_batch)
        outbound = min(outbound, (time.perf_counter() - began) / (batches * batch))
        messages = link_a.messages
        source = ("192.0.2.1", 51820)
        grouped = [[(source, m) for m in messages[i:i + batch]] for i in range(0, len(messages), batch)]
        writes_before = device.writes
        began = time.perf_counter()
        for message_batch in grouped:
            b.datapath.received(link_b, message_batch)
        inbound = min(inbound, (time.perf_counter() - began) / len(messages))
        writes = device.writes - writes_before
    aead = ChaCha20Poly1305(os.urandom(32))
    plaintext = bytes(arguments.size + (-arguments.size % 16))
    nonce = bytes(12)
    ciphertext = aead.encrypt(nonce, plaintext, None)
    count = 20000
    began = time.perf_counter()
    for _ in range(count):
        aead.encrypt(nonce, plaintext, None)
    seal = (time.perf_counter() - began) / count
    began = time.perf_counter()
    for _ in range(count):
        aead.decrypt(nonce, ciphertext, None)
    open_ = (time.perf_counter() - began) / count
    drops = dict(b.drops.counters.drops)
    drops.update(b.peers["peer"].counters.drops)
    return {"size": arguments.size, "batch": batch, "packets_per_round": batches * batch, "rounds": arguments.rounds,
            "outbound_us": outbound * 1e6, "inbound_us": inbound * 1e6,
            "seal_only_us": seal * 1e6, "open_only_us": open_ * 1e6,
            "outbound_glue_us": (outbound - seal) * 1e6, "inbound_glue_us": (inbound - open_) * 1e6,
            "device_writes_last_round": writes, "packets_per_device_write": len(messages) / max(1, writes),
            "drops": drops}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=1400, help="IP packet size (default 1400)")
    arguments = parser.parse_args()
    result = run(arguments)
    print("%d-byte packets, batches of %d, best of %d rounds of %d:" % (
        result["size"], result["batch"], result["rounds"], result["packets_per_round"]))
    print("  outbound %.2f us/packet (seal alone %.2f, glue %.2f)" % (
        result["outbound_us"], result["seal_only_us"], result["outbound_glue_us"]))
    print("  inbound  %.2f us/packet (open alone %.2f, glue %.2f); %.1f packets per device write" % (
        result["inbound_us"], result["open_only_us"], result["inbound_glue_us"], result["packets_per_device_write"]))
    if result["drops"]:
        print("  DROPS: %s" % result["drops"])
    print(json.dumps(result))
    return 1 if result["drops"] else 0


if __name__ == "__main__":
    sys.exit(main())
