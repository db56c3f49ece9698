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

import json
import re
import subprocess
import time

from .netns import wait_for
from .test_two_hosts import CASES, OVERLAY_A, OVERLAY_B, start_pair

PING_INTERVAL = 0.02
_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) ")
_TRANSMITTED = re.compile(r"(\d+) packets transmitted, (\d+) received")
_REKEY_LOG = "peer other rekeyed"


def start_tunnel(lab):
    mode, a_listen, b_endpoint, b_listen = CASES["tun-udp"]
    a, b, relay_a, relay_b = start_pair(lab, mode, a_listen, b_endpoint, b_listen, secure=True)
    b.ping(OVERLAY_A)   # B initiates
    return a, b, relay_a, relay_b


def ping_figures(output):
    """Counts and the largest gap between replies from ``ping -D -n`` output."""
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
    times = sorted(replies.values())
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    return {"pings_sent": transmitted, "pings_answered": len(replies), "pings_lost": transmitted - len(replies),
            "ping_duplicates": duplicates, "max_reply_gap_ms": round(max(gaps, default=0.0) * 1000, 1),
            "lost_sequences": sorted(set(range(1, transmitted + 1)) - set(replies))}


def cpu_seconds(process):
    """utime + stime of a relay process (``ip netns exec`` execs twistd, so the pid is the relay's)."""
    with open("/proc/%d/stat" % process.pid) as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0   # USER_HZ


def relay_figures(relay):
    status = relay.status()
    peer = status["peers"][0]
    drops = dict(status["drops"])
    for reason, count in peer["drops"].items():
        drops[reason] = drops.get(reason, 0) + count
    return {"handshakes": peer.get("handshakes"), "rekeys": peer.get("rekeys"),
            "rekey_log_lines": relay.log().count(_REKEY_LOG),
            "decrypt_failed": drops.get("decrypt_failed", 0), "replay": drops.get("replay", 0),
            "drops": drops, "rx_packets": peer["rx_packets"], "tx_packets": peer["tx_packets"],
            "cpu_seconds": cpu_seconds(relay.process)}


def soak(lab, seconds, rate):
    """Run the load for ``seconds`` (iperf3 TCP at ``rate``, e.g. "100M"); return the figures."""
    a, b, relay_a, relay_b = start_tunnel(lab)
    server = b.popen("iperf3", "-s", "-1", "-B", OVERLAY_B, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: ":5201 " in b.exec("ss", "-ltnH", check=False).stdout, 10, message="iperf3 server on B")
    count = int(round(seconds / PING_INTERVAL))
    started = time.monotonic()
    pinger = a.popen("ping", "-D", "-n", "-i", str(PING_INTERVAL), "-c", str(count), "-W", "2", OVERLAY_B,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = a.popen("iperf3", "-c", OVERLAY_B, "-t", str(seconds), "-b", rate, "-J",
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    iperf_output, _ = client.communicate(timeout=seconds + 60)
    ping_output, _ = pinger.communicate(timeout=seconds + 60)
    elapsed = time.monotonic() - started
    server.wait(10)
    try:
        end = json.loads(iperf_output)["end"]
    except (ValueError, KeyError):
        raise AssertionError("iperf3 failed: %s" % iperf_output[-2000:])
    figures = {"seconds": seconds, "wall_seconds": round(elapsed, 1), "rate": rate,
               "iperf_bytes": end["sum_received"]["bytes"],
               "iperf_bits_per_second": end["sum_received"]["bits_per_second"],
               "iperf_retransmits": end["sum_sent"].get("retransmits"),
               "a": relay_figures(relay_a), "b": relay_figures(relay_b)}
    figures.update(ping_figures(ping_output))
    figures["tracebacks"] = (relay_a.log() + relay_b.log()).count("Traceback")
    return figures


__all__ = ["OVERLAY_B", "ping_figures", "soak", "start_tunnel"]
