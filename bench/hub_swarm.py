"""N emulated WireGuard peers in one process, driven by tunrelay's own pure core.

Each emulated peer is what a real spoke is: its own private key, its own
``WireGuardCore`` (tunrelay.crypto.session) holding one peer (the hub), and its own UDP
socket on its own port (and, by default, its own source address, as 1000 real spokes
would have: the hub's initiation rate limiter counts per source IP, as wireguard-go's does).
One epoll loop serves every socket; nothing here is Twisted.

The core is driven the way the relay's data path drives it (tunrelay/datapath):

- control messages (handshake responses, cookie replies) go to ``datagram_received``, and
  the core's ``Transmit`` events are sent on the peer's socket; its timers are ``tick``-ed
  when ``next_deadline`` comes (that is what retransmits an initiation, with mac2 once a
  cookie reply has arrived, REKEY_TIMEOUT after the first);
- data is sealed and opened with the peer's current ``Keypair`` directly; the core hears of
  it once per batch (``sent``, ``authenticated``), as the relay's Sender and Receiver do.

Traffic is spoke to spoke through the hub: every peer sends IP/UDP packets from its overlay
address to the next peer's (a ring), so every packet the generator receives was forwarded
by the hub. The UDP payload starts with the sender's index, so each delivery is counted per
sender and per receiver. Sending is closed-loop: each peer has at most ``per_peer`` packets
in flight and the swarm at most ``window``; the peers with room are served round robin, so
the generator itself favours nobody. A packet not delivered within ``LOSS_TIMEOUT`` counts
as lost and gives its credit back.
"""

import collections
import select
import socket
import struct
import time

from cryptography.exceptions import InvalidTag

from tunrelay.crypto import keys
from tunrelay.crypto.constants import MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_TRANSPORT, TRANSPORT_MIN_SIZE
from tunrelay.crypto.events import Drop, HandshakeComplete, PeerConfig, Transmit
from tunrelay.crypto.keypair import NONCE, Keypair
from tunrelay.crypto.session import WireGuardCore

__all__ = ["Swarm"]

HUB = "hub"                         # the one peer id inside every emulated peer's core
LOSS_TIMEOUT = 0.5                  # seconds without delivery before in-flight packets count as lost
TIMER_SCAN = 0.05                   # how often the cores' deadlines are checked
READS_PER_WAKEUP = 64               # datagrams read from one socket per readiness event
_TRANSPORT = struct.Struct("<IIQ")  # type word, receiver index, counter
_SENDER = struct.Struct("!I")
_MAC2_ZERO = bytes(16)


class EmulatedPeer:
    __slots__ = ("index", "core", "handle", "sock", "template", "sent", "delivered_to", "delivered_from",
                 "inflight", "last_progress", "established_at", "cookies", "initiations", "mac2_initiations",
                 "deadline")

    def __init__(self, index, private_key, hub_public, hub_address, sock, template):
        self.index = index
        self.core = WireGuardCore(private_key, [PeerConfig(hub_public, endpoint=hub_address, peer_id=HUB)],
                                  wall_clock_offset=time.time() - time.monotonic())
        self.handle = self.core.peer_handle(HUB)
        self.sock = sock
        self.template = template        # the IP packet this peer sends to the next one
        self.sent = self.delivered_to = self.delivered_from = self.inflight = 0
        self.last_progress = 0.0
        self.established_at = None
        self.cookies = self.initiations = self.mac2_initiations = 0
        self.deadline = None


