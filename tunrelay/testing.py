"""In-memory fakes for tests: a device, links, and two relays wired back to back.

Nothing here opens a socket or a device, so unit tests run without root. The clock is a
``twisted.internet.task.Clock`` that tests advance by hand.
"""

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tunrelay import config as configuration
from tunrelay.relay import Relay

__all__ = ["MemoryDevice", "MemoryLink", "MemoryTCPTransport", "RelayPair", "relay_from_yaml",
           "relay_with_responder", "ipv4_packet"]


class MemoryDevice:
    """Stands in for the DevicePort: records frames the relay writes to the kernel."""

    def __init__(self):
        self.written = []
        self.refuse_with = None      # set to a reason string to make every write fail

    def write(self, frame):
        if self.refuse_with is not None:
            return self.refuse_with
        self.written.append(bytes(frame))
        return None


class MemoryLink:
    """A transport link that records what the relay sends, or forwards it to another relay."""

    def __init__(self, kind="udp", name="memory"):
        self.kind = kind
        self.name = name
        self.sent = []               # (address, message)
        self.refuse_with = None
        self.deliver = None          # callable(message, address) wiring this link to a remote relay
        self.closed = []             # addresses whose path the relay closed

    def describe(self, address):
        return "%s://%s/%r" % (self.kind, self.name, address)

    def close_path(self, address):
        self.closed.append(address)

    def send(self, address, message):
        if self.refuse_with is not None:
            return self.refuse_with
        self.sent.append((address, bytes(message)))
        if self.deliver is not None:
            self.deliver(address, bytes(message))
        return None


def relay_from_yaml(text, clock=None, private_key=None, preshared_keys=None):
    clock = clock if clock is not None else Clock()
    return Relay(configuration.parse(text), clock, MemoryDevice(), private_key=private_key,
                 preshared_keys=preshared_keys)


def relay_with_responder(text, mode="tun", mtu=1420):
    """A relay from ``text`` (which configures ``responder:``) with its responder attached and
    started, on a fixed ISN secret; frames for it go in through ``relay.device_frame``."""
    from tunrelay.responder.port import ResponderPort

    relay = relay_from_yaml(text)
    responder = ResponderPort(relay.config.responder, mode, mtu, relay.clock, relay.responder_output,
                              relay.snapshot, isn_secret=b"k" * 32)
    relay.attach_responder(responder)
    responder.start()
    return relay


class RelayPair:
    """Two relays joined by a memory link, each with a memory device: "a" at 192.0.2.1, "b" at .2."""

    def __init__(self, text_a, text_b, kind="udp", key_a=None, key_b=None, psks_a=None, psks_b=None):
        self.clock = Clock()
        self.a = relay_from_yaml(text_a, self.clock, key_a, psks_a)
        self.b = relay_from_yaml(text_b, self.clock, key_b, psks_b)
        self.link_a = MemoryLink(kind, "a")
        self.link_b = MemoryLink(kind, "b")
        address_a, address_b = ("192.0.2.1", 51820), ("192.0.2.2", 51820)
        self.link_a.deliver = lambda address, message: self.b.message_received(self.link_b, address_a, message)
        self.link_b.deliver = lambda address, message: self.a.message_received(self.link_a, address_b, message)
        for relay, link, address in ((self.a, self.link_a, address_b), (self.b, self.link_b, address_a)):
            peer = next(iter(relay.peers.values()))
            relay.sessions.path_known(peer, link, address)


    def ping_both_ways(self):
        """A sends an echo-sized packet to B and B answers; both must arrive intact."""
        request = ipv4_packet("198.51.100.1", "198.51.100.2", b"echo", protocol=1)
        self.a.device_frame(request)
        assert self.b.device.written[-1:] == [request], "A -> B not delivered"
        reply = ipv4_packet("198.51.100.2", "198.51.100.1", b"reply", protocol=1)
        self.b.device_frame(reply)
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
