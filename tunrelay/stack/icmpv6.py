"""ICMPv6 behaviour of the responder (RFC 4443 §2.4, §3, §4).

Echo: a request to our unicast address is answered with the same identifier, sequence and
data (§4.2); a reply larger than the MTU (after a fragmented ``ping -6 -s 3000``) is
fragmented by the caller.

Errors: destination unreachable (port), time exceeded (reassembly) and parameter problem
quote as much of the invoking packet as fits in a 1280-byte error (§2.4 (c)). §2.4 (e)
forbids an error about: an ICMPv6 error or a Redirect; a packet sent to a multicast address
or as a link-layer multicast, except a Parameter Problem code 2 about an option whose type
asks for one regardless (RFC 8200 §4.2; Packet Too Big is never ours to send); and a packet
whose source does not name a single node. Those checks run first, so suppressed errors
spend no tokens; what is left passes the token bucket (§2.4 (f)) shared with IPv4's logic
in ``IcmpResponder``, and each refusal is counted.
"""

import struct

from tunrelay.stack import limits
from tunrelay.stack.icmp import IcmpResponder
from tunrelay.wire import icmpv6 as icmpv6_wire
from tunrelay.wire.icmp import IcmpMessage
from tunrelay.wire.ipv6 import HEADER_LEN, is_multicast, is_valid_source

__all__ = ["Icmpv6Responder", "suppression_reason"]

_ERROR_OVERHEAD = HEADER_LEN + 8


def suppression_reason(header, about_error, link_multicast, even_to_multicast=False):
    """Why RFC 4443 §2.4 (e) forbids an ICMPv6 error about this packet, or None."""
    if about_error:
        return "icmpv6_error_about_error"
    if (link_multicast or is_multicast(header.destination)) and not even_to_multicast:
        return "icmpv6_error_about_multicast"
    if not is_valid_source(header.source):
        return "icmpv6_error_about_bad_source"
    return None


class Icmpv6Responder(IcmpResponder):
    prefix = "icmpv6"

    def __init__(self, drops=None, stats=None, *, rate=limits.ICMPV6_ERROR_RATE,
                 burst=limits.ICMPV6_ERROR_BURST,
                 max_error_packet=limits.ICMPV6_ERROR_MAX_PACKET):
        super().__init__(drops, stats, rate=rate, burst=burst)
        self._max_quote = max_error_packet - _ERROR_OVERHEAD

    def echo_reply(self, request):
        """The reply :class:`IcmpMessage` (checksummed by the caller, which knows the addresses)."""
        return self._echo_reply(request, icmpv6_wire.TYPE_ECHO_REPLY)

    def error(self, icmp_type, code, header, invoking, now, *, pointer=0, about_error=False,
              link_multicast=False, even_to_multicast=False):
        """The error :class:`IcmpMessage` about ``invoking`` (a packet, header first), or None.

        ``pointer`` fills the 4-byte field of a Parameter Problem; it is unused otherwise.
        """
        reason = suppression_reason(header, about_error, link_multicast, even_to_multicast)
        if not self._permitted(reason, now):
            return None
        return IcmpMessage(icmp_type, code, struct.pack("!I", pointer),
                           bytes(invoking[:self._max_quote]))
