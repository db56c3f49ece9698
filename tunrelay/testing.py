"""In-memory fakes for tests: a device, links, and two relays wired back to back.

Nothing here opens a socket or a device, so unit tests run without root. The clock is a
``twisted.internet.task.Clock`` that tests advance by hand.

The memory device behaves like the real one the configuration asks for: with virtio-net
headers (the default ``interface.offload``) every frame the relay writes starts with one,
and ``written`` holds what the kernel would deliver: the packet itself for a plain write,
the merged super-packet for a coalesced run (``writes`` keeps each write's header too).
"""

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tunrelay import config as configuration
from tunrelay.datapath.vnet import PLAIN_HEADER, VNET_HEADER, VnetHeader
from tunrelay.relay import Relay

__all__ = ["MemoryDevice", "MemoryLink", "MemoryTCPTransport", "RelayPair", "relay_from_yaml",
           "relay_with_responder", "ipv4_packet", "from_device", "received", "encrypted_peer_config"]


class MemoryDevice:
    """Stands in for the DevicePort: records what the relay writes to the kernel."""

    def __init__(self, vnet=False, super_packets=False):
        self.vnet = vnet
        self.super_packets = super_packets
        self.written = []            # frames as the kernel would deliver them (no virtio-net header)
        self.writes = []             # (VnetHeader or None, frame) per write
        self.refuse_with = None      # set to a reason string to make every write fail
        self.refuse_coalesced = False   # refuse writes that carry a GSO header (an old kernel)

    def write_many(self, writes):
        refused = []
        for index, write in enumerate(writes):
            frame = b"".join(bytes(buffer) for buffer in write)
            header = VnetHeader(frame) if self.vnet else None
            if self.refuse_with is not None:
                refused.append((index, self.refuse_with))
                continue
            if header is not None and header.gso_type and self.refuse_coalesced:
                refused.append((index, "device_rejected"))
                continue
            self.writes.append((header, frame))
            self.written.append(frame[VNET_HEADER:] if self.vnet else frame)
        return refused


class MemoryLink:
    """A transport link that records what the relay sends, or forwards it to another relay.

    With ``datapath`` given it behaves like a UDP link: what a batch sends is held until the
    batch ends and then delivered as one batch (``deliver_batch``), the way GSO sends and
    GRO reads carry a batch across the wire."""

    def __init__(self, kind="udp", name="memory", datapath=None):
        self.kind = kind
        self.name = name
        self.sent = []               # (address, message)
        self.refuse_with = None
        self.deliver = None          # callable(address, message) wiring this link to a remote relay
        self.deliver_batch = None    # callable([(address, message)]) for a batching link
        self.closed = []             # addresses whose path the relay closed
        self.datapath = datapath
        self._queued = []

    def describe(self, address):
        return "%s://%s/%r" % (self.kind, self.name, address)

    def close_path(self, address):
        self.closed.append(address)

    def send(self, address, data, body=None):
        if self.refuse_with is not None:
            return self.refuse_with
        message = bytes(data) if body is None else bytes(data) + bytes(body)
        self.sent.append((address, message))
        if self.datapath is not None:
            if not self._queued:
                self.datapath.dirty_links.add(self)
            self._queued.append((address, message))
        elif self.deliver is not None:
            self.deliver(address, message)
        return None

    def flush(self):
        queued, self._queued = self._queued, []
        if queued and self.deliver_batch is not None:
            self.deliver_batch(queued)


def encrypted_peer_config(own, peer_ip, peer_key, mode="tun", interface_extra=""):
    """The YAML of a relay at 198.51.100.``own`` with one WireGuard peer at ``peer_ip`` (whose
    private key is ``peer_key``) over UDP; ``interface_extra`` is added to the interface map."""
    from tunrelay.crypto import keys

    return ("interface: {name: tr0, mode: %s, mtu: 1420, addresses: [198.51.100.%d/24]%s}\n"
            "private_key_file: unused.key\n"
            "peers:\n"
            "  - name: peer%d\n"
            "    public_key: \"%s\"\n"
            "    endpoint: \"udp://192.0.2.%d:51820\"\n"
            "    allowed_ips: [198.51.100.%d/32]\n") % (
        mode, own, interface_extra, peer_ip, keys.encode_key(keys.public_key(peer_key)), peer_ip, peer_ip)


