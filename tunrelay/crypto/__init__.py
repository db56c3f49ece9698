"""WireGuard's protocol core, pure: no Twisted, no sockets, no clock reads.

Modules: ``constants`` (every limit and timer), ``primitives`` (BLAKE2s, HKDF, AEADs,
X25519, HChaCha20), ``keys`` (wg-compatible keys and key files), ``messages`` (exact-size
wire formats), ``noise`` (Noise IK/IKpsk2 and the WireGuard handshake), ``cookie``
(mac1/mac2/cookie replies), ``replay`` (RFC 6479 window, strict mode for streams), ``keypair`` (sealing and opening data),
``ratelimit`` (initiations per source), ``events`` and ``session`` (the state machine).

The entry point is :class:`WireGuardCore`; see ``session`` for its theory of operation.
"""

from .events import (
    Deliver, Drop, EndpointChanged, Event, HandshakeComplete, HandshakeInitiated, PeerConfig,
    SessionExpired, Transmit,
)
from .session import WireGuardCore

__all__ = [
    "WireGuardCore", "PeerConfig", "Event", "Transmit", "Deliver", "Drop", "HandshakeComplete",
    "HandshakeInitiated", "EndpointChanged", "SessionExpired",
]
