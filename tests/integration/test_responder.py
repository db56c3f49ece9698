"""The in-process responder against Linux clients: ping, fragments, ARP, TCP echo, HTTP.

One namespace; the kernel there is the client, reaching the responder through tr0 (tun: a
route; tap: ARP and Ethernet). Each case runs on a clean link and again under 5% loss in
each direction (nftables numgen on the kernel's output, the seeded fault injector on the
responder's) plus reordering and duplication from the injector: once with Linux offering
SACK (its default), which the responder answers with RFC 6675/RACK-TLP recovery, and once
with net.ipv4.tcp_sack=0 in the namespace, which leaves it NewReno. Afterwards Linux holds
no connection to the responder in any state but TIME-WAIT, and the responder sent few
resets.
"""

import hashlib
import json
import os
import sys

import pytest

from tunrelay.responder.services import deterministic_bytes

from .conftest import require_tool
from .netns import random_file, sha256_of, wait_for

RESPONDER = "198.51.100.9"
MIB = 1024 * 1024


def responder_config(mode, lossy):
    responder = {"address": RESPONDER, "mac": "02:00:00:00:00:09", "services": {7: "echo", 80: "http"}}
    if lossy:
        responder["faults"] = {"seed": 1234, "drop": 0.05, "duplicate": 0.02, "reorder": 0.05}
    return {"interface": {"name": "tr0", "mode": mode, "mtu": 1400, "addresses": ["198.51.100.1/24"]},
            "plaintext": True, "peers": [], "responder": responder}


def drop_outgoing(host, percent):
    """nftables: drop ``percent``% of what the kernel sends into tr0 (towards the responder)."""
    host.exec("nft", "add table inet lossy")
    host.exec("nft", "add chain inet lossy out { type filter hook output priority 0 ; }")
    host.exec("nft", "add rule inet lossy out oifname tr0 numgen random mod 100 < %d drop" % percent)


@pytest.mark.parametrize("link", ["clean", "lossy", "lossy-without-sack"])
@pytest.mark.parametrize("mode", ["tun", "tap"])
def test_linux_clients_against_the_responder(lab, tmp_path, mode, link):
    lossy = link != "clean"
    host = lab.host("r")
    relay = lab.relay(host, responder_config(mode, lossy))
    if link == "lossy-without-sack":
        host.exec("sysctl", "-qw", "net.ipv4.tcp_sack=0")
    if lossy:
        require_tool("nft")
        drop_outgoing(host, 5)
    count = 20 if lossy else 5
    ping = host.exec("ping", "-c", str(count), "-i", "0.05", "-W", "1", RESPONDER, check=False)
    assert _received(ping.stdout) >= (count * 0.7 if lossy else count), ping.stdout
    big = host.exec("ping", "-c", str(count), "-i", "0.05", "-W", "1", "-s", "3000", RESPONDER, check=False)
    assert _received(big.stdout) >= (count * 0.5 if lossy else count), big.stdout
    if mode == "tap":
        require_tool("arping")
        arp = host.exec("arping", "-c", "5", "-w", "5", "-I", "tr0", RESPONDER, check=False)
        assert "02:00:00:00:00:09" in arp.stdout.lower() and _arping_replies(arp.stdout) >= (3 if lossy else 5), arp.stdout

    payload = random_file(tmp_path, 10 * MIB)
    echoed = os.path.join(str(tmp_path), "echoed.bin")
    with open(payload, "rb") as source, open(echoed, "wb") as sink:
        host.exec_to(["nc", "-N", "-w", "30", RESPONDER, "7"], stdin=source, stdout=sink, timeout=180)
    assert sha256_of(echoed) == sha256_of(payload)

    downloaded = os.path.join(str(tmp_path), "downloaded.bin")
    host.exec("curl", "-sf", "--max-time", "180", "-o", downloaded, "http://%s/bytes/%d" % (RESPONDER, 10 * MIB),
              timeout=200)
    assert sha256_of(downloaded) == hashlib.sha256(deterministic_bytes(10 * MIB)).hexdigest()

    wait_for(lambda: not _open_connections(host), 30, message="Linux to hold no open connection to the responder")
    status = json.loads(relay.tool("status", "-s", relay.config["control_socket"], "--json").stdout)
    tcp = status["responder"]["tcp"]
    assert tcp.get("resets_sent", 0) <= 4, tcp   # no RST storm
    if lossy:
        assert status["responder"]["faults"]["dropped"] > 0 and tcp.get("retransmitted_segments", 0) > 0
    if link == "lossy":
        assert tcp.get("sack_recoveries", 0) > 0 and tcp.get("fast_retransmits", 0) == 0, tcp
    elif link == "lossy-without-sack":
        assert tcp.get("fast_retransmits", 0) > 0 and tcp.get("sack_recoveries", 0) == 0, tcp
    assert "Traceback" not in relay.log()


