"""IPv6 fixed header and extension-header walk (tunrelay/wire/ipv6.py), and ``route_key``
(tunrelay/wire/ip.py) for IPv6.

Contract: ``Ipv6Header.parse``, ``upper_layer`` and ``route_key`` raise only
``MalformedPacket``. Checks: ``route_key`` agrees with ``parse`` on addresses and length; a
parsed header emits the input's packet byte for byte; ``upper_layer`` reports an offset
inside the payload (or none for a later fragment) and walks at most the documented number
of extension headers.
"""

from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ip import route_key
from tunrelay.wire.ipv6 import HEADER_LEN, Ipv6Header, upper_layer

from ._input import accepted

REJECTIONS = (MalformedPacket,)
COVERS = ["tunrelay/wire/ipv6.py", "tunrelay/wire/ip.py"]
MAX_LEN = 2048


def fuzz_one(data):
    buf = bytes(data)
    if buf[:1] and not buf[0] & 0x80:
        buf = bytes([0x60 | (buf[0] & 0x0F)]) + buf[1:]   # mostly version 6, sometimes not
    try:
        header, payload = Ipv6Header.parse(buf)
    except MalformedPacket:
        route_key(buf)
        return
    version, source, destination, trimmed = accepted(MalformedPacket, route_key, buf)
    assert version == 6 and len(trimmed) == HEADER_LEN + len(payload)
    assert source.to_bytes(16, "big") == header.source
    assert destination.to_bytes(16, "big") == header.destination
    assert header.emit(payload) == bytes(trimmed)
    upper = upper_layer(header, payload)
    if upper.offset is None:
        assert upper.fragmented and not upper.first_fragment
    else:
        assert 0 <= upper.offset <= len(payload)
