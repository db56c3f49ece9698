"""TCP header and option parser (tunrelay/wire/tcp.py).

Contract: ``TcpSegment.parse`` raises only ``MalformedPacket`` (``truncated``,
``bad_checksum``, ``bad_data_offset``, ``bad_option``); ``emit`` raises ``ValueError`` only
when the options it would write exceed 40 bytes. Checks: a parsed segment emits a segment
that parses back equal (options are re-laid out, so bytes may differ); ``seg_len`` and the
flag helpers agree with the flags; ``repr`` works. The first byte picks the addresses
(none, or IPv4/IPv6 from the input) and can fill in the checksum.
"""

from tunrelay.wire.checksum import pseudo_header_sum
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.tcp import FIN, SYN, PROTO_TCP, TcpSegment

from ._input import accepted
from ._packets import with_checksum, with_pseudo_header

REJECTIONS = (MalformedPacket,)
COVERS = ["tunrelay/wire/tcp.py"]
MAX_LEN = 2048


def fuzz_one(data):
    options, source, destination, buf = with_pseudo_header(data)
    if options & 4 and source is not None:
        buf = with_checksum(buf, 16, initial=pseudo_header_sum(source, destination, PROTO_TCP, len(buf)))
    segment = TcpSegment.parse(buf, source, destination)
    assert segment.seg_len == len(segment.payload) + bool(segment.flags & SYN) + bool(segment.flags & FIN)
    repr(segment)
    addresses = (source, destination) if source is not None else (bytes(4), bytes(4))
    try:
        emitted = segment.emit(*addresses)
    except ValueError as error:
        assert "exceed 40 bytes" in str(error), error
        return
    assert accepted(MalformedPacket, TcpSegment.parse, emitted, *addresses) == segment
