#!/usr/bin/env python3
"""Forwarding cost against the number of peers, in memory (no sockets, no device).

For 1, 100 and 1000 configured peers (plaintext tun; one /32 per peer plus a few shorter
prefixes shared by every size, so the prefix lengths probed are the same everywhere):

- lookup: ``relay.routes.lookup`` alone, to a random peer's /32 and to an address only a
  shorter prefix covers (the longest probe chain), ns/op;
- device_frame: the whole send path (``Datapath.from_device``, batches of 64) per 84-byte IPv4 packet to a
  random peer, through to ``MemoryLink.send``, ns/op; and the same with every packet to
  one peer (separates per-peer work from the cache cost of touching many peers' objects);
- memory: bytes still allocated (tracemalloc) after building the relay from YAML and
  giving every peer a path, and the peak while building.

Times are the best of several repeats of many iterations (``time.perf_counter``), the
repeats interleaving the sizes; the bare Python loop's own cost is reported separately (not
subtracted). ``calls/frame`` counts the Python and C calls one packet's batch of one makes: the
same number at every size means the path does no per-peer work, whatever the timing noise.

    python3 bench/scale.py [--iterations 200000] [--repeats 5]
"""

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tunrelay.datapath.vnet import PLAIN_HEADER  # noqa: E402
from tunrelay.testing import MemoryLink, from_device, ipv4_packet, relay_from_yaml  # noqa: E402

SIZES = (1, 100, 1000)
OWN_ADDRESS = "198.51.100.254"
# Shorter prefixes, assigned to peers by position (first, middle, last), nested on purpose.
SHORT_PREFIXES = (("198.19.0.0/16", 0), ("203.0.113.0/24", 0), ("203.0.113.0/25", 1), ("203.0.113.64/26", 2))
SHORT_ONLY_ADDRESS = "203.0.113.200"   # covered by 203.0.113.0/24 only: misses /32, /26, /25 first


