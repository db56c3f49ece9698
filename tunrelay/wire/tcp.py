"""TCP header (RFC 9293 §3.1) with options (RFC 9293 §3.2, RFC 7323, RFC 2018) and checksum.

``TcpSegment`` is a checked, immutable representation in the spirit of smoltcp's
``wire::tcp`` (a checked view plus a ``Repr`` with parse and emit), folded into one class.

``TcpSegment.parse(buf, source, destination)`` validates, in this order, so that the drop
counter a caller keys on ``MalformedPacket.reason`` says what was actually wrong:

* ``truncated``: fewer than 20 bytes, the fixed header;
* ``bad_checksum``: the one's-complement sum over the IPv4/IPv6 pseudo-header and the
  whole segment is not zero (skipped only when no addresses are given, for tests);
* ``bad_data_offset``: the data offset is below 5 words or points past the buffer;
* ``bad_option``: an option's length byte is below 2 or runs past the option area, or a
  known option (MSS, window scale, SACK-permitted, timestamps) has the wrong length. A
  Linux peer never sends these, so rejecting is safer than guessing (smoltcp does too).

Unknown options are skipped by their length (RFC 9293 §3.2 MUST-6). SACK blocks (RFC
2018) are parsed into ``sack_blocks`` and emitted after the other options. The window
scale shift is clamped to 14 on parse (RFC 7323 §2.3). Ports of zero are left to the
caller to reject; this module only checks that the bytes describe a segment.

``emit(source, destination)`` lays the options out as Linux does (four-byte aligned with
NOPs) and fills in the checksum.
"""

import struct
from dataclasses import dataclass

from tunrelay.wire.checksum import internet_checksum, pseudo_header_sum
from tunrelay.wire.errors import MalformedPacket

__all__ = [
    "PROTO_TCP", "HEADER_LEN", "MAX_WINDOW_SHIFT",
    "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR",
    "TcpSegment", "flags_to_str",
]

PROTO_TCP = 6
HEADER_LEN = 20
MAX_HEADER_LEN = 60
# RFC 7323 §2.3: a shift above 14 would let the window exceed 2^30 and break the
# "half the sequence space" rule that sequence comparison depends on.
MAX_WINDOW_SHIFT = 14

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

OPT_END = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WINDOW_SCALE = 3
OPT_SACK_PERMITTED = 4
OPT_SACK = 5
OPT_TIMESTAMP = 8

_FIXED_OPTION_LENGTHS = {
    OPT_MSS: 4,
    OPT_WINDOW_SCALE: 3,
    OPT_SACK_PERMITTED: 2,
    OPT_TIMESTAMP: 10,
}

_HEADER = struct.Struct("!HHIIBBHHH")
_FLAG_NAMES = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "A"), (URG, "U"),
               (ECE, "E"), (CWR, "C"))


def flags_to_str(flags):
    """``"SA"`` for SYN|ACK, the same letters scapy prints; for logs and test messages."""
    return "".join(name for bit, name in _FLAG_NAMES if flags & bit)


