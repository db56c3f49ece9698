"""Test-side helpers: scapy builds the peer's segments and parses the stack's output.

Scapy is the independent oracle: nothing here uses tunrelay.wire.tcp, so a bug in our
parser or emitter cannot cancel itself out.
"""

import socket

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from tunrelay.stack.tcp import TcpStack

SERVER = "10.0.0.1"
CLIENT = "10.0.0.2"
SERVER_B = socket.inet_aton(SERVER)
CLIENT_B = socket.inet_aton(CLIENT)
SECRET = b"k" * 32
PORT = 80
MASK = 0xFFFFFFFF


def build(sport, dport, flags, seq, ack=0, window=65535, payload=b"", options=(),
          src=CLIENT, dst=SERVER, corrupt_checksum=False):
    """The TCP segment bytes (IP payload) of a scapy-built packet."""
    tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq & MASK, ack=ack & MASK,
              window=window, options=list(options))
    packet = IP(src=src, dst=dst) / tcp
    if payload:
        packet = packet / Raw(payload)
    segment = bytes(packet)[20:]
    if corrupt_checksum:
        segment = segment[:16] + bytes([segment[16] ^ 0xFF]) + segment[17:]
    return segment


def parse(item):
    """Parse one ``pop_outgoing`` tuple with scapy, asserting the checksum is right."""
    source, destination, segment = item
    assert len(source) == 4 and len(destination) == 4
    packet = IP(src=socket.inet_ntoa(source), dst=socket.inet_ntoa(destination),
                proto=6) / Raw(segment)
    reparsed = IP(bytes(packet))
    tcp = reparsed[TCP]
    claimed = tcp.chksum
    del tcp.chksum
    assert IP(bytes(reparsed))[TCP].chksum == claimed, "bad checksum from the stack"
    return IP(bytes(packet))[TCP]


def flags(tcp):
    return str(tcp.flags)


def payload_of(tcp):
    return bytes(tcp.payload) if tcp.payload else b""


def option(tcp, name):
    for key, value in tcp.options:
        if key == name:
            return value
    return None


def fire(stack, clock):
    """Jump to the stack's next deadline and poll; return the time it fired at."""
    clock.now = stack.next_deadline()
    stack.poll(clock.now)
    return clock.now


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def advance(self, seconds):
        self.now += seconds
        return self.now


class Peer:
    """A scripted client: remembers its own sequence numbers and the server's."""

    def __init__(self, stack, clock, sport=40000, dport=PORT, isn=1000, src=CLIENT):
        self.stack = stack
        self.clock = clock
        self.sport = sport
        self.dport = dport
        self.src = src
        self.src_b = socket.inet_aton(src)
        self.isn = isn & MASK
        self.snd_nxt = self.isn
        self.rcv_nxt = None
        self.server_isn = None

    def send(self, flags, seq=None, ack=None, payload=b"", window=65535, options=(),
             advance=True, **kwargs):
        if seq is None:
            seq = self.snd_nxt
        if ack is None:
            ack = self.rcv_nxt if self.rcv_nxt is not None else 0
        segment = build(self.sport, self.dport, flags, seq, ack, window, payload, options,
                        src=self.src, **kwargs)
        if advance and seq == self.snd_nxt:
            self.snd_nxt = (self.snd_nxt + len(payload) + ("S" in flags) + ("F" in flags)) & MASK
        self.stack.segment_received(self.src_b, SERVER_B, segment, self.clock.now)
        return segment

    def recv(self):
        return [parse(item) for item in self.stack.pop_outgoing()]

    def recv_one(self):
        out = self.recv()
        assert len(out) == 1, out
        return out[0]

    def handshake(self, mss=1460, wscale=7, window=65535, complete=True, sack=False):
        options = [("MSS", mss)] + ([("WScale", wscale)] if wscale is not None else [])
        self.send("S", options=options + ([("SAckOK", b"")] if sack else []), window=window)
        synack = self.recv_one()
        assert flags(synack) == "SA"
        assert synack.ack == self.snd_nxt
        self.server_isn = synack.seq
        self.rcv_nxt = (synack.seq + 1) & MASK
        if complete:
            self.send("A", window=window)
        return synack

    def send_sack(self, blocks, ack=None, **kwargs):
        """A pure ACK carrying SACK blocks [(left, right), ...] (RFC 2018)."""
        edges = tuple(edge & MASK for block in blocks for edge in block)
        return self.send("A", ack=ack, options=[("NOP", None), ("NOP", None), ("SAck", edges)],
                         **kwargs)

    def ack(self, tcp, **kwargs):
        """Acknowledge everything in server segment ``tcp``."""
        end = (tcp.seq + len(payload_of(tcp)) + ("F" in flags(tcp))) & MASK
        if ((end - self.rcv_nxt) & MASK) < 1 << 31:
            self.rcv_nxt = end
        self.send("A", **kwargs)


def make_stack(backlog=16, mss=1460):
    stack = TcpStack(SERVER_B, SECRET, mss=mss)
    stack.listen(PORT, backlog)
    return stack


def accepted_connection(stack, clock, **handshake):
    """A peer and the established server connection, with events drained."""
    peer = Peer(stack, clock)
    peer.handshake(**handshake)
    assert peer.recv() == []
    events = stack.pop_events()
    assert len(events) == 1
    return peer, events[0].conn
