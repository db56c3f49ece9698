"""The data path: one way in from every link and the device, one way out, a batch at a time.

Theory of operation
-------------------
Shaped after wireguard-go's receive.go and send.go. Whatever one reactor wake-up delivers
is one batch: the frames one readable device gave (``from_device``), the datagrams one
readable socket gave, coalesced or not (``received``), the frames the responder emitted.
A batch flows one way through these stages and nothing calls back into its caller:

receive (``receive.Receiver``)
    size check → receiver index → keypair → decrypt → replay window (the core's
    ``accepted``) → trimmed view → allowed-IPs source check → where it goes: the
    coalescer for the device, the responder, or the send stage towards another peer.
    Handshake and cookie messages go to the pure core (``tunrelay.crypto.session``).
send (``send.Sender``)
    virtio-net header → route lookup (allowed IPs, or the learning switch in tap mode) →
    split a super-packet for a peer that takes MTU-sized packets → seal straight into the
    peer's link when a keypair is usable, else hand the frame to the core's staging.
finish (``Datapath.finish``)
    the core's deferred events (key rotation, roaming, rekeys) and its deadline hint, then
    one device write per coalesced run (``coalesce.Coalescer``), then one ``sendmsg`` per
    run of equal-sized datagrams to one address (UDP GSO, ``tunrelay.twisted_io.gso``).

The relay (``tunrelay.relay``) keeps what this path consults: peers and their paths,
the allowed-IPs table, the learning switch, liveness; the sessions adapter
(``tunrelay.sessions``) keeps the control plane. Timers are timestamps the core checks in
its tick; packets only store times. Every drop is counted by reason and logged at a
limited rate (``tunrelay.stats.DropReporter``); nothing raises out of a batch.
"""

import ipaddress

from twisted.logger import Logger

from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.ethernet import HEADER_LEN as ETHERNET_HEADER_LEN
from tunrelay.wire.ip import route_key

from .coalesce import Coalescer
from .ports import DEVICE_PORT, RESPONDER_PORT, is_peer as _is_peer
from .receive import Receiver
from .send import Sender
from .vnet import PLAIN_HEADER, VNET_HEADER

__all__ = ["Datapath", "DEVICE_PORT", "RESPONDER_PORT"]


def _link_local_group(version, destination):
    """224.0.0.0/24 or ff02::/16 (the scope nibble 2, whatever the flags): never leaves its link."""
    return destination >> 8 == 0xE00000 if version == 4 else destination >> 112 & 0xFF0F == 0xFF02