@dataclass(frozen=True)
class TcpSegment:
    source_port: int
    destination_port: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent: int = 0
    mss: "int | None" = None
    window_scale: "int | None" = None
    sack_permitted: bool = False
    timestamp: "tuple[int, int] | None" = None   # (TSval, TSecr), RFC 7323 §3
    sack_blocks: tuple = ()                       # ((left, right), ...), RFC 2018 §3
    payload: bytes = b""

    # -- flag helpers -----------------------------------------------------------------
    @property
    def syn(self):
        return bool(self.flags & SYN)

    @property
    def fin(self):
        return bool(self.flags & FIN)

    @property
    def rst(self):
        return bool(self.flags & RST)

    @property
    def has_ack(self):
        return bool(self.flags & ACK)

    @property
    def seg_len(self):
        """SEG.LEN of RFC 9293 §3.4: payload plus one each for SYN and FIN."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    # -- parse ----------------------------------------------------------------------
    @classmethod
    def parse(cls, buf, source=None, destination=None):
        buf = bytes(buf)
        if len(buf) < HEADER_LEN:
            raise MalformedPacket("truncated")
        if source is not None:
            initial = pseudo_header_sum(source, destination, PROTO_TCP, len(buf))
            if internet_checksum(buf, initial) != 0:
                raise MalformedPacket("bad_checksum")
        (source_port, destination_port, seq, ack, offset_byte, flags, window, _checksum,
         urgent) = _HEADER.unpack_from(buf)
        header_len = (offset_byte >> 4) * 4
        if header_len < HEADER_LEN or header_len > len(buf):
            raise MalformedPacket("bad_data_offset")
        options = _parse_options(buf[HEADER_LEN:header_len])
        return cls(source_port, destination_port, seq, ack, flags, window, urgent,
                   payload=buf[header_len:], **options)

    # -- emit -----------------------------------------------------------------------
    def options_bytes(self):
        out = bytearray()
        if self.mss is not None:
            out += struct.pack("!BBH", OPT_MSS, 4, self.mss)
        if self.sack_permitted and self.timestamp is not None:
            out += struct.pack("!BBBBII", OPT_SACK_PERMITTED, 2, OPT_TIMESTAMP, 10,
                               *self.timestamp)
        elif self.timestamp is not None:
            out += struct.pack("!BBBBII", OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, *self.timestamp)
        elif self.sack_permitted:
            out += struct.pack("!BBBB", OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2)
        if self.window_scale is not None:
            out += struct.pack("!BBBB", OPT_NOP, OPT_WINDOW_SCALE, 3, self.window_scale)
        if self.sack_blocks:
            length = 2 + 8 * len(self.sack_blocks)
            out += struct.pack("!BBBB", OPT_NOP, OPT_NOP, OPT_SACK, length)
            for left, right in self.sack_blocks:
                out += struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF)
        if len(out) > MAX_HEADER_LEN - HEADER_LEN:
            raise ValueError("TCP options exceed 40 bytes")
        return bytes(out)

    def emit(self, source, destination):
        options = self.options_bytes()
        header_len = HEADER_LEN + len(options)
        segment = bytearray(_HEADER.pack(
            self.source_port, self.destination_port, self.seq & 0xFFFFFFFF,
            self.ack & 0xFFFFFFFF, (header_len // 4) << 4, self.flags, self.window, 0,
            self.urgent))
        segment += options
        segment += self.payload
        checksum = internet_checksum(
            segment, pseudo_header_sum(source, destination, PROTO_TCP, len(segment)))
        struct.pack_into("!H", segment, 16, checksum)
        return bytes(segment)

    def __repr__(self):
        extra = []
        for name in ("mss", "window_scale", "timestamp", "sack_blocks"):
            value = getattr(self, name)
            if value is not None and value != ():
                extra.append("%s=%r" % (name, value))
        if self.sack_permitted:
            extra.append("sack_permitted")
        return "<TCP %d>%d %s seq=%d ack=%d win=%d len=%d%s>" % (
            self.source_port, self.destination_port, flags_to_str(self.flags) or ".",
            self.seq, self.ack, self.window, len(self.payload),
            (" " + " ".join(extra)) if extra else "")


def _parse_options(data):
    """Walk the option area; return keyword arguments for ``TcpSegment``."""
    found = {}
    i = 0
    end = len(data)
    while i < end:
        kind = data[i]
        if kind == OPT_END:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            raise MalformedPacket("bad_option", "option %d has no length byte" % kind)
        length = data[i + 1]
        if length < 2 or i + length > end:
            raise MalformedPacket("bad_option", "option %d length %d" % (kind, length))
        expected = _FIXED_OPTION_LENGTHS.get(kind)
        if expected is not None and length != expected:
            raise MalformedPacket("bad_option", "option %d length %d" % (kind, length))
        body = data[i + 2:i + length]
        if kind == OPT_MSS:
            found["mss"] = struct.unpack("!H", body)[0]
        elif kind == OPT_WINDOW_SCALE:
            found["window_scale"] = min(body[0], MAX_WINDOW_SHIFT)
        elif kind == OPT_SACK_PERMITTED:
            found["sack_permitted"] = True
        elif kind == OPT_TIMESTAMP:
            found["timestamp"] = struct.unpack("!II", body)
        elif kind == OPT_SACK:
            if (length - 2) % 8:
                raise MalformedPacket("bad_option", "SACK length %d" % length)
            found["sack_blocks"] = tuple(
                struct.unpack_from("!II", body, offset) for offset in range(0, length - 2, 8))
        i += length
    return found