def peer_overlay(index):
    """Peer i's /32, inside 198.19.0.0/16 (RFC 2544 benchmarking space)."""
    return "198.19.%d.%d" % (index // 250, index % 250 + 1)


def peer_underlay(index):
    return "198.18.%d.%d" % (index // 250, index % 250 + 1)


def config_text(count):
    owners = {0: 0, 1: count // 2, 2: count - 1}
    extra = {}
    for prefix, position in SHORT_PREFIXES:
        extra.setdefault(owners[position], []).append(prefix)
    lines = ["interface: {name: tr0, mode: tun, mtu: 1420, addresses: [%s/24]}" % OWN_ADDRESS,
             "plaintext: true", "peers:"]
    for index in range(count):
        allowed = ["%s/32" % peer_overlay(index)] + extra.get(index, [])
        lines.append("  - {name: p%d, endpoint: 'udp://%s:51820', allowed_ips: [%s]}" % (
            index, peer_underlay(index), ", ".join(allowed)))
    return "\n".join(lines) + "\n"


def build(text, count):
    relay = relay_from_yaml(text)
    link = MemoryLink("udp", "bench")
    for index in range(count):
        relay.sessions.path_known(relay.peers["p%d" % index], link, (peer_underlay(index), 51820))
    return relay, link


def memory_of(text, count):
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    relay, link = build(text, count)
    gc.collect()
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return relay, link, retained - before, peak - before


def calls_per_frame(relay, packet):
    """Python function calls one ``device_frame`` makes: a noise-free check that the path
    does the same work whatever the number of peers."""
    calls = []
    sys.setprofile(lambda frame, event, argument: calls.append(1) if event in ("call", "c_call") else None)
    try:
        from_device(relay, packet)
    finally:
        sys.setprofile(None)
    return len(calls) - 1   # the setprofile(None) call itself


class Case:
    """One configuration: the relay, its link and the random workload, built once."""

    def __init__(self, count, iterations, seed):
        self.count = count
        relay, link, self.retained, self.peak = memory_of(config_text(count), count)
        self.relay, self.link = relay, link
        rng = random.Random(seed)
        self.targets = [rng.randrange(count) for _ in range(iterations)]
        self.addresses = [int.from_bytes(bytes(map(int, peer_overlay(i).split("."))), "big") for i in self.targets]
        self.short_only = [int.from_bytes(bytes(map(int, SHORT_ONLY_ADDRESS.split("."))), "big")] * iterations
        packets_by_peer = {i: ipv4_packet(OWN_ADDRESS, peer_overlay(i), bytes(64)) for i in set(self.targets)}
        self.packets = [packets_by_peer[i] for i in self.targets]
        self.one_peer = [ipv4_packet(OWN_ADDRESS, peer_overlay(0), bytes(64))] * iterations
        # Correctness first: every lookup finds the intended peer.
        peers = relay.peers
        assert all(relay.routes.lookup(4, a) is peers["p%d" % i] for a, i in zip(self.addresses[:5000], self.targets))
        assert relay.routes.lookup(4, self.short_only[0]) is peers["p0"]
        self.calls = calls_per_frame(relay, self.packets[0])
        link.sent.clear()
        self.best = {}

    def timings(self):
        lookup, link = self.relay.routes.lookup, self.link
        from_device_batch = self.relay.datapath.from_device
        header = PLAIN_HEADER if self.relay.datapath.device_vnet else b""
        batches = {}

        def framed(items):
            # The device's reads, 64 to a batch as one wake-up delivers them, made once per workload.
            if id(items) not in batches:
                frames = [header + packet for packet in items]
                batches[id(items)] = [frames[i:i + 64] for i in range(0, len(frames), 64)]
            return batches[id(items)]

        def empty_loop(items):
            for address in items:
                pass

        def lookups(items):
            for address in items:
                lookup(4, address)

        def frames(items):
            link.sent.clear()
            for batch in framed(items):
                from_device_batch(batch)

        return (("python_loop", empty_loop, self.addresses), ("lookup", lookups, self.addresses),
                ("lookup_short_prefix", lookups, self.short_only), ("device_frame", frames, self.packets),
                ("device_frame_one_peer", frames, self.one_peer))

    def run_once(self):
        for name, function, items in self.timings():
            started = time.perf_counter()
            function(items)
            ns = (time.perf_counter() - started) * 1e9 / len(items)
            self.best[name] = min(self.best.get(name, float("inf")), ns)

    def run_frames_checked(self):
        """The random workload once more, checking every packet went to its peer's path."""
        self.link.sent.clear()
        for packet in self.packets:
            from_device(self.relay, packet)
        sent = self.link.sent
        assert len(sent) == len(self.packets)
        assert all(address == (peer_underlay(i), 51820) for (address, _), i in zip(sent, self.targets))
        self.link.sent.clear()

    def row(self):
        relay, link = self.relay, self.link
        sent = link.sent
        assert len(sent) == len(self.one_peer) and not relay.drops.counters.drops, relay.drops.counters.drops
        assert all(address == (peer_underlay(0), 51820) for address, _ in sent)
        link.sent.clear()
        self.run_frames_checked()
        return {
            "peers": self.count,
            "prefix_lengths_in_use": list(relay.routes._families[4].lengths),
            "lookup_ns_per_op": round(self.best["lookup"], 1),
            "lookup_short_prefix_ns_per_op": round(self.best["lookup_short_prefix"], 1),
            "device_frame_ns_per_op": round(self.best["device_frame"], 1),
            "device_frame_one_peer_ns_per_op": round(self.best["device_frame_one_peer"], 1),
            "python_loop_ns_per_op": round(self.best["python_loop"], 1),
            "python_calls_per_device_frame": self.calls,
            "memory_retained_bytes": self.retained,
            "memory_peak_bytes": self.peak,
        }


def measure_all(iterations, repeats, seed):
    """Repeats interleave the sizes, so a burst of load on the machine hits all of them alike."""
    cases = [Case(count, iterations, seed) for count in SIZES]
    gc.disable()
    try:
        for _ in range(repeats):
            for case in cases:
                case.run_once()
    finally:
        gc.enable()
    return [case.row() for case in cases]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "results", "scale.json"))
    arguments = parser.parse_args()
    rows = measure_all(arguments.iterations, arguments.repeats, arguments.seed)
    base = rows[0]["memory_retained_bytes"]
    for row in rows[1:]:
        row["memory_bytes_per_extra_peer"] = round((row["memory_retained_bytes"] - base) / (row["peers"] - 1))

    header = ("peers", "lookup ns", "lookup short ns", "frame ns", "frame 1-peer ns", "calls/frame", "loop ns",
              "retained KiB", "peak KiB", "B/extra peer")
    print("%6s %10s %16s %9s %16s %12s %8s %13s %10s %13s" % header)
    for row in rows:
        print("%6d %10.1f %16.1f %9.1f %16.1f %12d %8.1f %13.1f %10.1f %13s" % (
            row["peers"], row["lookup_ns_per_op"], row["lookup_short_prefix_ns_per_op"],
            row["device_frame_ns_per_op"], row["device_frame_one_peer_ns_per_op"], row["python_calls_per_device_frame"], row["python_loop_ns_per_op"],
            row["memory_retained_bytes"] / 1024,
            row["memory_peak_bytes"] / 1024, row.get("memory_bytes_per_extra_peer", "-")))
    result = {"python": platform.python_version(), "iterations": arguments.iterations,
              "repeats": arguments.repeats, "seed": arguments.seed, "rows": rows}
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as stream:
        json.dump(result, stream, indent=2)
        stream.write("\n")


if __name__ == "__main__":
    main()
