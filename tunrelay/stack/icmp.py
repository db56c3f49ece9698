"""ICMP behaviour of the responder (RFC 792, RFC 1122 §3.2.2, RFC 1812 §4.3.2).

Echo: a request is answered with the same identifier, sequence and data (RFC 792); the
reply may be larger than the MTU when the request arrived fragmented, and the caller
fragments it.

Errors: destination unreachable (protocol, port) and time exceeded (reassembly) quote the
offending datagram's header and as much of its data as fits in a 576-byte error
(RFC 1812 §4.3.2.3; RFC 792 requires only 8 bytes). RFC 1122 §3.2.2 forbids an error
about: an ICMP error message, a datagram sent to an IP broadcast or multicast address or
as a link-layer broadcast, a non-initial fragment, and a datagram whose source does not
name a single host. Those checks run first so that suppressed errors do not spend tokens;
what is left passes a token bucket (RFC 1812 §4.3.2.8) and each refusal is counted.
"""

from collections import Counter

from tunrelay.stack import limits
from tunrelay.stack.ratelimit import TokenBucket
from tunrelay.wire import icmp as icmp_wire
from tunrelay.wire.icmp import IcmpMessage
from tunrelay.wire.ipv4 import (
    MIN_HEADER_LEN, PROTO_ICMP, is_broadcast_or_multicast, is_valid_source)

__all__ = ["IcmpResponder", "error_suppression_reason"]

_ERROR_OVERHEAD = MIN_HEADER_LEN + icmp_wire.HEADER_LEN


def error_suppression_reason(header, payload, link_broadcast=False):
    """Why RFC 1122 §3.2.2 forbids an ICMP error about this datagram, or None."""
    if header.fragment_offset != 0:
        return "icmp_error_about_fragment"
    if header.protocol == PROTO_ICMP and (not payload or icmp_wire.is_error_type(payload[0])):
        # An ICMP message too short to show its type may be an error: stay silent.
        return "icmp_error_about_icmp_error"
    if link_broadcast or is_broadcast_or_multicast(header.destination):
        return "icmp_error_about_broadcast"
    if not is_valid_source(header.source):
        return "icmp_error_about_bad_source"
    return None


class IcmpResponder:
    """Builds ICMP messages; the caller wraps them in IPv4 towards the returned address.

    The ICMPv6 responder (``tunrelay.stack.icmpv6``) shares the rate limiting and the
    counting; ``prefix`` names its counters.
    """

    prefix = "icmp"

    def __init__(self, drops=None, stats=None, *, rate=limits.ICMP_ERROR_RATE,
                 burst=limits.ICMP_ERROR_BURST,
                 max_error_datagram=limits.ICMP_ERROR_MAX_DATAGRAM):
        self.drops = drops if drops is not None else Counter()
        self.stats = stats if stats is not None else Counter()
        self._bucket = TokenBucket(rate, burst)
        self._max_quote = max_error_datagram - _ERROR_OVERHEAD

    def echo_reply(self, request):
        """The reply message (bytes) for an echo request :class:`IcmpMessage`."""
        return self._echo_reply(request, icmp_wire.TYPE_ECHO_REPLY).emit()

    def _echo_reply(self, request, reply_type):
        self.stats[self.prefix + "_echo_replies"] += 1
        return IcmpMessage(reply_type, 0, request.rest, request.data)

    def _permitted(self, suppression_reason, now):
        """Whether an error may go out: not suppressed (counted as the reason) nor rate limited."""
        reason = suppression_reason
        if reason is None and not self._bucket.consume(now):
            reason = self.prefix + "_error_rate_limited"
        if reason is not None:
            self.drops[reason] += 1
            return False
        self.stats[self.prefix + "_errors_sent"] += 1
        return True

    def error(self, icmp_type, code, header, payload, offending, now, link_broadcast=False):
        """The error message (bytes) about a datagram, or None if it must not be sent.

        ``header``/``payload`` are the parsed offending datagram, ``offending`` its bytes
        as received (header included).
        """
        if not self._permitted(error_suppression_reason(header, payload, link_broadcast), now):
            return None
        return IcmpMessage(icmp_type, code, b"\x00\x00\x00\x00",
                           bytes(offending[:self._max_quote])).emit()
