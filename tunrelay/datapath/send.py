"""The send stage: frames from the device (or the responder) routed, cut if need be, sealed.

A device frame's virtio-net header says whether it is an ordinary packet (all zero: the
common case, and the only one unless ``interface.offload`` asks the kernel for TSO
super-packets) or a super-packet to cut into MTU-sized segments (``segment``) for every
peer but a tunrelay that opted into taking it whole over TCP.

Sealing (encrypted mode) happens here, not in the core: when the peer's current keypair
may still be used without the state machine (``Keypair.fast_until``, below
REKEY_AFTER_MESSAGES), the packet is sealed and handed to the peer's link at once, and
the core is only told the time (``sent``). Otherwise, with no session, an old one or a
rekey due, the frame goes to the core (``sessions.stage``), which handshakes first and
sends it after. A datagram link only queues what it is given; the batch's end sends it
(UDP GSO). Plaintext mode hands the packet to the link as it is.
"""

import struct

from tunrelay.crypto.constants import REKEY_AFTER_MESSAGES
from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ip import route_key

from .ports import DEVICE_PORT
from .segment import finish_checksum, to_packets
from .vnet import F_NEEDS_CSUM, PLAIN_HEADER, VNET_HEADER, VnetHeader

__all__ = ["Sender"]

# What routing needs of an IPv4 packet behind a virtio-net header: version/IHL, total
# length, destination; read in place, before the header is cut off.
_ROUTED_IPV4 = struct.Struct("!BxH12xI")


class Sender:
    def __init__(self, datapath):
        self.datapath = datapath
        self.relay = datapath.relay
        self.drops = datapath.drops
        self.plaintext = datapath.relay.config.plaintext   # fixed for the relay's life (reload refuses a change)
        self.sealed_for = {}   # core peer handles we sealed data for in this batch (told once, at its end)

    def batch_ended(self):
        """Tell the core, once per peer, that the batch sent it data (its timers read the time)."""
        if self.sealed_for:
            sent, now = self.relay.sessions.core.sent, self.datapath.now
            for handle in self.sealed_for:
                sent(handle, now)
            self.sealed_for.clear()

    def from_port(self, frames, ingress):
        """A batch of frames from the device or the responder."""
        datapath = self.datapath
        from_device = ingress is DEVICE_PORT
        strip = datapath.device_vnet and from_device
        counters = self.relay.device_counters if from_device else None
        if not datapath.tun:
            for frame in frames:
                if strip:
                    if frame[1] or frame[0] & F_NEEDS_CSUM:
                        self._tap_offload_frame(frame, ingress)
                        continue
                    frame = frame[VNET_HEADER:]
                if counters is not None:
                    counters.rx_packets += 1
                    counters.rx_bytes += len(frame)
                datapath.switch_frame(frame, ingress)
            return
        route_packet, route, read = datapath.route_packet, datapath.route, _ROUTED_IPV4.unpack_from
        for frame in frames:
            if not strip:
                route_packet(frame, ingress)
                continue
            # A gso_type or NEEDS_CSUM leaves work for us; DATA_VALID alone (a checksum the kernel
            # already verified, set on forwarded packets even without TUNSETOFFLOAD) leaves none.
            if frame[1]:
                self._offload_frame(frame, ingress)
                continue
            if frame[0] & F_NEEDS_CSUM:   # a lone packet (most UDP, with TUN_F_CSUM on): finish it here
                try:   # csum_start and csum_offset: little-endian, at bytes 6 and 8 of the header
                    frame = finish_checksum(frame, VNET_HEADER + frame[6] + (frame[7] << 8),
                                            frame[8] + (frame[9] << 8))
                except MalformedPacket as error:
                    self.drops.drop(error.reason, None)
                    continue
            counters.rx_packets += 1
            counters.rx_bytes += len(frame) - VNET_HEADER
            if len(frame) >= VNET_HEADER + 20:
                first, total, destination = read(frame, VNET_HEADER)
                if first == 0x45 and total == len(frame) - VNET_HEADER:   # the kernel's own packets: exact
                    route(4, destination, frame[VNET_HEADER:], ingress)
                    continue
            route_packet(frame[VNET_HEADER:], ingress)

    def _offload_frame(self, frame, ingress):
        """A TSO super-packet or a packet with a partial checksum (tun, ``interface.offload``)."""
        datapath = self.datapath
        counters = self.relay.device_counters
        try:
            header = VnetHeader(frame)
            version, _, destination, packet = route_key(memoryview(frame)[VNET_HEADER:])
        except MalformedPacket as error:
            self.drops.drop(error.reason, None)
            return
        counters.rx_packets += 1
        counters.rx_bytes += len(packet)
        target = datapath.routes.lookup(version, destination)
        if target is not None and self._takes_super_packets(target):
            self.to_peer_whole(target, frame[:VNET_HEADER + len(packet)])
            return
        try:
            packets = to_packets(header, packet)
        except MalformedPacket as error:
            self.drops.drop(error.reason, None)
            return
        for piece in packets:
            datapath.route(version, destination, piece, ingress)

    def _tap_offload_frame(self, frame, ingress):
        """Tap with a GSO type or a partial checksum: the kernel only sends those with offload
        on, which tap mode never asks for."""
        self.drops.drop("unexpected_vnet_offload", None)

    def _takes_super_packets(self, peer):
        if not peer.super_packets:
            return False
        path = self._path(peer)
        return path is not None and path[0].kind == "tcp"

    def frame_to_peer(self, peer, frame, version, destination):
        """A frame behind a virtio-net header, received from a super-packet peer, on to another."""
        if self._takes_super_packets(peer):
            self.to_peer_whole(peer, frame)
            return
        try:
            packets = to_packets(VnetHeader(frame), memoryview(frame)[VNET_HEADER:])
        except MalformedPacket as error:
            self.drops.drop(error.reason, peer)
            return
        for packet in packets:
            self.to_peer(peer, packet)

    def to_peer(self, peer, packet):
        """An ordinary packet (or tap frame) for ``peer``."""
        if peer.super_packets and self._takes_super_packets(peer):   # the cheap test first
            packet = b"".join((PLAIN_HEADER, packet))   # everything such a peer gets has a header
        self.to_peer_whole(peer, packet)

    def _path(self, peer):
        handle = peer.wg
        return handle.endpoint if handle is not None else peer.active_path

    def to_peer_whole(self, peer, data):
        """``data`` exactly as it goes into one message to ``peer``."""
        handle = peer.wg
        if handle is not None:
            now = self.datapath.now
            keypair = handle.current
            if keypair is None or now >= keypair.fast_until or keypair.send_counter >= REKEY_AFTER_MESSAGES:
                self.relay.sessions.stage(peer, data, now)   # the core handshakes, then sends it
                return
        elif not self.plaintext:   # a WireGuard peer whose session state is gone: never send in clear
            self.drops.drop("no_session", peer)
            return
        path = handle.endpoint if handle is not None else peer.active_path   # as _path, without a second lookup
        if path is None:
            self.drops.drop("no_path", peer)
            return
        link, address = path
        if handle is None:
            reason = link.send(address, data)
        else:
            header, body = keypair.seal(data)
            reason = link.send(address, header, body)
            if reason is None:
                self.sealed_for[handle] = None
        if reason is not None:
            self.drops.drop(reason, peer)
            return
        counters = peer.counters
        counters.tx_packets += 1
        counters.tx_bytes += len(data)
        peer.last_sent = self.datapath.now