class Swarm:
    """The emulated peers. ``sockets`` are bound already (in the generator's namespace),
    ``templates[i]`` is peer i's packet, with its own index at ``sender_offset``."""

    def __init__(self, private_keys, hub_public, hub_address, sockets, templates, sender_offset):
        self.peers = [EmulatedPeer(index, key, hub_public, hub_address, sock, template)
                      for index, (key, sock, template) in enumerate(zip(private_keys, sockets, templates))]
        self.by_fd = {peer.sock.fileno(): peer for peer in self.peers}
        self.epoll = select.epoll()
        for fd in self.by_fd:
            self.epoll.register(fd, select.EPOLLIN)
        self.sender_offset = sender_offset
        self.established = 0
        self.first_mac2_at = None     # when the first initiation carrying a cookie's mac2 left
        self.inflight = 0
        self.lost = 0
        self.waited = 0.0             # seconds spent blocked in epoll: the generator had nothing to do
        self.bytes_delivered = 0
        self.send_errors = collections.Counter()
        self.core_drops = collections.Counter()
        self.receive_drops = collections.Counter()
        self._cursor = 0
        self._next_timer_scan = self._next_loss_scan = 0.0

    @staticmethod
    def public_keys(private_keys):
        return [keys.public_key(key) for key in private_keys]

    def close(self):
        self.epoll.close()
        for peer in self.peers:
            peer.sock.close()

    # ---- the core's events ------------------------------------------------------------

    def _apply(self, peer, events, now):
        for event in events:
            kind = type(event)
            if kind is Transmit:
                data = event.data
                if data[0] == MESSAGE_INITIATION:
                    peer.initiations += 1
                    if data[-16:] != _MAC2_ZERO:
                        peer.mac2_initiations += 1
                        if self.first_mac2_at is None:
                            self.first_mac2_at = now
                self._send(peer, data)
            elif kind is HandshakeComplete and peer.established_at is None:
                peer.established_at = now
                self.established += 1
            elif kind is Drop:
                self.core_drops[event.reason] += 1
        peer.deadline = peer.core.next_deadline()

    def _send(self, peer, *buffers):
        try:
            peer.sock.sendmsg(buffers)
        except OSError as error:
            self.send_errors[error.errno] += 1
            return False
        return True

    # ---- receiving --------------------------------------------------------------------

    def _receive(self, peer, now):
        core, sock = peer.core, peer.sock
        indices, peers, offset = core.indices, self.peers, self.sender_offset
        authenticated = None
        with_data = False
        for _ in range(READS_PER_WAKEUP):
            try:
                data, source = sock.recvfrom(4096)
            except BlockingIOError:
                break
            if len(data) < TRANSPORT_MIN_SIZE or data[0] != MESSAGE_TRANSPORT:
                if authenticated is not None:    # a control message may rotate keys: settle the run first
                    core.authenticated(authenticated, source, now, with_data)
                    authenticated, with_data = None, False
                if data[:1] == bytes([MESSAGE_COOKIE_REPLY]):
                    peer.cookies += 1
                self._apply(peer, core.datagram_received(data, source, now), now)
                continue
            _, receiver, counter = _TRANSPORT.unpack_from(data)
            keypair = indices.get(receiver)
            if keypair.__class__ is not Keypair:
                self.receive_drops["unknown_index"] += 1
                continue
            try:
                plaintext = keypair.decrypt(NONCE.pack(0, counter), data[16:], None)
            except InvalidTag:
                self.receive_drops["decrypt_failed"] += 1
                continue
            if not keypair.replay.accept(counter):
                self.receive_drops["replay"] += 1
                continue
            authenticated = keypair
            if not plaintext:
                continue   # a keepalive
            with_data = True
            peer.delivered_to += 1
            self.bytes_delivered += len(plaintext)
            sender = peers[_SENDER.unpack_from(plaintext, offset)[0]]
            sender.delivered_from += 1
            sender.last_progress = now
            if sender.inflight:
                sender.inflight -= 1
                self.inflight -= 1
        if authenticated is not None:
            core.authenticated(authenticated, source, now, with_data)
            events = core.take_events()
            if events or core.take_deadline_hint() is not None:
                self._apply(peer, events, now)

    def _poll(self, timeout):
        before = time.monotonic()
        ready = self.epoll.poll(timeout)
        now = time.monotonic()
        self.waited += now - before
        for fd, _ in ready:
            self._receive(self.by_fd[fd], now)

    def _timers(self, now):
        if now < self._next_timer_scan:
            return
        self._next_timer_scan = now + TIMER_SCAN
        for peer in self.peers:
            if peer.deadline is not None and peer.deadline <= now:
                self._apply(peer, peer.core.tick(now), now)

    # ---- the handshake phase ----------------------------------------------------------

    def handshake_all(self, timeout):
        """Every peer initiates at once: all initiations are made first, then sent back to
        back. Returns the time the first was sent; runs until all are established or
        ``timeout`` seconds have passed."""
        now = time.monotonic()
        made = [(peer, peer.core.send_keepalive(HUB, now)) for peer in self.peers]
        started = time.monotonic()
        for peer, events in made:
            self._apply(peer, events, started)
        deadline = started + timeout
        while self.established < len(self.peers):
            if time.monotonic() >= deadline:
                break
            self._poll(TIMER_SCAN)
            self._timers(time.monotonic())
        return started

    # ---- the data phase ---------------------------------------------------------------

    def _fill(self, now, window, per_peer, senders):
        budget = window - self.inflight
        count = len(senders)
        cursor, idle = self._cursor % count, 0
        offered = []
        while budget > 0 and idle < count:
            peer = senders[cursor]
            cursor = cursor + 1 if cursor + 1 < count else 0
            keypair = peer.handle.current
            if peer.inflight >= per_peer or keypair is None or now >= keypair.fast_until:
                idle += 1
                continue
            idle = 0
            if not peer.inflight:
                peer.last_progress = now
            if self._send(peer, *keypair.seal(peer.template)):
                peer.sent += 1
                peer.inflight += 1
                self.inflight += 1
                budget -= 1
                offered.append(peer)
        self._cursor = cursor
        for peer in set(offered):
            peer.core.sent(peer.handle, now)
            hint = peer.core.take_deadline_hint()
            if hint is not None and (peer.deadline is None or hint < peer.deadline):
                peer.deadline = hint

    def _reap_losses(self, now):
        if now < self._next_loss_scan:
            return
        self._next_loss_scan = now + LOSS_TIMEOUT / 4
        for peer in self.peers:
            if peer.inflight and now - peer.last_progress > LOSS_TIMEOUT:
                self.lost += peer.inflight
                self.inflight -= peer.inflight
                peer.inflight = 0

    def snapshot(self):
        """Counters at this moment, for a measurement window."""
        return {"time": time.monotonic(), "delivered_to": [peer.delivered_to for peer in self.peers],
                "delivered_from": [peer.delivered_from for peer in self.peers],
                "sent": sum(peer.sent for peer in self.peers), "bytes": self.bytes_delivered, "lost": self.lost,
                "waited": self.waited}

    def run_traffic(self, seconds, window, per_peer, on_tick=None):
        """Send spoke to spoke through the hub for ``seconds`` (from the established peers)."""
        senders = [peer for peer in self.peers if peer.established_at is not None]
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if senders:
                self._fill(now, window, per_peer, senders)
            self._poll(0.001 if self.inflight < window else 0.01)
            now = time.monotonic()
            self._timers(now)
            self._reap_losses(now)
            if on_tick is not None:
                on_tick(now)

    def drain(self, seconds):
        """Receive what is still in flight, sending nothing new."""
        end = time.monotonic() + seconds
        while self.inflight and time.monotonic() < end:
            self._poll(0.01)
