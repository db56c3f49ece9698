"""An endpoint list falls over from UDP to TCP when UDP is blocked, and comes back.

B dials A with ``endpoint: [udp://A:51820, tcp://A:51820]``; A listens on both and knows
nothing of the list. nftables on A drops UDP to and from port 51820 in the middle of a
paced, sha256-checked transfer from B to A, while B pings A every 100 ms.
"""

import json
import os
import re
import subprocess
import time

from .conftest import require_tool
from .netns import random_file, sha256_of, wait_for, _listening
from .test_two_hosts import OVERLAY_A, encrypted, relay_config

ENDPOINTS = ["udp://192.0.2.1:51820", "tcp://192.0.2.1:51820"]
PORT = 5009
SIZE = 6 * 1000 * 1000
RATE = 300 * 1000        # bytes a second: the transfer outlasts the failover

PACED_SENDER = """
import socket, sys, time
address, port, path, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
chunk = rate // 20
with open(path, "rb") as source, socket.create_connection((address, port), timeout=60) as connection:
    start = time.monotonic()
    sent = 0
    while True:
        data = source.read(chunk)
        if not data:
            break
        connection.sendall(data)
        sent += len(data)
        pause = start + sent / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    connection.shutdown(socket.SHUT_WR)
    connection.recv(1)
"""


def block_udp(host):
    host.exec("nft", "add", "table", "inet", "noudp")
    for chain, hook, direction in (("in", "input", "dport"), ("out", "output", "sport")):
        host.exec("nft", "add", "chain", "inet", "noudp", chain, "{ type filter hook %s priority 0; }" % hook)
        host.exec("nft", "add", "rule", "inet", "noudp", chain, "udp", direction, "51820", "counter", "drop")


def peer_status(relay):
    return json.loads(relay.tool("status", "-s", relay.config["control_socket"], "--json", check=True).stdout)["peers"][0]


def ping_replies(output):
    """Monotonic-ish wall times (ping -D) of every echo reply."""
    return [float(stamp) for stamp in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", output, re.MULTILINE)]


def test_udp_blocked_falls_over_to_tcp_and_returns(lab, tmp_path):
    require_tool("nft")
    a, b = lab.underlay()
    config_a = encrypted(relay_config("tun", 1, ["udp://192.0.2.1:51820", "tcp://192.0.2.1:51820"]), tmp_path, 1)
    lab.relay(a, config_a)
    relay_b = lab.relay(b, encrypted(relay_config("tun", 2, ["udp://192.0.2.2:51820"], ENDPOINTS), tmp_path, 2))
    b.ping(OVERLAY_A)
    status = peer_status(relay_b)
    assert status["endpoint_in_use"] == ENDPOINTS[0] and status["transport"] == "udp", status

    source = random_file(tmp_path, SIZE)
    received = os.path.join(str(tmp_path), "received.bin")
    with open(received, "wb") as output:
        listener = a.popen("nc", "-l", "-N", OVERLAY_A, str(PORT), stdout=output, stderr=subprocess.PIPE)
        wait_for(lambda: _listening(a, PORT), 10, message="nc listening")
        pinger = b.popen("ping", "-D", "-i", "0.1", "-W", "1", OVERLAY_A, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        sender = b.popen("python3", "-c", PACED_SENDER, OVERLAY_A, str(PORT), source, str(RATE),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(3)   # let the transfer run on UDP for a while before the block
        blocked_at = time.time()
        block_udp(a)
        wait_for(lambda: peer_status(relay_b)["transport"] == "tcp", 20, interval=0.2,
                 message="B to fall over to TCP")
        failed_over = time.time() - blocked_at
        assert sender.wait(120) == 0, sender.stdout.read()
        listener.wait(60)
    assert sha256_of(received) == sha256_of(source)
    status = peer_status(relay_b)
    assert status["endpoint_in_use"] == ENDPOINTS[1], status
    assert status["endpoint_reason"].startswith(ENDPOINTS[0] + " authenticated nothing for"), status
    shown = relay_b.tool("status", "-s", relay_b.config["control_socket"], check=True).stdout
    assert "endpoint in use: %s (%s" % (ENDPOINTS[1], ENDPOINTS[0]) in shown, shown

    unblocked_at = time.time()
    a.exec("nft", "delete", "table", "inet", "noudp")
    wait_for(lambda: peer_status(relay_b)["transport"] == "udp", 65, interval=0.5, message="B back on UDP")
    returned = time.time() - unblocked_at
    b.ping(OVERLAY_A)
    pinger.terminate()
    replies = ping_replies(pinger.communicate(timeout=10)[0])
    after_block = [stamp for stamp in replies if stamp > blocked_at]
    resumed = after_block[0] - blocked_at if after_block else float("inf")
    status = peer_status(relay_b)
    print("UDP blocked: on TCP after %.1f s, pings answered again %.1f s after the block; "
          "UDP back %.1f s after the unblock (%s)" % (failed_over, resumed, returned, status["endpoint_reason"]))
    assert resumed <= 15
    assert returned <= 60
    assert status["endpoint_in_use"] == ENDPOINTS[0] and status["endpoint_reason"] == ENDPOINTS[0] + " answered again"
    assert status["paths"] == 1, status      # the TCP fallback was closed
    log = relay_b.log()
    assert "now uses endpoint %s" % ENDPOINTS[1] in log and "now uses endpoint %s" % ENDPOINTS[0] in log
    assert "Traceback" not in log
