"""ARP packets for IPv4 over Ethernet (RFC 826).

Only hardware type 1 (Ethernet, 6-byte addresses) with protocol type 0x0800 (IPv4, 4-byte
addresses) is accepted; anything else cannot be an address resolution this host takes
part in. Operations other than request (1) and reply (2), e.g. RARP or InARP, are
rejected. Trailing bytes (Ethernet padding to 60 bytes) are ignored.
"""

import struct
from dataclasses import dataclass

from tunrelay.wire.errors import MalformedPacket

__all__ = ["OP_REQUEST", "OP_REPLY", "PACKET_LEN", "ArpPacket"]

OP_REQUEST = 1
OP_REPLY = 2
PACKET_LEN = 28

_HTYPE_ETHERNET = 1
_PTYPE_IPV4 = 0x0800
_PACKET = struct.Struct("!HHBBH6s4s6s4s")


@dataclass(frozen=True)
class ArpPacket:
    operation: int
    sender_mac: bytes
    sender_ip: bytes      # 4 packed bytes
    target_mac: bytes
    target_ip: bytes

    @classmethod
    def parse(cls, buf):
        if len(buf) < PACKET_LEN:
            raise MalformedPacket("truncated")
        (htype, ptype, hlen, plen, operation,
         sender_mac, sender_ip, target_mac, target_ip) = _PACKET.unpack_from(buf)
        if htype != _HTYPE_ETHERNET:
            raise MalformedPacket("bad_hardware_type")
        if ptype != _PTYPE_IPV4:
            raise MalformedPacket("bad_protocol_type")
        if hlen != 6 or plen != 4:
            raise MalformedPacket("bad_address_length")
        if operation not in (OP_REQUEST, OP_REPLY):
            raise MalformedPacket("bad_operation")
        return cls(operation, sender_mac, sender_ip, target_mac, target_ip)

    def emit(self):
        return _PACKET.pack(_HTYPE_ETHERNET, _PTYPE_IPV4, 6, 4, self.operation,
                            self.sender_mac, self.sender_ip, self.target_mac, self.target_ip)
