"""A tunnel under steady load across rekeys: what the rekey test and bench/rekey_soak.py share.

Two relays in the default shape (tun over UDP, encrypted) carry, for ``seconds``, one
rate-limited iperf3 TCP stream from A to B and a ping every 20 ms beside it; afterwards
both relays' ``tunrelay status --json`` give the rekeys and every drop. Only B has an
endpoint for its peer (A listens), so B initiates the first handshake and so every rekey
on time (REKEY_AFTER_TIME, 120 s after each handshake, as the initiator of the current
session); A, the responder, counts each rekey when B's first message under the new keys
confirms it.

Lost pings are the echo requests without a reply; the largest gap is the longest time
between two consecutive replies (``ping -D`` timestamps), which is what a rekey that
stalled the tunnel would stretch, even without a loss.
"""

import calendar
import json
import os
import re
import subprocess
import time

from .netns import kernel_counters, wait_for
from .test_two_hosts import CASES, OVERLAY_A, OVERLAY_B, start_pair

PING_INTERVAL = 0.02
_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) ")
_TRANSMITTED = re.compile(r"(\d+) packets transmitted, (\d+) received")
_REKEY_LOG = "peer other rekeyed"
_KERNEL_DROPS = ("UdpRcvbufErrors", "UdpSndbufErrors", "UdpInErrors")


def start_tunnel(lab):
    mode, a_listen, b_endpoint, b_listen = CASES["tun-udp"]
    a, b, relay_a, relay_b = start_pair(lab, mode, a_listen, b_endpoint, b_listen, secure=True)
    b.ping(OVERLAY_A)   # B initiates
    return a, b, relay_a, relay_b


def ping_figures(output):
    """Counts and the largest gap between replies from ``ping -D -n -w`` output. Requests
    after the last reply are not counted as lost: ping stops at its deadline without waiting
    for the replies still on their way (``pings_unanswered_at_end`` counts them)."""
    replies, duplicates = {}, 0
    for line in output.splitlines():
        match = _REPLY.match(line)
        if match:
            sequence = int(match.group(2))
            if sequence in replies or "DUP!" in line:
                duplicates += 1
            else:
                replies[sequence] = float(match.group(1))
    summary = _TRANSMITTED.search(output)
    transmitted = int(summary.group(1)) if summary else max(replies, default=0)
    last = max(replies, default=0)
    lost = sorted(set(range(1, last + 1)) - set(replies))
    times = sorted(replies.values())
    # When each loss happened, to the ping: the last reply before it, from the first reply on.
    lost_at = [round(max(time for sequence, time in replies.items() if sequence < missing) - times[0], 2)
               if missing > min(replies) else 0.0 for missing in lost]
    return {"lost_at_seconds": lost_at, "pings_sent": transmitted, "pings_answered": len(replies), "pings_lost": len(lost),
            "pings_unanswered_at_end": transmitted - last, "ping_duplicates": duplicates,
            "max_reply_gap_ms": _ms(largest_gap(times)), "lost_sequences": lost, "reply_times": times}


def largest_gap(times, start=float("-inf"), end=float("inf")):
    """The longest time between consecutive replies, among the replies in [start, end]."""
    inside = [time for time in times if start <= time <= end]
    return max((later - earlier for earlier, later in zip(inside, inside[1:])), default=0.0)


def _ms(seconds):
    return round(seconds * 1000, 1)


def rekey_times(log):
    """Unix times (to the second: twistd's log stamps) of the rekeys a relay logged."""
    return [calendar.timegm(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S"))
            for line in log.splitlines() if _REKEY_LOG in line]


def cpu_seconds(process):
    """utime + stime of a relay process (``ip netns exec`` execs twistd, so the pid is the relay's)."""
    with open("/proc/%d/stat" % process.pid) as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0   # USER_HZ


def relay_figures(relay, host):
    status = relay.status()
    peer = status["peers"][0]
    drops = dict(status["drops"])
    for reason, count in peer["drops"].items():
        drops[reason] = drops.get(reason, 0) + count
    return {"handshakes": peer.get("handshakes"), "rekeys": peer.get("rekeys"),
            "rekey_times": rekey_times(relay.log()),
            "decrypt_failed": drops.get("decrypt_failed", 0), "replay": drops.get("replay", 0),
            "drops": drops, "rx_packets": peer["rx_packets"], "tx_packets": peer["tx_packets"],
            "cpu_seconds": cpu_seconds(relay.process),
            # What the kernel dropped around the relay (a full socket buffer), which its status cannot see.
            "kernel": kernel_counters(host, *_KERNEL_DROPS)}


def soak(lab, seconds, rate):
    """Run the load for ``seconds`` (iperf3 TCP at ``rate``, e.g. "100M"); return the figures."""
    a, b, relay_a, relay_b = start_tunnel(lab)
    server = b.popen("iperf3", "-s", "-1", "-B", OVERLAY_B, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: ":5201 " in b.exec("ss", "-ltnH", check=False).stdout, 10, message="iperf3 server on B")
    # Both write to files: ping prints a line per reply, and a pipe nobody reads until iperf3
    # ends would fill and stop ping itself (a 109 s "gap" that was ping blocked on stdout).
    ping_path, iperf_path = os.path.join(lab.directory, "ping.txt"), os.path.join(lab.directory, "iperf3.json")
    with open(ping_path, "w") as ping_file, open(iperf_path, "w") as iperf_file:
        started = time.monotonic()
        pinger = a.popen("ping", "-D", "-n", "-i", str(PING_INTERVAL), "-w", str(seconds), OVERLAY_B,
                         stdout=ping_file, stderr=subprocess.STDOUT)
        client = a.popen("iperf3", "-c", OVERLAY_B, "-t", str(seconds), "-b", rate, "-J",
                         stdout=iperf_file, stderr=subprocess.STDOUT)
        client.wait(seconds + 60)
        pinger.wait(seconds + 60)
        elapsed = time.monotonic() - started
    server.wait(10)
    with open(ping_path) as ping_file, open(iperf_path) as iperf_file:
        ping_output, iperf_output = ping_file.read(), iperf_file.read()
    try:
        end = json.loads(iperf_output)["end"]
    except (ValueError, KeyError):
        raise AssertionError("iperf3 failed: %s" % iperf_output[-2000:])
    figures = {"seconds": seconds, "wall_seconds": round(elapsed, 1), "rate": rate,
               "iperf_bytes": end["sum_received"]["bytes"],
               "iperf_bits_per_second": end["sum_received"]["bits_per_second"],
               "iperf_retransmits": end["sum_sent"].get("retransmits"),
               "a": relay_figures(relay_a, a), "b": relay_figures(relay_b, b)}
    figures.update(ping_figures(ping_output))
    times = figures.pop("reply_times")
    # Around each rekey B (the initiator) logged, to the second: from 1 s before to 2 s after.
    figures["max_reply_gap_near_rekeys_ms"] = [_ms(largest_gap(times, rekey - 1, rekey + 3))
                                               for rekey in figures["b"]["rekey_times"]]
    figures["rekeys_at_seconds"] = [round(rekey - times[0], 1) for rekey in figures["b"]["rekey_times"]] if times else []
    figures["tracebacks"] = (relay_a.log() + relay_b.log()).count("Traceback")
    return figures


__all__ = ["OVERLAY_B", "ping_figures", "soak", "start_tunnel"]
