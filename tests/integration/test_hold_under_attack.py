"""Under attack, a real peer keeps its service (issue 15).

An attacker that holds hundreds of idle TCP connections to a listening relay, and reopens
each one the relay closes, must not keep the real peer out when it restarts and dials in.
"""

import json
import signal
import subprocess
import time

from .netns import wait_for
from .test_two_hosts import OVERLAY_A, encrypted, relay_config

ATTACKER_SOURCES = ["198.18.0.%d" % last for last in range(2, 22)]   # 20 addresses: more than the table holds

# Holds COUNT connections to HOST:PORT spread over the source addresses, sends nothing, and
# reopens each one as soon as the relay closes it.
IDLE_CONNECTIONS = r"""
import selectors, socket, sys
sources, host, port, count = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
selector = selectors.DefaultSelector()
reopened = 0
def open_one(index):
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((sources[index % len(sources)], 0))
    try:
        sock.connect((host, port))
    except BlockingIOError:
        pass
    selector.register(sock, selectors.EVENT_READ, index)
for index in range(count):
    open_one(index)
print("holding", flush=True)
while True:
    for key, _ in selector.select(1):
        try:
            data = key.fileobj.recv(4096)
        except OSError:
            data = b""
        if not data:
            selector.unregister(key.fileobj)
            key.fileobj.close()
            reopened += 1
            open_one(key.data)
"""


def _drops(status, reason):
    """The relay-wide count of ``reason`` anywhere in a status document."""
    if isinstance(status, dict):
        return sum(value if key == reason and isinstance(value, int) else _drops(value, reason)
                   for key, value in status.items())
    if isinstance(status, list):
        return sum(_drops(item, reason) for item in status)
    return 0


def test_idle_connections_do_not_lock_a_restarting_peer_out(lab, tmp_path):
    a, b = lab.underlay()
    attacker = lab.third_host(a)
    for source in ATTACKER_SOURCES[1:]:
        attacker.ip("addr", "add", source + "/24", "dev", "u0")
    attacker.ip("route", "add", "192.0.2.0/24", "via", "198.18.0.1")
    relay_a = lab.relay(a, encrypted(relay_config("tun", 1, ["tcp://192.0.2.1:51820"]), tmp_path, 1))
    config_b = encrypted(relay_config("tun", 2, [], "tcp://192.0.2.1:51820"), tmp_path, 2)
    relay_b = lab.relay(b, config_b)
    b.ping(OVERLAY_A)

    flood = attacker.popen("python3", "-c", IDLE_CONNECTIONS, ",".join(ATTACKER_SOURCES), "192.0.2.1", "51820",
                           "200", stdout=subprocess.PIPE, text=True)
    assert flood.stdout.readline().strip() == "holding"

    def evictions():
        status = relay_a.tool("status", "-s", relay_a.config["control_socket"], "--json").stdout
        return _drops(json.loads(status), "too_many_unauthenticated")

    wait_for(lambda: evictions() > 200, 20, message="the attacker to fill the table and churn it")
    times = []
    for _ in range(5):
        relay_b.stop()
        wait_for(lambda: not b.has_link("tr0"), 10, message="B's device gone")
        started = time.monotonic()   # from the restart itself, start-up included
        relay_b = lab.relay(b, config_b)
        wait_for(lambda: b.exec("ping", "-c", "1", "-W", "1", OVERLAY_A, check=False).returncode == 0, 30,
                 message="A back in service for B")
        times.append(time.monotonic() - started)
    print("peer back in service after restarts under attack: %s s" % ", ".join("%.1f" % t for t in times))
    assert flood.poll() is None, "the attack ran throughout"
    assert max(times) <= 5.0, times
    assert "Traceback" not in relay_a.log()


# Sends DATAGRAMS of SIZE bytes to HOST:9 at RATE per second, then exits.
PACED_UDP = r"""
import socket, sys, time
host, rate, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start, payload = time.monotonic(), bytes(size)
for index in range(count):
    delay = start + index / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    try:
        sock.sendto(payload, (host, 9))
    except OSError:
        pass
"""


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_stalled_peer_costs_bounded_memory_and_nothing_else(lab, tmp_path):
    # The hub sends at 50 Mbit/s to a spoke that has stopped reading (SIGSTOP): first over TCP
    # (spoke A), then over UDP (spoke B). The hub's memory stays bounded, the other spoke's
    # pings are all answered, and what the TCP backlog could not hold is counted.
    from .test_hub_and_spoke import SPOKE_A, SPOKE_B, start_hub_and_spokes, status

    hub_host, a, b, (hub, relay_a, relay_b) = start_hub_and_spokes(lab, "tun")
    hub_host.ping(SPOKE_A)
    hub_host.ping(SPOKE_B)
    for stalled, other in ((relay_a, SPOKE_B), (relay_b, SPOKE_A)):
        before = _rss_kib(hub.process.pid)
        stalled.process.send_signal(signal.SIGSTOP)
        try:
            target = SPOKE_A if stalled is relay_a else SPOKE_B
            blast = hub_host.popen("python3", "-c", PACED_UDP, target, "5000", "50000", "1200")
            pings = hub_host.exec("ping", "-c", "50", "-i", "0.1", "-W", "2", other, check=False, timeout=60)
            blast.wait(60)
            grown = _rss_kib(hub.process.pid) - before
        finally:
            stalled.process.send_signal(signal.SIGCONT)
        print("stalled %s: hub RSS +%d KiB; pings to the other spoke: %s" % (
            target, grown, pings.stdout.strip().splitlines()[-2]))
        assert " 0% packet loss" in pings.stdout, pings.stdout
        assert grown < 20 * 1024
    peers = {peer["name"]: peer for peer in status(hub)["peers"]}
    assert peers["a"]["drops"].get("tx_queue_full", 0) > 0, peers["a"]
    assert "Traceback" not in hub.log()