def relay_from_yaml(text, clock=None, private_key=None, preshared_keys=None):
    """A relay on a memory device from YAML ``text`` (or from a RelayConfig parsed already)."""
    clock = clock if clock is not None else Clock()
    config = configuration.parse(text) if isinstance(text, str) else text
    offload = config.interface.offload
    device = MemoryDevice(vnet=offload != configuration.OFFLOAD_OFF,
                          super_packets=offload == configuration.OFFLOAD_SUPER_PACKETS)
    return Relay(config, clock, device, private_key=private_key, preshared_keys=preshared_keys)


def from_device(relay, *packets):
    """Ordinary packets (or tap frames) the kernel hands the relay in one read batch, behind a
    plain virtio-net header if the device has them."""
    if relay.datapath.device_vnet:
        packets = [PLAIN_HEADER + packet for packet in packets]
    relay.datapath.from_device(list(packets))


def received(relay, link, address, *messages):
    """Messages arriving on ``link`` from ``address`` in one batch."""
    relay.datapath.received(link, [(address, message) for message in messages])


def relay_with_responder(text, mode="tun", mtu=1420):
    """A relay from ``text`` (which configures ``responder:``) with its responder attached and
    started, on a fixed ISN secret; frames for it go in through ``from_device``."""
    from tunrelay.responder.port import ResponderPort

    relay = relay_from_yaml(text)
    responder = ResponderPort(relay.config.responder, mode, mtu, relay.clock, relay.datapath.from_responder,
                              relay.snapshot, isn_secret=b"k" * 32)
    relay.attach_responder(responder)
    responder.start()
    return relay


class RelayPair:
    """Two relays joined by a memory link, each with a memory device: "a" at 192.0.2.1, "b" at .2.

    ``batched`` links carry each batch across whole, so the far side receives it as one batch
    (as UDP GSO and GRO do); otherwise every message is a batch of its own."""

    def __init__(self, text_a, text_b, kind="udp", key_a=None, key_b=None, psks_a=None, psks_b=None,
                 batched=False):
        self.clock = Clock()
        self.a = relay_from_yaml(text_a, self.clock, key_a, psks_a)
        self.b = relay_from_yaml(text_b, self.clock, key_b, psks_b)
        self.link_a = MemoryLink(kind, "a", self.a.datapath if batched else None)
        self.link_b = MemoryLink(kind, "b", self.b.datapath if batched else None)
        address_a, address_b = ("192.0.2.1", 51820), ("192.0.2.2", 51820)
        self.link_a.deliver = lambda address, message: received(self.b, self.link_b, address_a, message)
        self.link_b.deliver = lambda address, message: received(self.a, self.link_a, address_b, message)
        self.link_a.deliver_batch = lambda batch: self.b.datapath.received(
            self.link_b, [(address_a, message) for _, message in batch])
        self.link_b.deliver_batch = lambda batch: self.a.datapath.received(
            self.link_a, [(address_b, message) for _, message in batch])
        for relay, link, address in ((self.a, self.link_a, address_b), (self.b, self.link_b, address_a)):
            peer = next(iter(relay.peers.values()))
            relay.sessions.path_known(peer, link, address)

    def ping_both_ways(self):
        """A sends an echo-sized packet to B and B answers; both must arrive intact."""
        request = ipv4_packet("198.51.100.1", "198.51.100.2", b"echo", protocol=1)
        from_device(self.a, request)
        assert self.b.device.written[-1:] == [request], "A -> B not delivered"
        reply = ipv4_packet("198.51.100.2", "198.51.100.1", b"reply", protocol=1)
        from_device(self.b, reply)
        assert self.a.device.written[-1:] == [reply], "B -> A not delivered"
        return request, reply


def ipv4_packet(source, destination, payload=b"", protocol=17, ttl=64):
    """A well-formed IPv4 packet (header checksum included) for feeding the data path."""
    import ipaddress
    import struct

    from tunrelay.wire.checksum import internet_checksum

    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, ttl, protocol, 0,
                         ipaddress.IPv4Address(source).packed, ipaddress.IPv4Address(destination).packed)
    checksum = internet_checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


class MemoryTCPTransport(StringTransport):
    """A StringTransport that also answers the TCP-only calls the stream link makes."""

    def __init__(self, host, port=40000):
        address_type = IPv6Address if ":" in host else IPv4Address
        StringTransport.__init__(self, peerAddress=address_type("TCP", host, port))
        self.no_delay = False
        self.aborted = False

    def setTcpNoDelay(self, enabled):
        self.no_delay = enabled

    def abortConnection(self):
        self.aborted = True
        self.loseConnection()
