#!/usr/bin/env python3
"""A hub with N live WireGuard peers: a real ``twistd tunrelay`` hub against N emulated spokes.

Two namespaces joined by a veth (the integration tests' lab): the hub H at 192.0.2.1 listens
on udp://192.0.2.1:51820 and knows N peers (each a public key and one overlay address,
``forward_between_peers`` on, the default); the generator G at 192.0.2.2 runs
``bench/hub_swarm.py``'s N emulated peers in this one process, each with its own key and UDP
socket (port 20000+i) and, unless ``--hosts`` says fewer, its own source address out of
198.18.0.0/16 (an AnyIP route on G's loopback; H routes 198.18.0.0/15 to G).

Overlay addresses: with ``--family 4`` (up to 507 peers) 198.51.100.2-254, then
203.0.113.1-254, one /32 each; with ``--family 6`` (the default; any N) 2001:db8:100::i+2/128.

Phases, for each N of ``--peers``:

1. handshakes: every peer's initiation is made first, then all are sent back to back. The
   time until all are established and handshakes/s (established / time to the last) are the
   generator's; a hub under load answers with cookie replies, which the generator counts,
   and its cores retransmit REKEY_TIMEOUT later with mac2 (initiations with a non-zero mac2
   are counted too); the hub's ``drops.cookie_required`` (status) is the cookies it sent;
2. traffic: every peer sends ``--payload``-byte UDP packets to the next peer's overlay address
   through the hub, closed loop (``--per-peer`` in flight each, ``--window`` in all); after
   ``--warmup`` seconds, ``--seconds`` are measured: the hub's forwarding rate (packets and
   IP bytes delivered to the generator per second), and per peer the packets delivered to it
   and from it, with their max/min ratio (target <= 3: nobody starved);
3. the hub's RSS (VmRSS, and VmHWM) and CPU (utime+stime from /proc/PID/stat) per phase, the
   generator's own CPU (if it is near one CPU, the generator may be the limit), the load
   average before and after.

Targets (issue 14): all established within 30 s, hub RSS <= 150 MB, max/min ratio <= 3.
Needs root, ``ip``, ``twistd`` (and ``py-spy`` for ``--py-spy DIR``, which records the hub's
profile over the whole run as collapsed stacks, flamegraph.pl's input, summarised in the JSON).

Prints a table, then the figures as one JSON line (also written to ``--output``).

    sudo python3 bench/hub_load.py --peers 10,100,1000 [--seconds 10] [--family 6]
"""

import argparse
import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH))
sys.path.insert(0, BENCH)

from compare import busy_cpus, cpu_seconds, status_kib  # noqa: E402
from hub_swarm import Swarm  # noqa: E402
from tests.integration.netns import Lab, read_log  # noqa: E402
from tests.integration.test_hub_and_spoke import status as relay_status  # noqa: E402
from tests.integration.test_two_hosts import write_key_file  # noqa: E402
from tunrelay.crypto import keys  # noqa: E402
from tunrelay.wire.ipv4 import Ipv4Header  # noqa: E402
from tunrelay.wire.ipv6 import Ipv6Header  # noqa: E402
from tunrelay.wire.udp import PROTO_UDP, UdpHeader  # noqa: E402

HUB_UNDERLAY, HUB_PORT = "192.0.2.1", 51820
GENERATOR_UNDERLAY = "192.0.2.2"
SOURCE_NETWORK = "198.18.0.0/16"     # the emulated peers' underlay addresses (AnyIP on G)
FIRST_PEER_PORT = 20000
MAX_IPV4_PEERS = 253 + 254
TARGETS = {"established_seconds": 30.0, "hub_rss_mib": 150.0, "ratio": 3.0}
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


# --- addresses and packets -------------------------------------------------------------

def overlay_address(family, index):
    """Peer ``index``'s overlay address (the hub is .1 / ::1)."""
    if family == 6:
        return "2001:db8:100::%x" % (index + 2)
    return "198.51.100.%d" % (index + 2) if index < 253 else "203.0.113.%d" % (index - 253 + 1)


def hub_overlay(family):
    return "2001:db8:100::1/64" if family == 6 else "198.51.100.1/24"