class Datapath:
    log = Logger()

    def __init__(self, relay):
        self.relay = relay
        self.clock = relay.clock
        self.drops = relay.drops
        self.tun = relay.tun
        self.routes = relay.routes
        self.switch = relay.switch
        self.device = None            # has .vnet and .write_many(writes) -> [(reason, write)]
        self.device_vnet = False      # every device read and write carries a virtio-net header
        self.super_packets = False    # the device hands us TSO super-packets (interface.offload)
        self.coalescer = None
        self.device_writes = 0        # writes the device took (each may carry a coalesced run)
        self.dirty_links = set()      # links holding queued datagrams until the batch ends
        self.now = 0.0                # the batch's time: one clock read per batch
        self._in_batch = False
        self._responder_frames = []   # what the responder answered during this batch
        self.receiver = Receiver(self)
        self.sender = Sender(self)

    def attach_device(self, device):
        """The device port (or None when it closes); its header mode decides coalescing."""
        self.device = device
        self.device_vnet = bool(device is not None and device.vnet)
        self.super_packets = bool(device is not None and device.super_packets)
        # UDP runs are not coalesced: the kernel charges every datagram cut from a USO write
        # with the whole write's buffer, so a receiver on a default SO_RCVBUF overflows. Seen
        # with iperf3 -u -l 64 at 25 Mbit/s: 25% lost with runs of 64, 36% with runs of 8,
        # 1.4% without coalescing.
        self.coalescer = (Coalescer(0 if self.tun else ETHERNET_HEADER_LEN, udp=False) if self.device_vnet
                          else None)
        # to_device(packet, owner, head=None): a packet for the device; TCP is written when the
        # batch ends, coalesced where it can be (``head``: its IPV4_HEAD, tun only).
        if self.coalescer is not None:
            self.to_device = self._coalesce_tcp
        else:
            self.to_device = self._write_now if device is not None else self._device_down

    # ---- entry points: each is one batch ----------------------------------------------

    def received(self, link, batch):
        """Messages one link read in one wake-up: a list of (address, message)."""
        self._begin()
        try:
            self.receiver.received(link, batch)
        finally:   # even after a bug, what the batch queued leaves and the next batch starts clean
            self.finish()

    def from_device(self, frames):
        self._begin()
        try:
            self.sender.from_port(frames, DEVICE_PORT)
        finally:
            self.finish()

    def from_responder(self, frames):
        """What the responder sends: answers to this batch's frames join the batch's end;
        anything else (its timers) is a batch of its own."""
        if self._in_batch:
            self._responder_frames.extend(frames)
            return
        self._begin()
        try:
            self.sender.from_port(frames, RESPONDER_PORT)
        finally:
            self.finish()

    def _begin(self):
        self.now = self.clock.seconds()
        self._in_batch = True

    def finish(self):
        """End of a batch: the responder's answers and the core's deferred work, then the
        device writes, then the links."""
        # Whatever raises on the way, the batch ends: the next one must not inherit this one's
        # state, and every link still sends what it queued.
        try:
            while self._responder_frames:
                frames, self._responder_frames = self._responder_frames, []
                self.sender.from_port(frames, RESPONDER_PORT)
        finally:
            self._responder_frames = []
            self._in_batch = False
            try:
                self.sender.batch_ended()
                self.relay.sessions.after_batch()
                coalescer = self.coalescer
                if coalescer is not None and len(coalescer):
                    self._write_device(*coalescer.take())
            finally:
                self.flush_links()

    def flush_links(self):
        if self.dirty_links:
            links, self.dirty_links = self.dirty_links, set()
            for link in links:
                try:
                    link.flush()
                except Exception as error:   # one link's failure must not keep the others' datagrams
                    self.drops.drop("link_flush_failed", None, "%s link: %r" % (link.kind, error))

    # ---- where a packet goes (tun: by IP; tap: by MAC) --------------------------------

    def route_packet(self, packet, ingress):
        """A packet from the device or the responder (tun)."""
        try:
            version, _, destination, packet = route_key(packet)
        except MalformedPacket as error:
            self.drops.drop(error.reason, None)
            return
        self.route(version, destination, packet, ingress)

    def route(self, version, destination, packet, ingress, head=None):
        """The responder's address, else the owner of the destination's allowed IPs, else the
        kernel. ``head`` is the packet's ``IPV4_HEAD`` if the caller read it (for coalescing)."""
        relay = self.relay
        if relay.responder_owns is not None and relay.responder_owns(version, destination):
            relay.responder.frame_received(bytes(packet))
            return
        from_peer = ingress is not DEVICE_PORT and ingress is not RESPONDER_PORT
        if (destination >> 28 == 0xE) if version == 4 else (destination >> 120 == 0xFF):
            self._multicast(version, destination, packet, ingress, from_peer)
            return
        target = self.routes.lookup(version, destination) if relay.forward_between_peers or not from_peer else None
        if target is not None and target is not ingress:
            self.sender.to_peer(target, packet)
        elif ingress is DEVICE_PORT:
            self._unrouted(version, destination)
        else:
            self.to_device(packet, ingress if from_peer else None, head)

    def _unrouted(self, version, destination):
        """A packet from the device that no peer takes. The kernel's own link-local traffic on a
        fresh device (IPv6 router solicitations and MLD reports to ff02::/16, anything to
        fe80::/10, IPv4 224.0.0.0/24) is counted without a warning: it is expected, and no
        route could take it (RFC 4291 §2.5.6, §2.7: link-local scope never leaves the link)."""
        if _link_local_group(version, destination) or (version == 6 and destination >> 118 == 0x3FA):
            self.drops.count("link_local_no_route")
        else:
            self.drops.drop("no_route", None)

    def _multicast(self, version, destination, packet, ingress, from_peer):
        """A group address goes to every peer whose allowed_ips cover it (OSPF's 224.0.0.5 to
        each neighbour), and from a peer also to the kernel, which may be a member."""
        group = ipaddress.ip_address(destination) if version == 4 else ipaddress.IPv6Address(destination)
        targets = [peer for peer in self.relay.peers.values()
                   if peer is not ingress and any(group in network for network in peer.groups)]
        if from_peer:
            self.to_device(packet, ingress)
            # Link-local groups (224.0.0.0/24, ff02::/16: OSPF Hellos, BFD echo...) never leave
            # their link (RFC 5771 §4, RFC 4291 §2.7); a neighbour's Hello repeated to the other
            # neighbours would only be dropped there, its source not being theirs.
            if not self.relay.forward_between_peers or _link_local_group(version, destination):
                return
        elif not targets and ingress is DEVICE_PORT:
            self._unrouted(version, destination)
            return
        for peer in targets:
            self.sender.to_peer(peer, packet)

    def switch_frame(self, frame, ingress):
        """Tap: learn the source MAC, then deliver by the destination's learned port or flood."""
        relay = self.relay
        from_peer = _is_peer(ingress)
        if len(frame) < ETHERNET_HEADER_LEN:
            self.drops.drop("truncated_ethernet_header", ingress if from_peer else None)
            return False
        if frame[6] & 1:
            self.drops.drop("multicast_source_mac", ingress if from_peer else None)
            return False
        now = self.now
        refused = self.switch.learn(bytes(frame[6:12]), ingress, now)
        if refused is not None:
            self.drops.drop(refused, ingress if from_peer else None)
        port = None if frame[0] & 1 else self.switch.lookup(bytes(frame[0:6]), now)
        peer_to_peer_allowed = relay.forward_between_peers or not from_peer
        if port is None:
            for other in relay.ports():
                if other is not ingress and (peer_to_peer_allowed or not _is_peer(other)):
                    self._to_port(other, frame, ingress, from_peer)
        elif port is ingress:
            self.drops.drop("hairpin", ingress if from_peer else None)
        elif _is_peer(port) and not peer_to_peer_allowed:
            self._to_port(DEVICE_PORT, frame, ingress, from_peer)  # the kernel may bridge it
        else:
            self._to_port(port, frame, ingress, from_peer)
        return True

    def _to_port(self, port, frame, ingress, from_peer):
        if port is DEVICE_PORT:
            self.to_device(frame, ingress if from_peer else None)
        elif port is RESPONDER_PORT:
            self.relay.responder.frame_received(bytes(frame))
        else:
            self.sender.to_peer(port, frame)

    # ---- the device -----------------------------------------------------------------------

    def _device_down(self, packet, owner, head=None):
        self.drops.drop("device_down", owner)

    def _coalesce_tcp(self, packet, owner, head=None):
        """TCP waits for the batch's end, to be coalesced; anything else is written at once, so
        that a receiver reads while the batch is still being opened instead of meeting the whole
        batch in one burst. (Measured with iperf3 -u -l 64 at 40 Mbit/s: 54% lost when the whole
        batch waited, 21% written at once, 20-31% with offload off; the loss is a default
        SO_RCVBUF overflowing.)"""
        if head is not None:
            tcp = head[5] == 6   # the protocol
        else:
            ip = 0 if self.tun else ETHERNET_HEADER_LEN
            version = packet[ip] >> 4 if len(packet) > ip else 0
            if ip and packet[12:14] != (b"\x08\x00" if version == 4 else b"\x86\xdd"):
                version = 0
            tcp = (version == 4 and len(packet) > ip + 9 and packet[ip + 9] == 6) or (
                version == 6 and len(packet) > ip + 6 and packet[ip + 6] == 6)
        if tcp:
            self.coalescer.add(packet, owner, head)
        else:
            self._write_device([[PLAIN_HEADER, packet]], [owner])

    def _write_now(self, packet, owner, head=None):
        """A device without virtio-net headers: one write per packet, at once."""
        self._write_device([[packet]], [owner])

    def frame_to_device(self, frame, peer):
        """A frame that carries its own virtio-net header (from a peer that exchanges super-packets)."""
        if self.coalescer is None:
            self.drops.drop("device_down" if self.device is None else "device_rejected", peer)
            return
        self.coalescer.add_framed(frame, peer)

    def _write_device(self, writes, owners):
        device = self.device
        refused = device.write_many(writes) if device is not None else [
            (index, "device_down") for index in range(len(writes))]
        refused_at = dict(refused) if refused else ()
        packets_sent = bytes_sent = 0
        framed = VNET_HEADER if self.device_vnet else 0   # a one-buffer write carries its own header
        for index, write in enumerate(writes):
            members = Coalescer.packets_of(write)
            reason = refused_at[index] if index in refused_at else None
            if reason is None:
                # Counted once written: per packet the kernel received, not per write.
                if members is None:
                    packets_sent += 1
                    bytes_sent += len(write[-1]) - (framed if len(write) == 1 else 0)
                else:
                    packets_sent += len(members)
                    bytes_sent += sum(map(len, members))
                continue
            owner = owners[index]
            if members is not None and reason == "device_rejected" and device is not None:
                # The kernel refused a coalesced run (an old kernel without that offload): stop
                # coalescing that kind, and write the run's packets one by one.
                kind = self.coalescer.refused(write)
                self.log.warn("the kernel refused a coalesced {kind} write to the device; writing {kind} packets "
                              "one at a time from now on", kind=kind)
                singles = [[PLAIN_HEADER, packet] for packet in members]
                self._write_device(singles, [owner] * len(singles))
                continue
            for _ in members or (write,):
                self.drops.drop(reason, owner)
        counters = self.relay.device_counters
        counters.tx_packets += packets_sent
        counters.tx_bytes += bytes_sent
        self.device_writes += len(writes) - len(refused)
