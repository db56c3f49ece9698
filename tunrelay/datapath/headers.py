"""One read of the headers the data path decides by, shared by every stage that needs them.

A TCP segment that crosses the relay is looked at three times: its source is checked
against the sender's allowed IPs, its destination routed, and its flow, sequence and
checksum weighed for coalescing. ``IPV4_HEAD`` reads all of it in one ``struct`` call, from
the first 52 bytes of an IPv4 packet (a 20-byte header, then a TCP header with the
timestamp option Linux sends by default; for other protocols the later fields are just
the first bytes of the payload, and unused), and the stages pass the tuple on instead of
parsing again. Packets shorter than 52 bytes, and everything else, go the general way
(``tunrelay.wire.ip.route_key``).

Fields: version/IHL, TOS, total length, flags/fragment offset, TTL, protocol, source,
destination, then the layer-4 words: ports, sequence, ACK, data offset, flags, window,
checksum, urgent pointer, and the three option words.
"""

import struct

__all__ = ["IPV4_HEAD", "IPV4_HEAD_SIZE"]

IPV4_HEAD = struct.Struct("!BBHxxHBBxxIIIIIBBHHHIII")
IPV4_HEAD_SIZE = IPV4_HEAD.size
assert IPV4_HEAD_SIZE == 52