def _received(ping_output):
    for line in ping_output.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


def _arping_replies(output):
    return sum(1 for line in output.splitlines() if "bytes from" in line or "Unicast reply" in line)


def _open_connections(host):
    """Sockets to the responder in any state but TIME-WAIT (which the active closer keeps)."""
    lines = host.exec("ss", "-tanH", "dst", RESPONDER).stdout.splitlines()
    return [line for line in lines if line.strip() and not line.startswith("TIME-WAIT")]


def test_a_remote_peer_reaches_the_responder_through_the_tunnel(lab, tmp_path):
    """The responder sits on the forwarding plane like a peer: B reaches it through A's tunnel."""
    from .test_two_hosts import encrypted, relay_config

    a, b = lab.underlay()
    config_a = encrypted(relay_config("tun", 1, ["udp://192.0.2.1:51820"]), tmp_path, 1)
    config_a["responder"] = {"address": RESPONDER, "services": {7: "echo", 80: "http"}}
    lab.relay(a, config_a)
    config_b = encrypted(relay_config("tun", 2, ["udp://192.0.2.2:51820"], "udp://192.0.2.1:51820"), tmp_path, 2)
    config_b["peers"][0]["allowed_ips"] = ["198.51.100.1/32", RESPONDER + "/32"]
    lab.relay(b, config_b)
    b.ping(RESPONDER)
    downloaded = os.path.join(str(tmp_path), "remote.bin")
    b.exec("curl", "-sf", "--max-time", "60", "-o", downloaded, "http://%s/bytes/%d" % (RESPONDER, MIB), timeout=90)
    assert sha256_of(downloaded) == hashlib.sha256(deterministic_bytes(MIB)).hexdigest()


def test_syn_flood_leaves_memory_bounded_and_service_up(lab, tmp_path):
    host = lab.host("f")
    relay = lab.relay(host, responder_config("tun", lossy=False))
    host.ping(RESPONDER)
    rss_before = _rss_kib(relay)
    flood = ("from scapy.all import IP, TCP, RandShort, send\n"
             "send(IP(src='198.51.100.1', dst=%r) / TCP(sport=RandShort(), dport=80, flags='S', seq=1), "
             "count=5000, verbose=False)\n" % RESPONDER)
    host.exec(sys.executable, "-c", flood, timeout=120)
    status = json.loads(relay.tool("status", "-s", relay.config["control_socket"], "--json").stdout)
    assert status["responder"]["tcp"]["segments_received"] >= 4500, status["responder"]["tcp"]  # the flood arrived
    downloaded = os.path.join(str(tmp_path), "after-flood.bin")
    host.exec("curl", "-sf", "--max-time", "60", "-o", downloaded, "http://%s/bytes/%d" % (RESPONDER, MIB), timeout=90)
    assert sha256_of(downloaded) == hashlib.sha256(deterministic_bytes(MIB)).hexdigest()
    assert _rss_kib(relay) - rss_before < 20 * 1024, "a SYN flood must not grow memory by more than 20 MiB"


def _rss_kib(relay):
    with open("/proc/%d/status" % relay.process.pid) as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
