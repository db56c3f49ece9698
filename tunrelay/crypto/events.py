"""Inputs and outputs of the pure WireGuard core (``session.WireGuardCore``).

Events are small frozen dataclasses.  ``source`` and ``destination`` are opaque hashable
values chosen by the caller (for example ``(transport, address)``); the core only compares
them (roaming) and feeds them to the caller-supplied key functions (rate limiting, cookie).
"""

from dataclasses import dataclass, field
from typing import Hashable, Optional

__all__ = [
    "PeerConfig", "Event", "Transmit", "Deliver", "Drop", "HandshakeComplete", "HandshakeInitiated",
    "EndpointChanged", "SessionExpired",
]


@dataclass(frozen=True)
class PeerConfig:
    public_key: bytes = field(repr=False)
    preshared_key: bytes = field(default=bytes(32), repr=False)
    endpoint: Optional[Hashable] = None
    persistent_keepalive: float = 0.0  # seconds; 0 disables
    peer_id: Optional[Hashable] = None  # defaults to the base64 public key
    stream: bool = False  # counters must strictly increase (TCP) instead of a replay window


class Event:
    """Base class of everything the core returns."""

    __slots__ = ()


@dataclass(frozen=True)
class Transmit(Event):
    peer_id: Optional[Hashable]  # None for cookie replies to unknown senders
    destination: Hashable
    data: bytes = field(repr=False)
    payload: int = 0   # bytes of the frame a data message carries; 0 for handshakes and keepalives


@dataclass(frozen=True)
class Deliver(Event):
    peer_id: Hashable
    frame: bytes = field(repr=False)


@dataclass(frozen=True)
class Drop(Event):
    reason: str
    peer_id: Optional[Hashable]
    source: Optional[Hashable]


@dataclass(frozen=True)
class HandshakeComplete(Event):
    peer_id: Hashable
    rekey: bool = False   # it replaced a current keypair (a data flow crossed it), not a first handshake


@dataclass(frozen=True)
class HandshakeInitiated(Event):
    """We sent an initiation (a first handshake or a rekey): a moved endpoint may want a new look-up."""
    peer_id: Hashable


@dataclass(frozen=True)
class EndpointChanged(Event):
    peer_id: Hashable
    new_source: Hashable


@dataclass(frozen=True)
class SessionExpired(Event):
    peer_id: Hashable
