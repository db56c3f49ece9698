"""Shared builders for the responder stack tests: scapy frames in, scapy packets out."""

from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, raw
from scapy.layers.inet import defragment

from tunrelay.stack.interface import ResponderInterface

OUR_IP = "10.9.0.1"
OUR_MAC = "02:00:00:00:00:01"
PEER_IP = "10.9.0.2"
PEER_MAC = "02:00:00:00:00:02"
BROADCAST = "ff:ff:ff:ff:ff:ff"


def mac_bytes(text):
    return bytes.fromhex(text.replace(":", ""))


def ip_bytes(text):
    return bytes(int(part) for part in text.split("."))


def make_interface(mode, tcp=None, mtu=1500, **kwargs):
    return ResponderInterface(mode, OUR_IP, mac_bytes(OUR_MAC) if mode == "tap" else None,
                              mtu, tcp, ip_id_start=1000, **kwargs)


def arp_request(src_ip=PEER_IP, src_mac=PEER_MAC, target=OUR_IP, eth_dst=BROADCAST):
    return raw(Ether(dst=eth_dst, src=src_mac) /
               ARP(op=1, hwsrc=src_mac, psrc=src_ip, hwdst="00:00:00:00:00:00", pdst=target))


def learned_tap(**kwargs):
    """A tap interface that has learnt the peer's MAC from an ARP request."""
    interface = make_interface("tap", **kwargs)
    interface.frame_received(arp_request(), 0.0)
    return interface


def frame(mode, ip_packet, eth_dst=OUR_MAC, eth_src=PEER_MAC):
    """Serialize an IP packet (scapy) for the link: bare in tun mode, in Ethernet in tap."""
    if mode == "tun":
        return raw(ip_packet)
    return raw(Ether(dst=eth_dst, src=eth_src) / ip_packet)


def ping(payload=b"ping", ident=0x4242, seq=1, src=PEER_IP, dst=OUR_IP, **ip_fields):
    return IP(src=src, dst=dst, **ip_fields) / ICMP(type=8, id=ident, seq=seq) / payload


def ip_packets(mode, frames, layer=IP, ethertype=0x0800):
    """Parse emitted frames into scapy IP packets, checking the Ethernet header in tap mode."""
    packets = []
    for out in frames:
        if mode == "tun":
            packets.append(layer(out))
        else:
            ether = Ether(out)
            assert ether.src == OUR_MAC and ether.type == ethertype
            packets.append(ether[layer])
    return packets


def assert_checksums_valid(packet):
    """Scapy recomputes every checksum; the bytes must not change."""
    rebuilt = packet.copy()
    for layer in (IP, ICMP, UDP, TCP):
        if rebuilt.haslayer(layer):
            del rebuilt[layer].chksum
    assert raw(rebuilt) == raw(packet)


def assert_ip_header_checksum(packet):
    rebuilt = packet.copy()
    del rebuilt.chksum
    assert raw(rebuilt)[:packet.ihl * 4] == raw(packet)[:packet.ihl * 4]


def reassemble(packets):
    """Defragment emitted packets with scapy, checking each fragment's header checksum."""
    for packet in packets:
        assert_ip_header_checksum(packet)
    return [IP(raw(p)) for p in defragment(packets)]


class FakeTcp:
    """A TcpLayer double that records input and returns scripted output."""

    def __init__(self):
        self.received = []
        self.outgoing = []
        self.polled = []
        self.deadline = None

    def segment_received(self, source, destination, segment, now):
        self.received.append((source, destination, segment, now))

    def pop_outgoing(self):
        outgoing, self.outgoing = self.outgoing, []
        return outgoing

    def poll(self, now):
        self.polled.append(now)

    def next_deadline(self):
        return self.deadline


# -- IPv6 ------------------------------------------------------------------------------------

OUR_IP6 = "2001:db8::9"
PEER_IP6 = "2001:db8::2"
PEER_LINK_LOCAL = "fe80::2"
SOLICITED = "ff02::1:ff00:9"          # our solicited-node group
SOLICITED_MAC = "33:33:ff:00:00:09"


def ip6_bytes(text):
    import socket
    return socket.inet_pton(socket.AF_INET6, text)


def make_interface6(mode, tcp=None, mtu=1500, dual=False):
    addresses = [OUR_IP, OUR_IP6] if dual else [OUR_IP6]
    return ResponderInterface(mode, addresses, mac_bytes(OUR_MAC) if mode == "tap" else None,
                              mtu, tcp, ip_id_start=1000)


def neighbour_solicitation(src=PEER_IP6, dst=SOLICITED, target=OUR_IP6, lladdr=PEER_MAC,
                           eth_dst=SOLICITED_MAC, hlim=255):
    from scapy.all import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    packet = IPv6(src=src, dst=dst, hlim=hlim) / ICMPv6ND_NS(tgt=target)
    if lladdr is not None:
        packet = packet / ICMPv6NDOptSrcLLAddr(lladdr=lladdr)
    return raw(Ether(dst=eth_dst, src=PEER_MAC) / packet)


def learned_tap6(**kwargs):
    """A tap interface with IPv6 that has learnt the peer's MAC from its solicitation."""
    interface = make_interface6("tap", **kwargs)
    interface.frame_received(neighbour_solicitation(), 0.0)
    return interface


def interface6(mode, **kwargs):
    return learned_tap6(**kwargs) if mode == "tap" else make_interface6("tun", **kwargs)


def ping6(payload=b"ping", ident=0x4242, seq=1, src=PEER_IP6, dst=OUR_IP6, **ip_fields):
    from scapy.all import ICMPv6EchoRequest, IPv6
    return IPv6(src=src, dst=dst, **ip_fields) / ICMPv6EchoRequest(id=ident, seq=seq, data=payload)


def frame6(mode, ip_packet, eth_dst=OUR_MAC, eth_src=PEER_MAC):
    if mode == "tun":
        return raw(ip_packet)
    return raw(Ether(dst=eth_dst, src=eth_src, type=0x86DD) / ip_packet)


def ip6_packets(mode, frames):
    """Parse emitted frames into scapy IPv6 packets, checking the Ethernet header in tap mode."""
    from scapy.all import IPv6
    return ip_packets(mode, frames, IPv6, 0x86DD)


def assert_icmpv6_checksum_valid(packet):
    """Scapy recomputes the upper-layer checksum over the pseudo-header; it must agree."""
    from scapy.all import IPv6
    rebuilt = packet.copy()
    layer = rebuilt[IPv6].payload
    while not any(name in layer.fields for name in ("cksum", "chksum")):   # extension headers
        assert layer.payload, "no upper-layer checksum in %s" % packet.summary()
        layer = layer.payload
    for name in ("cksum", "chksum"):
        if name in layer.fields:
            delattr(layer, name)
    assert raw(rebuilt) == raw(packet)
