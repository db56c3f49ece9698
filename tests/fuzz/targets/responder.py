"""The responder's frame input (tunrelay/stack/interface.py ``ResponderInterface``) and the
TCP core behind it (tunrelay/stack/tcp/), in tun and tap mode.

Contract: ``frame_received`` and ``poll`` never raise; bad input is counted in ``drops``.
The owner API raises ``TcpStateError`` only for ``send`` on a connection that can no
longer send, which the harness's owner catches there. Nothing else may escape.

An input picks tun or tap, the MTU and the listen backlog, then runs a program: raw
frames; IPv4 datagrams built from fuzz fields (checksum right unless corrupted on
purpose); TCP segments that follow the connection (sequence and acknowledgement numbers
are the responder's own, read from its output, plus a fuzzed offset) so that handshakes
complete and data, FIN, RST, SACK and window probes reach established connections;
trains of data segments with holes between them (what fills the out-of-order queue and
the SACK blocks: loss, reordering, or a peer inflating that state); fragment trains in
fuzzed order with overlaps; ARP; Ethernet headers with odd addresses;
time steps that fire timers; and owner calls (send, close, abort, pause, resume).

Checks: every frame the responder emits is well formed (Ethernet source our MAC in tap
mode, IPv4 from our address with a right header checksum, TCP and ICMP checksums right,
ARP parseable) and fits the MTU; after ``poll(now)`` no deadline is left at or before
``now`` (else the Twisted timer would spin).
"""

import ipaddress
import random

from tunrelay.stack.interface import ResponderInterface
from tunrelay.stack.tcp import events as tcp_events
from tunrelay.stack.tcp.connection import TcpStateError
from tunrelay.stack.tcp.stack import TcpStack
from tunrelay.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket
from tunrelay.wire.ethernet import (
    BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetHeader)
from tunrelay.wire.icmp import IcmpMessage
from tunrelay.wire.ipv4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Ipv4Header
from tunrelay.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpSegment
from tunrelay.wire.udp import UdpHeader

from ._input import FuzzInput

REJECTIONS = ()
COVERS = ["tunrelay/stack/interface.py", "tunrelay/stack/arp_cache.py",
          "tunrelay/stack/reassembly.py", "tunrelay/stack/icmp.py",
          "tunrelay/stack/tcp/stack.py", "tunrelay/stack/tcp/listener.py",
          "tunrelay/stack/tcp/connection.py", "tunrelay/stack/tcp/sender.py",
          "tunrelay/stack/tcp/receiver.py", "tunrelay/stack/tcp/reassembly.py",
          "tunrelay/stack/tcp/congestion.py", "tunrelay/stack/tcp/rtt.py"]
MAX_LEN = 4096

OUR_IP = ipaddress.IPv4Address("198.51.100.9").packed
OUR_MAC = bytes.fromhex("0200c6336409")
PEER_IP = ipaddress.IPv4Address("198.51.100.1").packed
PEER_MAC = bytes.fromhex("020000000001")
ODD_ADDRESSES = (bytes(4), b"\x7f\x00\x00\x01", b"\xff\xff\xff\xff", b"\xe0\x00\x00\x05", OUR_IP,
                 ipaddress.IPv4Address("203.0.113.5").packed)
ODD_MACS = (BROADCAST_MAC, b"\x01\x00\x5e\x00\x00\x01", bytes(6), OUR_MAC, b"\x02" * 6)
PORTS = (80, 7, 40000)
FLAG_CHOICES = (SYN, ACK, PSH | ACK, FIN | ACK, RST, RST | ACK, SYN | ACK, None)
MAX_OPERATIONS = 10
MAX_POLL_ROUNDS = 32


class _Flow:
    """What the harness, as the peer, knows of one 4-tuple: the next sequence numbers."""

    def __init__(self, peer_seq):
        self.peer_seq = peer_seq   # the responder's RCV.NXT as far as we know
        self.our_seq = 0           # the responder's SND.NXT, read from its segments
        self.ts_val = 0