def source_address(index, hosts):
    host = index % hosts
    return "198.18.%d.%d" % (host // 250, host % 250 + 1)


def packet(family, source, destination, sender, payload_size):
    """An IP/UDP packet whose payload starts with the sender's index; (packet, index offset)."""
    payload = sender.to_bytes(4, "big") + bytes(max(0, payload_size - 4))
    source, destination = ipaddress.ip_address(source).packed, ipaddress.ip_address(destination).packed
    datagram = UdpHeader(40000, 40001).emit(payload, source, destination)
    header = Ipv6Header(source, destination, PROTO_UDP) if family == 6 else Ipv4Header(source, destination, PROTO_UDP)
    return header.emit(datagram), (40 if family == 6 else 20) + 8


# --- namespaces, the hub -----------------------------------------------------------------

def _setns(descriptor):
    if _libc.setns(descriptor, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, "setns: %s" % os.strerror(error))


@contextlib.contextmanager
def network_namespace(name):
    """Run the block in namespace ``name`` (this thread only); sockets made there stay there."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open("/var/run/netns/%s" % name, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def peer_sockets(count, hosts):
    sockets = []
    for index in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((source_address(index, hosts), FIRST_PEER_PORT + index))
        sock.connect((HUB_UNDERLAY, HUB_PORT))
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def hub_config(directory, hub_key, public_keys, family):
    key_file = write_key_file(os.path.join(directory, "hub.key"), hub_key)
    host_bits = "/128" if family == 6 else "/32"
    return {"interface": {"name": "tr0", "mode": "tun", "mtu": 1420, "addresses": [hub_overlay(family)]},
            "private_key_file": key_file, "listen": ["udp://%s:%d" % (HUB_UNDERLAY, HUB_PORT)],
            "peers": [{"name": "p%d" % index, "public_key": keys.encode_key(public),
                       "allowed_ips": [overlay_address(family, index) + host_bits]}
                      for index, public in enumerate(public_keys)]}


class HubProcess:
    """What /proc says about the hub: CPU seconds and RSS, sampled at phase boundaries."""

    def __init__(self, pid):
        self.pid = pid
        self.marks = {}

    def mark(self, name):
        self.marks[name] = {"cpu_seconds": cpu_seconds(self.pid), "rss_kib": status_kib(self.pid, "VmRSS"),
                            "hwm_kib": status_kib(self.pid, "VmHWM"), "time": time.monotonic()}

    def cpu(self, start, end):
        return self.marks[end]["cpu_seconds"] - self.marks[start]["cpu_seconds"]


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_profile(directory, pid):
    """py-spy recording the hub until stopped (SIGINT makes it write the collapsed stacks)."""
    path = os.path.join(directory, "hub-%d.txt" % pid)
    process = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "50", "--format", "raw",
                                "--output", path, "--nonblocking"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1.0)   # let it attach before the burst starts
    return process, path


def profile_summary(path, top=15):
    """The functions the hub spent most samples in: by self time (leaf frames), and tunrelay's
    own functions inclusive of what they call."""
    own, inclusive, total = {}, {}, 0
    with open(path) as stream:
        for line in stream:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count)
            total += count
            frames = [frame.rsplit(":", 1)[0] + ")" if ":" in frame else frame for frame in stack.split(";")]
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for frame in set(frame for frame in frames if "tunrelay/" in frame):
                inclusive[frame] = inclusive.get(frame, 0) + count

    def ranked(table):
        return [[frame, round(100.0 * count / total, 1)]
                for frame, count in sorted(table.items(), key=lambda item: -item[1])[:top]]
    return {"samples": total, "self_percent": ranked(own), "inclusive_percent": ranked(inclusive)} if total else {}


def stop_profile(process):
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=60)[0].decode(errors="replace")[-500:]
    except subprocess.TimeoutExpired:
        process.kill()
        return "py-spy did not finish"


# --- one measurement ---------------------------------------------------------------------

def ratio(counts):
    low, high = min(counts), max(counts)
    return high / low if low else None


def handshake_figures(swarm, started, hub_status):
    times = sorted(peer.established_at - started for peer in swarm.peers if peer.established_at is not None)
    count = len(swarm.peers)
    all_established = len(times) == count
    last = times[-1] if times else None
    drops = hub_status["drops"]
    retry = swarm.first_mac2_at
    retried = [peer.established_at - retry for peer in swarm.peers
               if retry is not None and peer.established_at is not None and peer.established_at >= retry]
    return {
        "established": len(times), "all_established": all_established,
        "established_seconds": last if all_established else None,
        "first_established_seconds": times[0] if times else None,
        "median_established_seconds": times[len(times) // 2] if times else None,
        "handshakes_per_second": len(times) / last if last else None,
        "hub_established": sum(1 for peer in hub_status["peers"] if peer["session"] == "established"),
        "initiations_sent": sum(peer.initiations for peer in swarm.peers),
        "initiations_with_mac2": sum(peer.mac2_initiations for peer in swarm.peers),
        "cookies_received": sum(peer.cookies for peer in swarm.peers),
        "peers_given_cookies": sum(1 for peer in swarm.peers if peer.cookies),
        "hub_cookies_sent": drops.get("cookie_required", 0),
        # The cookie round: the peers sent away with a cookie retry REKEY_TIMEOUT later, with mac2.
        "established_before_retry": len(times) - len(retried),
        "first_mac2_seconds": retry - started if retry is not None else None,
        "retry_wave_seconds": max(retried) if retried else None,
        "retry_wave_handshakes_per_second": len(retried) / max(retried) if retried and max(retried) else None,
        "hub_rate_limited": drops.get("rate_limited", 0),
        "hub_handshake_drops": {reason: value for reason, value in drops.items()
                                if reason not in ("cookie_required",)},
    }


def traffic_figures(swarm, before, after):
    seconds = after["time"] - before["time"]
    to_peer = [b - a for a, b in zip(before["delivered_to"], after["delivered_to"])]
    from_peer = [b - a for a, b in zip(before["delivered_from"], after["delivered_from"])]
    delivered = sum(to_peer)
    return {
        "measured_seconds": seconds, "delivered": delivered, "offered": after["sent"] - before["sent"],
        "lost": after["lost"] - before["lost"],
        # Time the generator sat in epoll with nothing to read or send: when it is large, the
        # generator was waiting for the hub, not the other way round.
        "generator_waiting_percent": 100 * (after["waited"] - before["waited"]) / seconds,
        "forwarded_pps": delivered / seconds, "forwarded_bytes_per_second": (after["bytes"] - before["bytes"]) / seconds,
        "per_peer_delivered_min": min(to_peer), "per_peer_delivered_max": max(to_peer),
        "ratio": ratio(to_peer), "ratio_by_sender": ratio(from_peer),
        "peers_starved": sum(1 for value in to_peer if value == 0),
        "generator_receive_drops": dict(swarm.receive_drops), "generator_send_errors": dict(swarm.send_errors),
        "generator_core_drops": dict(swarm.core_drops),
    }


def measure(count, arguments, directory):
    result = {"peers": count, "family": arguments.family, "hosts": min(arguments.hosts or count, count),
              "payload_bytes": arguments.payload, "loadavg_before": os.getloadavg(), "busy_cpus_before": busy_cpus()}
    lab = Lab(directory)
    lab.prefix = "hubl%d" % (os.getpid() % 100000)   # this benchmark's own namespace names
    swarm = profile = None
    try:
        hub_host, generator_host = lab.underlay(ipv6=False)
        result["namespaces"] = [hub_host.name, generator_host.name]
        generator_host.ip("route", "add", "local", SOURCE_NETWORK, "dev", "lo")
        hub_host.ip("route", "add", "198.18.0.0/15", "via", GENERATOR_UNDERLAY)
        private_keys = [keys.generate_private_key() for _ in range(count)]
        hub_key = keys.generate_private_key()
        relay = lab.relay(hub_host, hub_config(directory, hub_key, Swarm.public_keys(private_keys), arguments.family))
        hub = HubProcess(relay.process.pid)
        hub.mark("idle")
        result["hub_rss_idle_mib"] = hub.marks["idle"]["rss_kib"] / 1024
        templates, offset = [], None
        for index in range(count):
            template, offset = packet(arguments.family, overlay_address(arguments.family, index),
                                      overlay_address(arguments.family, (index + 1) % count), index, arguments.payload)
            templates.append(template)
        result["packet_bytes"] = len(templates[0])
        with network_namespace(generator_host.name):
            sockets = peer_sockets(count, result["hosts"])
        swarm = Swarm(private_keys, keys.public_key(hub_key), (HUB_UNDERLAY, HUB_PORT), sockets, templates, offset)
        if arguments.py_spy:
            profile = start_profile(arguments.py_spy, hub.pid)
        per_peer = arguments.per_peer or max(2, -(-arguments.window // count))
        result.update(window=arguments.window, per_peer=per_peer)
        hub.mark("before_handshakes")
        generator_cpu = own_cpu_seconds()
        started = swarm.handshake_all(arguments.handshake_timeout)
        hub.mark("handshakes")
        result["generator_cpu_seconds_handshakes"] = own_cpu_seconds() - generator_cpu
        result.update(handshake_figures(swarm, started, relay_status(relay)))
        result["hub_cpu_seconds_handshakes"] = hub.cpu("before_handshakes", "handshakes")
        result["hub_cpu_ms_per_peer_handshake"] = 1000 * result["hub_cpu_seconds_handshakes"] / count

        swarm.run_traffic(arguments.warmup, arguments.window, per_peer)
        hub.mark("traffic_start")
        generator_cpu = own_cpu_seconds()
        before = swarm.snapshot()
        swarm.run_traffic(arguments.seconds, arguments.window, per_peer)
        after = swarm.snapshot()
        hub.mark("traffic_end")
        result["generator_cpu_seconds_traffic"] = own_cpu_seconds() - generator_cpu
        swarm.drain(0.5)
        result.update(traffic_figures(swarm, before, after))
        seconds = hub.marks["traffic_end"]["time"] - hub.marks["traffic_start"]["time"]
        result["hub_cpu_seconds_traffic"] = hub.cpu("traffic_start", "traffic_end")
        result["hub_cpu_percent_traffic"] = 100 * result["hub_cpu_seconds_traffic"] / seconds
        result["generator_cpu_percent_traffic"] = 100 * result["generator_cpu_seconds_traffic"] / seconds
        # CPU per forwarded packet: steadier than a rate on a machine others are using.
        for side in ("hub", "generator"):
            result["%s_cpu_us_per_packet" % side] = (1e6 * result["%s_cpu_seconds_traffic" % side]
                                                     / result["delivered"] if result["delivered"] else None)
        final = relay_status(relay)
        hub.mark("end")
        result["hub_rss_mib"] = hub.marks["end"]["rss_kib"] / 1024
        result["hub_peak_rss_mib"] = hub.marks["end"]["hwm_kib"] / 1024
        result["hub_cpu_seconds_total"] = hub.marks["end"]["cpu_seconds"]
        result["hub_drops_end"] = final["drops"]
        result["hub_forwarded_packets"] = sum(peer["tx_packets"] for peer in final["peers"])
        result["hub_log_tracebacks"] = relay.log().count("Traceback")
        if profile is not None:
            result["py_spy"] = {"path": profile[1], "output": stop_profile(profile[0])}
            result["py_spy"].update(profile_summary(profile[1]))
            profile = None
        result["meets_targets"] = meets_targets(result)
    except Exception as error:   # report what broke, with the hub's log tail
        result["error"] = "%s: %s" % (type(error).__name__, error)
        result["logs"] = {name: read_log(os.path.join(directory, name))[-3000:]
                          for name in sorted(os.listdir(directory)) if name.endswith(".log")}
    finally:
        if profile is not None:
            stop_profile(profile[0])
        if swarm is not None:
            swarm.close()
        lab.close()
    result["loadavg_after"] = os.getloadavg()
    return result


def meets_targets(result):
    return {"established_in_30s": result["established_seconds"] is not None
            and result["established_seconds"] <= TARGETS["established_seconds"],
            "hub_rss_under_150mb": result["hub_peak_rss_mib"] <= TARGETS["hub_rss_mib"],
            "ratio_at_most_3": result["ratio"] is not None and result["ratio"] <= TARGETS["ratio"]}


# --- reporting ---------------------------------------------------------------------------

COLUMNS = [
    ("N", "peers", "%d"), ("fam", "family", "v%d"), ("est s", "established_seconds", "%.2f"),
    ("hs/s", "handshakes_per_second", "%.0f"), ("cookies rx", "cookies_received", "%d"),
    ("hub cookies", "hub_cookies_sent", "%d"), ("mac2 inits", "initiations_with_mac2", "%d"),
    ("fwd pps", "forwarded_pps", "%.0f"), ("fwd MB/s", "forwarded_bytes_per_second", "%.2f", 1e-6),
    ("ratio", "ratio", "%.2f"), ("RSS MiB", "hub_rss_mib", "%.1f"), ("peak MiB", "hub_peak_rss_mib", "%.1f"),
    ("hub CPU hs s", "hub_cpu_seconds_handshakes", "%.2f"), ("hub CPU fwd %", "hub_cpu_percent_traffic", "%.0f"),
    ("hub us/pkt", "hub_cpu_us_per_packet", "%.1f"), ("gen CPU fwd %", "generator_cpu_percent_traffic", "%.0f"),
    ("gen wait %", "generator_waiting_percent", "%.0f"), ("load", "loadavg_before", "%.2f"),
    ("other CPUs", "busy_cpus_before", "%.2f"),
]


def cell(result, column):
    value = result.get(column[1])
    if isinstance(value, (list, tuple)):
        value = value[0]
    if value is None:
        return "-"
    return column[2] % (value * (column[3] if len(column) > 3 else 1))


def table(results):
    rows = [[column[0] for column in COLUMNS]]
    for result in results:
        rows.append(["error" if index == 2 and "error" in result else cell(result, column)
                     for index, column in enumerate(COLUMNS)])
    widths = [max(len(row[index]) for row in rows) for index in range(len(COLUMNS))]
    return "\n".join("  ".join(value.rjust(width) for value, width in zip(row, widths)) for row in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default="10", help="N, or a comma-separated list (default 10)")
    parser.add_argument("--family", type=int, choices=(4, 6), default=6, help="overlay family (default 6)")
    parser.add_argument("--hosts", type=int, default=0,
                        help="source addresses the peers share (default 0: one per peer)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured traffic (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="traffic before measuring (default 1)")
    parser.add_argument("--payload", type=int, default=64, help="UDP payload bytes per packet (default 64)")
    parser.add_argument("--per-peer", type=int, default=0,
                        help="packets in flight per peer (default 0: window/N, at least 2)")
    parser.add_argument("--window", type=int, default=512, help="packets in flight in all (default 512)")
    parser.add_argument("--handshake-timeout", type=float, default=60.0, help="give up after (default 60 s)")
    parser.add_argument("--py-spy", metavar="DIR", help="record the hub with py-spy, collapsed stacks in DIR")
    parser.add_argument("--output", default=os.path.join(BENCH, "results", "hub_load.json"))
    arguments = parser.parse_args()
    counts = [int(value) for value in arguments.peers.split(",") if value]
    if not counts or min(counts) < 2:
        parser.error("--peers needs at least 2 peers (they send to each other)")
    if arguments.family == 4 and max(counts) > MAX_IPV4_PEERS:
        parser.error("--family 4 fits at most %d peers (198.51.100.0/24 and 203.0.113.0/24)" % MAX_IPV4_PEERS)
    if arguments.payload < 4 or arguments.per_peer < 0 or arguments.window < 1 or arguments.seconds <= 0:
        parser.error("--payload must be at least 4, --per-peer, --window and --seconds positive")
    if os.geteuid() != 0:
        sys.exit("hub_load.py: needs root (network namespaces)")
    # SIGTERM unwinds like Ctrl-C, so the finally clauses remove namespaces and processes.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    document = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "cpus": os.cpu_count(), "kernel": os.uname().release, "targets": TARGETS, "runs": []}
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        for count in counts:
            print("N=%d: starting ..." % count, file=sys.stderr, flush=True)
            run_directory = os.path.join(directory, "n%d" % count)
            os.makedirs(run_directory)
            os.chmod(run_directory, 0o755)
            document["runs"].append(measure(count, arguments, run_directory))
            if "error" in document["runs"][-1]:
                print("  N=%d failed: %s" % (count, document["runs"][-1]["error"]), file=sys.stderr, flush=True)
    print(table(document["runs"]))
    print("(est s: until all established; hs/s: established / est s; cookies rx: cookie replies the peers got;"
          " hub cookies: the hub's drops.cookie_required; fwd: delivered through the hub, IP bytes;"
          " ratio: max/min per-peer delivered; RSS: VmRSS at the end, peak: VmHWM; load: 1-min load before;"
          " gen wait: the generator's time blocked in epoll; other CPUs: CPUs' worth of other work in the second before, of %d)" % (os.cpu_count() or 1))
    os.makedirs(os.path.dirname(os.path.abspath(arguments.output)), exist_ok=True)
    with open(arguments.output, "w") as stream:
        json.dump(document, stream, indent=2)
    print(json.dumps(document, separators=(",", ":")))
    return 1 if any("error" in run for run in document["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
