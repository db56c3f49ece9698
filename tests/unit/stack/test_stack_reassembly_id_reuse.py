"""hping3's fragments all carry one IP ID, and that alone explains `reasm_overlap_conflict`.

When hping3 fragments (``-f``, or a ``-d`` larger than the MTU, which turns ``-f`` on) it
gives every datagram of the run the same identification, ``getpid() & 255`` (hping3's
sendip.c: "if you need fragmentation id must not be randomic"; the FIXME there says it
should have been incremented). tests/integration/test_hping_fragments.py captures that on
the wire. With one source, destination, protocol and ID, all the datagrams of a run share
one reassembly key (RFC 791), so as long as each one completes before the next begins
nothing happens; but when a fragment other than the first is lost (the device queue
overflows under --flood), the incomplete datagram is still there when the next datagram's
first fragment arrives, with other bytes in the same place (ICMP sequence and checksum):
an overlap that disagrees. Our reassembly discards such a datagram by design (reassembly.py:
an ambiguous datagram is the IDS-evasion overlap attack), so one conflict per loss burst:
the fragments really overlap with different bytes; it is not a reassembly bug. A sender with
fresh IDs (Linux ping) loses only the damaged datagram.

Linux differs in policy, not in what it sees: a fragment that falls within data it already
holds is a duplicate to it (inet_frag_queue_insert's IPFRAG_DUP), dropped without comparing
bytes, so the next datagram's head and middle are dropped and its tail completes the damaged
one, spliced. Measured here (kernel 6.18, veth, 2 s of ``hping3 --flood -1 -d 3000`` with
0.1% nftables loss, 256 fragments dropped): IpExtReasmOverlaps 0, IpReasmFails 0,
IpReasmOKs 75572 of about 75654 datagrams.
"""

from scapy.all import ICMP, IP, fragment, raw

from stack_helpers import OUR_IP, PEER_IP, frame, ip_packets, make_interface

HPING_ID = 4242 & 255          # getpid() & 255
FRAGMENT_SIZE = 1376           # hping3's virtual MTU for a 1400-byte link: (1400 - 20) rounded to 8


def hping_datagram(sequence, ip_id=HPING_ID):
    """What ``hping3 -1 -d 3000`` sends: an echo request of 3000 'X's, cut by hping3 itself."""
    packet = IP(src=PEER_IP, dst=OUR_IP, id=ip_id) / ICMP(type=8, id=4242, seq=sequence) / (b"X" * 3000)
    return fragment(IP(raw(packet)), fragsize=FRAGMENT_SIZE)


def feed(interface, fragments):
    replies = []
    for piece in fragments:
        for packet in ip_packets("tun", interface.frame_received(frame("tun", piece), 1.0)):
            if packet.haslayer(ICMP) and packet.frag == 0:
                replies.append(packet[ICMP].seq)
    return replies


def test_hping_fragments_look_as_captured():
    fragments = hping_datagram(1)
    assert [len(raw(f.payload)) for f in fragments] == [1376, 1376, 256]
    assert {f.id for f in fragments + hping_datagram(2)} == {HPING_ID}


def test_a_lost_last_fragment_under_a_reused_id_is_one_overlap_conflict():
    interface = make_interface("tun", mtu=1400)
    datagrams = [hping_datagram(sequence) for sequence in (1, 2, 3, 4)]
    datagrams[1] = datagrams[1][:-1]                     # datagram 2 loses its last fragment
    replies = feed(interface, [piece for datagram in datagrams for piece in datagram])
    assert interface.drops["reasm_overlap_conflict"] == 1
    # 3's first fragment met 2's and was thrown away with it; 3's tail then completed with
    # 4's first fragment, whose bytes it matches (hping3's data is all 'X'): 4 is answered.
    assert replies == [1, 4]
    assert interface.stats["ipv4_reassembled"] == 2


def test_a_lost_first_fragment_conflicts_with_nothing():
    interface = make_interface("tun", mtu=1400)
    datagrams = [hping_datagram(sequence) for sequence in (1, 2, 3)]
    datagrams[1] = datagrams[1][1:]                      # datagram 2 loses its first fragment
    replies = feed(interface, [piece for datagram in datagrams for piece in datagram])
    assert interface.drops["reasm_overlap_conflict"] == 0
    assert replies == [1, 3]                              # 3's head completed 2's identical tail


def test_with_a_fresh_id_per_datagram_the_same_loss_costs_only_that_datagram():
    interface = make_interface("tun", mtu=1400)
    datagrams = [hping_datagram(sequence, ip_id=1000 + sequence) for sequence in (1, 2, 3, 4)]
    datagrams[1] = datagrams[1][:-1]
    replies = feed(interface, [piece for datagram in datagrams for piece in datagram])
    assert interface.drops["reasm_overlap_conflict"] == 0
    assert replies == [1, 3, 4]