class _Harness:
    def __init__(self, inp):
        self.inp = inp
        options = inp.u8()
        self.mode = "tap" if options & 1 else "tun"
        self.mtu = (576, 1500, 9000)[(options >> 1) % 3]
        self.stack = TcpStack(OUR_IP, b"k" * 32)
        self.stack.listen(80, backlog=1 + (options >> 4))
        self.stack.listen(7)
        self.interface = ResponderInterface(
            self.mode, "198.51.100.9", OUR_MAC if self.mode == "tap" else None, self.mtu,
            tcp=self.stack, ip_id_start=0)
        self.now = 1000.0
        self.flows = {}
        self.last_ports = self.last_end = None   # of the last tcp_segment, for tcp_train
        self.connections = []
        self.echo = bool(options & 8)
        if self.mode == "tap":
            self.check(self.interface.start(self.now))

    # -- the responder's output --------------------------------------------------------
    def check(self, frames):
        for frame in frames:
            if self.mode == "tap":
                assert len(frame) <= self.mtu + 14, len(frame)
                ethernet, packet = EthernetHeader.parse(frame)
                assert ethernet.source == OUR_MAC
                if ethernet.ethertype == ETHERTYPE_ARP:
                    ArpPacket.parse(packet)
                    continue
                assert ethernet.ethertype == ETHERTYPE_IPV4
            else:
                packet = frame
            assert len(packet) <= self.mtu, len(packet)
            header, payload = Ipv4Header.parse(packet)
            assert header.source == OUR_IP
            if header.is_fragment:
                continue
            if header.protocol == PROTO_TCP:
                self._learn(TcpSegment.parse(payload, header.source, header.destination))
            else:
                assert header.protocol == PROTO_ICMP, header.protocol
                IcmpMessage.parse(payload)

    def _learn(self, segment):
        flow = self.flows.setdefault((segment.destination_port, segment.source_port), _Flow(0))
        flow.our_seq = (segment.seq + segment.seg_len) & 0xFFFFFFFF
        if segment.has_ack:
            flow.peer_seq = segment.ack
        if segment.timestamp is not None:
            flow.ts_val = segment.timestamp[0]

    def settle(self):
        """What ResponderPort does after every input: serve the events, send, poll."""
        for _ in range(MAX_POLL_ROUNDS):
            popped = self.stack.pop_events()
            for event in popped:
                self._serve(event)
            self.check(self.interface.poll(self.now))
            deadline = self.interface.next_deadline()
            if not popped and (deadline is None or deadline > self.now):
                return
        raise AssertionError("events or due deadlines never settle")

    def _serve(self, event):
        connection = event.conn
        if isinstance(event, tcp_events.ConnectionAccepted):
            self.connections.append(connection)
        elif isinstance(event, tcp_events.DataReceived):
            if self.echo:
                self._send(connection, event.data)
        elif isinstance(event, tcp_events.PeerClosed):
            connection.close(self.now)
        elif isinstance(event, tcp_events.ConnectionLost):
            assert connection in self.connections
            self.connections.remove(connection)

    def _send(self, connection, data):
        try:
            connection.send(data, self.now)
        except TcpStateError:
            pass   # documented: the connection can no longer send

    # -- building input ---------------------------------------------------------------
    def link(self, packet, ethertype=ETHERTYPE_IPV4):
        if self.mode == "tun":
            return packet
        return EthernetHeader(OUR_MAC, PEER_MAC, ethertype).emit(packet)

    def receive(self, frame):
        self.check(self.interface.frame_received(frame, self.now))
        self.settle()

    def ipv4(self, protocol, payload, **fields):
        inp = self.inp
        flags = inp.u8()
        source = inp.choice(ODD_ADDRESSES) if flags & 1 else PEER_IP
        destination = inp.choice(ODD_ADDRESSES) if flags & 2 else OUR_IP
        options = inp.exact(4 * (inp.u8() % 11)) if flags & 4 else b""
        header = Ipv4Header(source, destination, protocol, ttl=inp.u8() or 64,
                            identification=inp.u16(), dont_fragment=bool(flags & 8),
                            tos=inp.u8() if flags & 16 else 0, options=options, **fields)
        packet = header.emit(payload)
        if flags & 32:   # one damaged byte: checksum, length or version
            position = inp.u8() % len(packet)
            packet = packet[:position] + bytes([packet[position] ^ (inp.u8() or 1)]) + packet[position + 1:]
        return packet

    def tcp_segment(self):
        inp = self.inp
        source_port = inp.choice((40000, 40001, 40002, None)) or inp.u16()
        destination_port = inp.choice(PORTS + (None,)) or inp.u16()
        flags = inp.choice(FLAG_CHOICES)
        flags = inp.u8() if flags is None else flags
        flow = self.flows.get((source_port, destination_port))
        if flow is None or flags & SYN:
            flow = self.flows[(source_port, destination_port)] = _Flow(inp.u32())
        self.last_ports = (source_port, destination_port)
        offset = inp.u8()
        seq = (flow.peer_seq + (0 if offset < 0xC0 else (offset - 0xE0) * 100)) & 0xFFFFFFFF
        offset = inp.u8()
        ack = (flow.our_seq + (0 if offset < 0xC0 else offset - 0xE0)) & 0xFFFFFFFF
        window = inp.choice((65535, 0, 512, None))
        window = inp.u16() if window is None else window
        option_bits = inp.u8()
        options = {}
        if option_bits & 1:
            options["mss"] = inp.u16()
        if option_bits & 2:
            options["window_scale"] = inp.u8() % 16
        if option_bits & 4:
            options["sack_permitted"] = True
        if option_bits & 8:
            options["timestamp"] = (inp.u32(), flow.ts_val)
        if option_bits & 16:
            options["sack_blocks"] = tuple(
                ((flow.our_seq - inp.u16()) & 0xFFFFFFFF, (flow.our_seq - inp.u8()) & 0xFFFFFFFF)
                for _ in range(1 + inp.u8() % 3))
        payload = inp.sized(1460) if option_bits & 32 else b""
        segment = TcpSegment(source_port, destination_port, seq, ack, flags, window, **options,
                             payload=payload)
        try:
            encoded = segment.emit(PEER_IP, OUR_IP)
        except ValueError:   # more options than fit in 40 bytes
            encoded = TcpSegment(source_port, destination_port, seq, ack, flags, window,
                                 payload=payload).emit(PEER_IP, OUR_IP)
        if not flags & RST:
            flow.peer_seq = (seq + segment.seg_len) & 0xFFFFFFFF
        self.last_end = (seq + segment.seg_len) & 0xFFFFFFFF
        return self.ipv4(PROTO_TCP, encoded)

    def tcp_train(self):
        """After ``tcp_segment``: up to seven data segments on its flow, each a fuzzed hole
        past the end of the one before, with or without timestamps, in clean IPv4 packets.
        One operation builds as many out-of-order ranges as seven would one by one."""
        inp = self.inp
        source_port, destination_port = self.last_ports
        flow = self.flows[self.last_ports]
        cursor = self.last_end
        timestamps = inp.flag()
        for _ in range(inp.u8() % 8):
            cursor = (cursor + 1 + inp.u8()) & 0xFFFFFFFF
            payload = bytes([inp.u8()]) * (1 + inp.u8())
            options = {"timestamp": (inp.u32(), flow.ts_val)} if timestamps else {}
            segment = TcpSegment(source_port, destination_port, cursor, flow.our_seq, PSH | ACK, 65535,
                                 payload=payload, **options)
            self.receive(self.link(Ipv4Header(PEER_IP, OUR_IP, PROTO_TCP).emit(segment.emit(PEER_IP, OUR_IP))))
            cursor = (cursor + len(payload)) & 0xFFFFFFFF

    def fragments(self):
        inp = self.inp
        kind = inp.u8() % 3
        body = inp.sized(200) + bytes(inp.u16() % 3200)
        if kind == 0:
            protocol, payload = PROTO_ICMP, IcmpMessage.echo(8, inp.u16(), inp.u16(), body).emit()
        elif kind == 1:
            protocol, payload = PROTO_UDP, UdpHeader(inp.u16(), 53).emit(body, PEER_IP, OUR_IP)
        else:
            protocol, payload = PROTO_TCP, body
        size = 8 * (1 + inp.u8() % 64)
        pieces = [(start, payload[start:start + size]) for start in range(0, len(payload), size)]
        order = inp.u8()
        if order & 1:
            pieces.reverse()
        if order & 2:
            random.Random(inp.u8()).shuffle(pieces)
        if order & 4 and pieces:
            pieces.append(pieces[inp.u8() % len(pieces)])
        if order & 8 and pieces:   # an overlapping piece with different bytes
            start, data = pieces[inp.u8() % len(pieces)]
            pieces.append((max(0, start - 8), bytes(len(data) + 8)))
        identification = inp.u16()
        frames = []
        for start, data in pieces[:32]:
            last = start + len(data) >= len(payload)
            frames.append(self.link(Ipv4Header(
                PEER_IP, OUR_IP, protocol, identification=identification, more_fragments=not last,
                fragment_offset=start).emit(data)))
        return frames

    def arp(self):
        inp = self.inp
        operation = inp.choice((OP_REQUEST, OP_REPLY))
        sender_ip = inp.choice(ODD_ADDRESSES) if inp.flag() else PEER_IP
        target_ip = OUR_IP if inp.u8() < 0xC0 else inp.exact(4)
        packet = ArpPacket(operation, PEER_MAC, sender_ip, OUR_MAC if operation == OP_REPLY else bytes(6),
                           target_ip).emit()
        if self.mode == "tun":
            return packet
        destination = BROADCAST_MAC if operation == OP_REQUEST else OUR_MAC
        return EthernetHeader(destination, PEER_MAC, ETHERTYPE_ARP).emit(packet)

    def odd_ethernet(self):
        inp = self.inp
        destination = inp.choice(ODD_MACS + (OUR_MAC,))
        source = inp.choice(ODD_MACS + (PEER_MAC,))
        ethertype = inp.choice((ETHERTYPE_IPV4, ETHERTYPE_ARP, ETHERTYPE_IPV6, 0x0800 - 1, None)) or inp.u16()
        packet = self.ipv4(inp.choice((PROTO_ICMP, PROTO_UDP, PROTO_TCP, 99)), inp.sized(64))
        return EthernetHeader(destination, source, ethertype & 0xFFFF).emit(packet)

    def owner_call(self):
        inp = self.inp
        if not self.connections:
            return
        connection = self.connections[inp.u8() % len(self.connections)]
        action = inp.u8() % 6
        if action == 0:
            self._send(connection, inp.sized(1000) + bytes(inp.u16() % 20000))
        elif action == 1:
            connection.close(self.now, half_close=inp.flag())
        elif action == 2:
            connection.abort(self.now)
        elif action == 3:
            connection.pause_reading()
        else:
            connection.resume_reading(self.now)


