"""RFC 6528 initial sequence numbers: ISN = M + F(4-tuple, secret).

M is a 4-microsecond clock derived from the injected time, so successive incarnations of
the same 4-tuple get increasing ISNs (what RFC 9293 §3.4.1 wants for old duplicates);
F is a keyed hash of the connection identifier so that an off-path attacker cannot
predict the ISN of a connection it cannot observe. The secret is injected by the owner
(RFC 6528 §3 suggests a random value chosen at boot); BLAKE2b in keyed mode is the PRF.
"""

import hashlib
import struct

from tunrelay.stack.tcp.constants import ISN_CLOCK_HZ, SEQ_MASK

__all__ = ["IsnGenerator"]


class IsnGenerator:
    def __init__(self, secret):
        if not isinstance(secret, (bytes, bytearray)) or not 16 <= len(secret) <= 64:
            raise ValueError("the ISN secret must be 16 to 64 bytes")
        self._secret = bytes(secret)

    def __call__(self, local_address, local_port, remote_address, remote_port, now):
        identifier = (bytes(local_address) + struct.pack("!H", local_port)
                      + bytes(remote_address) + struct.pack("!H", remote_port))
        digest = hashlib.blake2b(identifier, key=self._secret, digest_size=4).digest()
        offset = struct.unpack("!I", digest)[0]
        return (int(now * ISN_CLOCK_HZ) + offset) & SEQ_MASK
