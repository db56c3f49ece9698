"""The interface driving the real TCP core through the TcpLayer contract (scapy as oracle).

Skipped while the TCP core is not importable; it is owned and unit-tested elsewhere.
"""

import pytest
from scapy.all import IP, TCP, Ether, raw

from stack_helpers import (
    OUR_IP, PEER_IP, PEER_MAC, assert_checksums_valid, frame, ip_bytes, ip_packets,
    learned_tap, make_interface)

tcp_stack = pytest.importorskip("tunrelay.stack.tcp.stack")


@pytest.mark.parametrize("mode", ["tun", "tap"])
def test_syn_to_a_listener_is_answered_with_a_syn_ack(mode):
    stack = tcp_stack.TcpStack(ip_bytes(OUR_IP), b"k" * 32)
    stack.listen(80)
    interface = learned_tap(tcp=stack) if mode == "tap" else make_interface("tun", tcp=stack)
    syn = IP(src=PEER_IP, dst=OUR_IP) / TCP(sport=40000, dport=80, flags="S", seq=1000,
                                            options=[("MSS", 1460)])
    out = interface.frame_received(frame(mode, syn), 0.0)
    [reply] = ip_packets(mode, out)
    assert_checksums_valid(reply)
    assert reply.flags.DF and (reply.src, reply.dst) == (OUR_IP, PEER_IP)
    assert reply[TCP].flags == "SA" and reply[TCP].ack == 1001
    if mode == "tap":
        assert Ether(out[0]).dst == PEER_MAC


def test_segment_with_bad_checksum_is_not_answered():
    stack = tcp_stack.TcpStack(ip_bytes(OUR_IP), b"k" * 32)
    stack.listen(80)
    interface = make_interface("tun", tcp=stack)
    syn = raw(IP(src=PEER_IP, dst=OUR_IP) / TCP(sport=40000, dport=80, flags="S", chksum=1))
    assert interface.frame_received(syn, 0.0) == []