def fuzz_one(data):
    inp = FuzzInput(data)
    harness = _Harness(inp)
    for _ in range(MAX_OPERATIONS):
        if not inp.remaining:
            break
        choice = inp.u8()
        operation = choice % 8
        if operation == 0:
            harness.receive(inp.sized(1600))
        elif operation == 1:
            protocol = inp.choice((PROTO_ICMP, PROTO_UDP, PROTO_TCP, 99))
            payload = inp.sized(600)
            if protocol == PROTO_ICMP and inp.flag():
                payload = IcmpMessage.echo(inp.choice((8, 0, 3, 13)), 1, 1, payload).emit()
            elif protocol == PROTO_UDP and inp.flag():
                payload = UdpHeader(inp.u16(), inp.u16()).emit(payload, PEER_IP, OUR_IP)
            harness.receive(harness.link(harness.ipv4(protocol, payload)))
        elif operation == 2:
            harness.receive(harness.link(harness.tcp_segment()))
            if choice & 0x80:
                harness.tcp_train()
        elif operation == 3:
            for frame in harness.fragments():
                harness.receive(frame)
        elif operation == 4:
            harness.receive(harness.arp())
        elif operation == 5:
            step = inp.u16()
            harness.now += step / 100.0
            deadline = harness.interface.next_deadline()
            if step & 1 and deadline is not None:
                harness.now = max(harness.now, deadline)
            harness.check(harness.interface.poll(harness.now))
            harness.settle()
        elif operation == 6:
            harness.owner_call()
            harness.settle()
        else:
            harness.receive(harness.odd_ethernet() if harness.mode == "tap" else inp.sized(64))
    return harness   # for debugging an input by hand
