"""The receive stage: messages from a link, opened and checked, handed on to where they go.

Encrypted mode follows the WireGuard kernel driver's receive order (receive.c): size
check → receiver index → keypair and its age → decrypt → replay window → trimmed to the
IP length → the sender's allowed IPs must hold the inner source → the device, the
responder or another peer; and once per run of messages under one keypair, the core's
bookkeeping (roaming, key confirmation, timer timestamps: ``authenticated``). Handshake
and cookie messages go to the core whole (``sessions.control_message``).

Plaintext mode identifies the sender by the path it came on (simpletun's model), then
joins the same checks from the trim on.
"""

import struct

from cryptography.exceptions import InvalidTag

from tunrelay.crypto.constants import MAX_TRANSPORT_SIZE, REJECT_AFTER_TIME, TRANSPORT_HEADER_SIZE, TRANSPORT_MIN_SIZE
from tunrelay.crypto.keypair import NONCE as _NONCE, Keypair
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ip import route_key

from .headers import IPV4_HEAD, IPV4_HEAD_SIZE
from .vnet import VNET_HEADER

__all__ = ["Receiver"]

_TRANSPORT = struct.Struct("<IIQ")   # type and reserved bytes as one word, receiver index, counter
_MESSAGE_TRANSPORT = 4


class Receiver:
    def __init__(self, datapath):
        self.datapath = datapath
        self.relay = datapath.relay
        self.drops = datapath.drops
        # A later next hop of a multipath kernel route may send from it too (only asked
        # when the table's owner is another peer, so the common path pays nothing).
        self.multipath_source = datapath.relay.next_hops.also_allowed

    def received(self, link, batch):
        if self.relay.sessions.core is None:
            self._plaintext(link, batch)
        else:
            self._encrypted(link, batch)

    def _encrypted(self, link, batch):
        """Transport messages in runs: consecutive messages under one keypair from one source
        share the index lookup, the age check and the core's bookkeeping (``authenticated``);
        each is still decrypted and checked against the replay window on its own."""
        datapath, drops, sessions = self.datapath, self.drops, self.relay.sessions
        now = datapath.now
        core = sessions.core
        indices = core.indices
        deliver = self.deliver
        unpack, nonce = _TRANSPORT.unpack_from, _NONCE.pack
        run_receiver = run_address = keypair = refusal = refused_peer = None
        authenticated = with_data = False
        for address, message in batch:
            size = len(message)
            kind, receiver, counter = unpack(message) if size >= TRANSPORT_MIN_SIZE else (None, None, None)
            if kind != _MESSAGE_TRANSPORT:     # a handshake or cookie message (or too short, or unknown)
                if authenticated:   # it may change the sessions: the run ends before it
                    self._run_authenticated(keypair, link, run_address, with_data)
                run_receiver, authenticated = None, False
                sessions.control_message(link, address, message, now)
                continue
            if size > MAX_TRANSPORT_SIZE:
                drops.drop_from("bad_size", None, link, address)
                continue
            if receiver != run_receiver or address != run_address:
                if authenticated:
                    self._run_authenticated(keypair, link, run_address, with_data)
                run_receiver, run_address, authenticated, with_data = receiver, address, False, False
                keypair, refusal, refused_peer = indices.get(receiver), None, None
                if keypair.__class__ is not Keypair:
                    keypair, refusal = None, "unknown_index"
                elif now - keypair.created >= REJECT_AFTER_TIME:
                    keypair, refusal, refused_peer = None, "expired_keypair", keypair.peer.peer_id
                else:
                    peer = keypair.peer.peer_id
                    decrypt, accept = keypair.decrypt, keypair.replay.accept
            if keypair is None:
                drops.drop_from(refusal, refused_peer, link, address)
                continue
            try:
                plaintext = decrypt(nonce(0, counter), message[TRANSPORT_HEADER_SIZE:], None)
            except InvalidTag:
                drops.drop_from("decrypt_failed", peer, link, address)
                continue
            if not accept(counter):
                drops.drop_from("replay", peer, link, address)
                continue
            authenticated = True
            if size > TRANSPORT_MIN_SIZE:   # an empty payload is a keepalive
                with_data = True
                if peer.super_packets and link.kind == "tcp":
                    self.deliver_frame(peer, plaintext)
                else:
                    deliver(peer, plaintext)
        if authenticated:
            self._run_authenticated(keypair, link, run_address, with_data)

    def _run_authenticated(self, keypair, link, address, with_data):
        """A run of messages under ``keypair`` authenticated: the core's bookkeeping, liveness."""
        self.relay.sessions.core.authenticated(keypair, (link, address), self.datapath.now, with_data)
        peer = keypair.peer.peer_id
        peer.last_received = self.datapath.now
        if peer.dead:
            self.relay.alive(peer)

    def _plaintext(self, link, batch):
        relay, sessions, deliver = self.relay, self.relay.sessions, self.deliver
        for address, message in batch:
            peer = relay.peer_of_path(link, address)
            if peer is None:
                peer = sessions.identify(link.kind, address)
                if peer is None:
                    self.drops.drop_from("unknown_peer", None, link, address)
                    continue
                relay.path_opened(peer, link, address)
            relay.heard_from(peer, link, address)
            if message:   # an empty message is a keepalive: nothing to deliver
                if peer.super_packets and link.kind == "tcp":
                    self.deliver_frame(peer, message)
                else:
                    deliver(peer, message)

    def deliver(self, peer, packet):
        """An authenticated packet (tun) or frame (tap) from ``peer``: check it, pass it on."""
        datapath = self.datapath
        if not datapath.tun:
            if datapath.switch_frame(packet, peer):
                counters = peer.counters
                counters.rx_packets += 1
                counters.rx_bytes += len(packet)
            return
        size = len(packet)
        if size >= IPV4_HEAD_SIZE:
            head = IPV4_HEAD.unpack_from(packet)
            if head[0] == 0x45:   # the common case, with every header read once (datapath.headers)
                total = head[2]
                if total != size:
                    if total > size or total < 20:
                        self.drops.drop("bad_ip_length", peer)
                        return
                    packet = packet[:total]   # WireGuard's padding off
                if datapath.routes.lookup(4, head[6]) is not peer and not self.multipath_source(peer, 4, head[6]):
                    self.drops.drop("source_not_allowed", peer)
                    return
                counters = peer.counters
                counters.rx_packets += 1
                counters.rx_bytes += total
                datapath.route(4, head[7], packet, peer, head if total >= IPV4_HEAD_SIZE else None)
                return
        checked = self._checked(peer, packet)
        if checked is not None:
            datapath.route(*checked, peer)

    def _checked(self, peer, packet):
        """(version, destination, packet trimmed) if ``packet`` is sound and ``peer`` may send
        from its source; else None, and the drop counted."""
        try:
            version, source, destination, packet = route_key(packet)   # trims WireGuard's padding
        except MalformedPacket as error:
            self.drops.drop(error.reason, peer)
            return None
        if self.datapath.routes.lookup(version, source) is not peer and not self.multipath_source(peer, version, source):
            self.drops.drop("source_not_allowed", peer)
            return None
        counters = peer.counters
        counters.rx_packets += 1
        counters.rx_bytes += len(packet)
        return version, destination, packet

    def deliver_frame(self, peer, frame):
        """A frame behind its own virtio-net header, from a peer that exchanges super-packets."""
        datapath = self.datapath
        if len(frame) <= VNET_HEADER:
            self.drops.drop("truncated_vnet_header", peer)
            return
        checked = self._checked(peer, memoryview(frame)[VNET_HEADER:])
        if checked is None:
            return
        version, destination, packet = checked
        frame = frame[:VNET_HEADER + len(packet)]   # WireGuard's padding off
        if frame[0] == 0 and frame[1] == 0:
            datapath.route(version, destination, packet, peer)   # an ordinary packet: route it as one
            return
        relay = datapath.relay
        target = datapath.routes.lookup(version, destination) if relay.forward_between_peers else None
        if target is not None and target is not peer:
            datapath.sender.frame_to_peer(target, frame, version, destination)
        else:
            datapath.frame_to_device(frame, peer)
