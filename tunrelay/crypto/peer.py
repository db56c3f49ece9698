"""One WireGuard peer's state in the core: its three keypair slots and how they rotate.

Keypair rotation follows wireguard-go's ``BeginSymmetricSession`` and
``ReceivedWithKeypair`` (whitepaper §5.4.7 and §6; the kernel's ``noise.c``
``add_new_keypair`` and ``received_with_keypair``):

- *current* seals what we send; *previous* is kept so that packets the peer sealed under it
  before it switched (in flight, or reordered) still decrypt; *next* is a responder's fresh
  keypair that has not been confirmed yet.
- An initiator has its confirmation (the response) in hand, so its new keypair becomes
  current at once and the old current moves to previous (``install``).
- A responder's keypair waits in *next* and is not used for sending: the Noise IK pattern
  does not prove to the responder that the initiator holds the keys until the first
  transport message under them arrives (``confirm`` then promotes it). Until then the
  responder keeps sealing with its current keypair, which the initiator still holds as
  previous, so nothing is lost either way.

Counters for status displays: ``handshakes`` counts completed handshakes (an initiator's
when the response is consumed, a responder's when its next keypair is confirmed);
``rekeys`` counts those that replaced a current keypair, the ones a data flow crosses
without stopping. A first handshake, or one after the keys were wiped, is not a rekey.
"""

from collections import deque

from .constants import TIMESTAMP_SIZE
from .cookie import CookieGenerator

__all__ = ["PeerState"]


class PeerState:
    __slots__ = ("config", "peer_id", "endpoint", "cookies", "handshake", "last_timestamp",
                 "last_initiation_consumed", "last_sent_handshake", "last_handshake", "handshake_attempts",
                 "sent_last_minute_handshake", "need_another_keepalive", "current", "previous", "next",
                 "staged", "retransmit_at", "keepalive_at", "new_handshake_at", "zero_keys_at",
                 "last_traversal", "persistent_interval", "handshakes", "rekeys", "last_was_rekey")

    def __init__(self, config, peer_id):
        self.config = config
        self.peer_id = peer_id
        self.endpoint = config.endpoint
        self.cookies = CookieGenerator(config.public_key)
        self.handshake = None  # our pending noise.InitiatorHandshake
        self.last_timestamp = bytes(TIMESTAMP_SIZE)
        self.last_initiation_consumed = None
        self.last_sent_handshake = None
        self.last_handshake = None  # when a session last completed, for status displays
        self.handshake_attempts = 0
        self.sent_last_minute_handshake = False
        self.need_another_keepalive = False
        self.current = self.previous = self.next = None
        self.staged = deque()
        self.retransmit_at = self.keepalive_at = self.new_handshake_at = self.zero_keys_at = None
        self.last_traversal = None
        self.persistent_interval = config.persistent_keepalive
        self.handshakes = 0
        self.rekeys = 0
        self.last_was_rekey = False

    def keypairs(self):
        return [kp for kp in (self.current, self.previous, self.next) if kp is not None]

    def persistent_at(self):
        if self.persistent_interval > 0 and self.last_traversal is not None:
            return self.last_traversal + self.persistent_interval
        return None

    def install(self, keypair, forget):
        """A keypair a handshake just derived; ``forget(keypair)`` retires one that leaves.

        Returns True when the handshake is complete here (we initiated it), False when the
        keypair waits in *next* for the initiator's first message."""
        if keypair.is_initiator:
            if self.next is not None:
                # An unconfirmed responder keypair of ours: the peer may already send under
                # it, so it is the one worth keeping for decryption, not the old current.
                forget(self.previous)
                forget(self.current)
                self.previous, self.next = self.next, None
            else:
                forget(self.previous)
                self.previous = self.current
            self._completed(replaced=self.current is not None)
            self.current = keypair
            return True
        forget(self.next)
        forget(self.previous)
        self.next, self.previous = keypair, None
        return False

    def confirm(self, keypair, forget):
        """A message under ``keypair`` authenticated. True if that confirmed *next* (the
        responder's handshake is complete and the keypair now seals what we send)."""
        if keypair is not self.next:
            return False
        forget(self.previous)
        self._completed(replaced=self.current is not None)
        self.previous, self.current, self.next = self.current, keypair, None
        return True

    def _completed(self, replaced):
        self.handshakes += 1
        self.rekeys += replaced
        self.last_was_rekey = replaced
