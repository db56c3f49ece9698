"""IPv4 header parser (tunrelay/wire/ipv4.py) and the forwarding plane's ``route_key``
(tunrelay/wire/ip.py).

Contract: both raise only ``MalformedPacket``. Checks: ``route_key`` accepts whatever
``Ipv4Header.parse`` accepts, with the same addresses and the packet trimmed to the same
length; a parsed header emits a datagram that parses back to the same header and payload,
byte for byte the input's datagram when its checksum was right (and the reserved flag
clear). The first input byte can fill in the header checksum, or turn its check off.
"""

from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ip import route_key
from tunrelay.wire.ipv4 import Ipv4Header, header_length_of, is_valid_source

from ._input import accepted
from ._packets import checked_or_not, same_but_checksum, with_ipv4_header_checksum

REJECTIONS = (MalformedPacket,)
COVERS = ["tunrelay/wire/ipv4.py", "tunrelay/wire/ip.py", "tunrelay/wire/checksum.py"]
MAX_LEN = 2048


def fuzz_one(data):
    if not data:
        return
    verify, buf = checked_or_not(data, with_ipv4_header_checksum)
    try:
        header, payload = Ipv4Header.parse(buf, verify_checksum=verify)
    except MalformedPacket:
        route_key(buf)   # may accept (it checks no checksum) or raise MalformedPacket
        return
    version, source, destination, trimmed = accepted(MalformedPacket, route_key, buf)
    assert version == 4
    assert source.to_bytes(4, "big") == header.source and destination.to_bytes(4, "big") == header.destination
    assert len(trimmed) == header.header_length + len(payload) == header_length_of(buf) + len(payload)
    is_valid_source(header.source)
    emitted = header.emit(payload)
    assert accepted(MalformedPacket, Ipv4Header.parse, emitted) == (header, payload)
    if verify and not buf[6] & 0x80:
        assert same_but_checksum(emitted, trimmed, 10), (emitted, trimmed)
