"""The responder over IPv6 against Linux clients, in tun and tap: ping -6, curl -6, nc to
echo and discard.

One namespace; the kernel is the client through tr0 (tun: a route; tap: Neighbour
Discovery). Data is sha256-checked. In tap mode the kernel holds a second address in the
responder's solicited-node group, so its Duplicate Address Detection probes reach the
responder's ND code, which must leave them unanswered (the address must not end up
"dadfailed"). Hand-made malformed extension headers from scapy are dropped and counted,
and the relay carries on.
"""

import hashlib
import json
import os
import sys

import pytest

from tunrelay.responder.services import deterministic_bytes

from .netns import random_file, sha256_of, wait_for

RESPONDER6 = "2001:db8:1::9"
KERNEL6 = "2001:db8:1::1"
SHARES_OUR_GROUP = "2001:db8:2::9"    # ff02::1:ff00:9, the responder's solicited-node group
MIB = 1024 * 1024


def config(mode):
    return {"interface": {"name": "tr0", "mode": mode, "mtu": 1400,
                          "addresses": ["198.51.100.1/24", KERNEL6 + "/64", SHARES_OUR_GROUP + "/64"]},
            "plaintext": True, "peers": [],
            "responder": {"address": ["198.51.100.9", RESPONDER6], "mac": "02:00:00:00:00:09",
                          "services": {7: "echo", 9: "discard", 80: "http"}}}


def _addresses_settled(host):
    shown = host.exec("ip", "-6", "addr", "show", "dev", "tr0").stdout
    return "tentative" not in shown and KERNEL6 in shown


def status(relay):
    return json.loads(relay.tool("status", "-s", relay.config["control_socket"], "--json").stdout)


@pytest.mark.parametrize("mode", ["tun", "tap"])
def test_linux_clients_reach_the_responder_over_ipv6(lab, tmp_path, mode):
    host = lab.host("6")
    relay = lab.relay(host, config(mode))
    wait_for(lambda: _addresses_settled(host), 15, message="the kernel's IPv6 addresses to settle")
    assert "dadfailed" not in host.exec("ip", "-6", "addr", "show", "dev", "tr0").stdout
    host.ping(RESPONDER6)
    big = host.exec("ping", "-6", "-c", "5", "-i", "0.1", "-W", "2", "-s", "3000", RESPONDER6, check=False)
    assert " 0% packet loss" in big.stdout and "3008 bytes from" in big.stdout, big.stdout

    downloaded = os.path.join(str(tmp_path), "downloaded.bin")
    host.exec("curl", "-6", "-sf", "--max-time", "120", "-o", downloaded,
              "http://[%s]/bytes/%d" % (RESPONDER6, 4 * MIB), timeout=150)
    assert sha256_of(downloaded) == hashlib.sha256(deterministic_bytes(4 * MIB)).hexdigest()
    page = host.exec("curl", "-6", "-sf", "--max-time", "20", "http://[%s]/" % RESPONDER6).stdout
    assert "tunrelay tr0" in page

    payload = random_file(tmp_path, 4 * MIB)
    echoed = os.path.join(str(tmp_path), "echoed.bin")
    with open(payload, "rb") as source, open(echoed, "wb") as sink:
        host.exec_to(["nc", "-6", "-N", "-w", "30", RESPONDER6, "7"], stdin=source, stdout=sink, timeout=150)
    assert sha256_of(echoed) == sha256_of(payload)
    received_before = status(relay)["responder"]["tcp"]["segments_received"]
    with open(payload, "rb") as source, open(os.devnull, "wb") as sink:
        host.exec_to(["nc", "-6", "-N", "-w", "30", RESPONDER6, "9"], stdin=source, stdout=sink, timeout=150)
    # discard took the 4 MiB: at least one segment per MSS of it arrived
    assert status(relay)["responder"]["tcp"]["segments_received"] - received_before >= 4 * MIB // 1340

    wait_for(lambda: not _open_connections(host), 30, message="no open connection to the responder")
    responder = status(relay)["responder"]
    assert responder["ipv6_reassembled"] >= 5 and responder["ipv6_fragments_sent"] >= 10
    assert responder["tcp"].get("resets_sent", 0) <= 2
    if mode == "tap":
        # The kernel's DAD for SHARES_OUR_GROUP reached the responder and was left alone.
        assert responder["drops"].get("nd_not_for_us", 0) >= 1, responder["drops"]
        assert "dadfailed" not in host.exec("ip", "-6", "addr", "show", "dev", "tr0").stdout
        neighbours = host.exec("ip", "-6", "neigh", "show", "dev", "tr0").stdout
        assert RESPONDER6 in neighbours and "02:00:00:00:00:09" in neighbours
    assert "Traceback" not in relay.log()


def test_malformed_extension_headers_are_counted_and_harmless(lab):
    host = lab.host("m")
    relay = lab.relay(host, config("tun"))
    host.ping(RESPONDER6)
    script = """
from scapy.all import *
dst = %r
bad = [
    IPv6(dst=dst, nh=0) / Raw(b"\\x3a\\x05" + b"\\x00" * 6),                        # truncated chain
    IPv6(dst=dst) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / ICMPv6EchoRequest(),  # HBH not first
    IPv6(dst=dst) / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x83, optdata=b"x")]) / ICMPv6EchoRequest(),
    IPv6(dst=dst) / IPv6ExtHdrRouting(segleft=1, addresses=["2001:db8::7"]) / ICMPv6EchoRequest(),
    IPv6(dst=dst, nh=60) / Raw(b"\\x3a\\x00\\x01\\x09" + b"\\x00" * 4),              # option past the end
    IPv6(dst=dst, nh=253) / Raw(b"x" * 8),                                             # unknown protocol
]
chain = IPv6(dst=dst)
for _ in range(9):
    chain = chain / IPv6ExtHdrDestOpt()
bad.append(chain / ICMPv6EchoRequest())
answers = [sr1(packet, timeout=1, verbose=False, iface="tr0") for packet in bad]
print(",".join("%%d.%%d" %% (a[ICMPv6ParamProblem].code, a[ICMPv6ParamProblem].ptr)
               if a is not None and a.haslayer(ICMPv6ParamProblem) else "-" for a in answers))
""" % RESPONDER6
    result = host.exec(sys.executable, "-c", script, timeout=120)
    assert result.stdout.strip().split(",") == ["-", "1.40", "2.42", "0.42", "-", "1.6", "-"], result.stdout
    drops = status(relay)["responder"]["drops"]
    for reason in ("ipv6_truncated_extension_header", "ipv6_hop_by_hop_not_first", "ipv6_unrecognized_option",
                   "ipv6_routing_header", "ipv6_bad_option_length", "ipv6_unknown_protocol",
                   "ipv6_too_many_extension_headers"):
        assert drops.get(reason) == 1, (reason, drops)
    host.ping(RESPONDER6)
    assert "Traceback" not in relay.log()


def _open_connections(host):
    lines = host.exec("ss", "-tanH", "dst", "[%s]" % RESPONDER6).stdout.splitlines()
    return [line for line in lines if line.strip() and not line.startswith("TIME-WAIT")]
