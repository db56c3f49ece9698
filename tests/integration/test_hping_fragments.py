"""What hping3 really sends when it fragments, and what the responder makes of it (issue 15).

Captured with tcpdump on tr0 (the first fragments of the first CAPTURED datagrams): every
datagram of one ``hping3 -1 -d 3000`` run carries the same IP identification. Paced, each datagram completes before the next begins, so nothing
conflicts; under --flood the device drops frames, a datagram left incomplete shares its
reassembly key with the next one, and the responder counts reasm_overlap_conflict. The
mechanism is reproduced fragment by fragment in tests/unit/stack/test_stack_reassembly_id_reuse.py.
"""

import collections
import json
import os
import signal

from scapy.all import ICMP, IP, rdpcap

from .conftest import require_tool
from .netns import read_log, wait_for
from .test_responder import RESPONDER, responder_config

CAPTURED = 3000


def _responder(relay):
    return json.loads(relay.tool("status", "-s", relay.config["control_socket"], "--json").stdout)["responder"]


def test_hping3_reuses_one_ip_id_for_every_fragmented_datagram(lab, tmp_path):
    require_tool("hping3")
    host = lab.host("h")
    relay = lab.relay(host, responder_config("tun", lossy=False))
    host.ping(RESPONDER)
    capture, log = os.path.join(str(tmp_path), "hping.pcap"), os.path.join(str(tmp_path), "tcpdump.log")
    with open(log, "w") as stderr:
        # First fragments only: MF set, offset zero.
        tcpdump = host.popen("tcpdump", "-i", "tr0", "-n", "-U", "-s", "64", "-c", str(CAPTURED), "-w", capture,
                             "icmp and dst %s and (ip[6:2] & 0x3fff) == 0x2000" % RESPONDER, stderr=stderr)
    wait_for(lambda: "listening on" in read_log(log), 10, message="tcpdump to listen")

    host.exec("hping3", "-1", "-d", "3000", "-c", "10", "-i", "u50000", RESPONDER, check=False, timeout=30)
    paced = _responder(relay)
    host.exec("timeout", "-s", "INT", "2", "hping3", "--flood", "-1", "-d", "3000", RESPONDER, check=False,
              timeout=30)
    flooded = _responder(relay)
    if tcpdump.poll() is None:
        tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(10)

    firsts = rdpcap(capture)
    ids = collections.Counter(packet[IP].id for packet in firsts)
    sequences = len({(packet[ICMP].id, packet[ICMP].seq) for packet in firsts})
    print("captured the first fragments of %d datagrams (%d distinct ICMP id/sequence) with IP IDs %s; "
          "responder: %d fragments in, %d reassembled, reasm_overlap_conflict %d after the paced run and "
          "%d after the flood" % (
              len(firsts), sequences, dict(ids), flooded.get("ipv4_fragments_received", 0),
              flooded.get("ipv4_reassembled", 0), paced["drops"].get("reasm_overlap_conflict", 0),
              flooded["drops"].get("reasm_overlap_conflict", 0)))
    assert len(firsts) > 100 and sequences == len(firsts)    # many different datagrams ...
    assert len(ids) <= 2                                     # ... under one ID per hping3 run
    assert paced.get("ipv4_reassembled", 0) >= 10 and paced["drops"].get("reasm_overlap_conflict", 0) == 0
    assert "Traceback" not in relay.log()
