"""UDP header parser (tunrelay/wire/udp.py), over IPv4 and IPv6 pseudo-headers.

Contract: ``UdpHeader.parse`` raises only ``MalformedPacket``. Checks: a datagram that
parses emits (with the same addresses) a datagram that parses back to the same ports and
payload, byte for byte the input's when its checksum was right and non-zero. The first
byte picks the addresses (none, IPv4 or IPv6, from the input) and can fill in the checksum.
"""

from tunrelay.wire.checksum import pseudo_header_sum
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.udp import PROTO_UDP, UdpHeader

from ._input import accepted
from ._packets import with_checksum, with_pseudo_header

REJECTIONS = (MalformedPacket,)
COVERS = ["tunrelay/wire/udp.py", "tunrelay/wire/checksum.py"]
MAX_LEN = 2048


def fuzz_one(data):
    options, source, destination, buf = with_pseudo_header(data)
    if options & 4 and source is not None and len(buf) >= 8:
        length = int.from_bytes(buf[4:6], "big")
        if 8 <= length <= len(buf):
            buf = with_checksum(buf, 6, covered=length,
                                initial=pseudo_header_sum(source, destination, PROTO_UDP, length))
    header, payload = UdpHeader.parse(buf, source, destination)
    if source is None:
        source, destination = bytes(4), bytes(4)
    emitted = header.emit(payload, source, destination)
    assert accepted(MalformedPacket, UdpHeader.parse, emitted, source, destination) == (header, payload)
    if options & 4 and buf[6:8] != b"\x00\x00" and options % 3:
        assert emitted == buf[:8 + len(payload)]
