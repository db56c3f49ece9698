"""TCP links: one length-framed connection per path, inbound or outbound.

Inbound connections are handed to the sessions layer when accepted: plaintext identifies
them by address (an unknown source is closed at once), WireGuard waits for a handshake
(bounded in number and time). Outbound ones come from a ClientService per peer, which reconnects with capped
exponential backoff. TCP_NODELAY is on: each frame is a packet of someone else's flow and
must not wait for Nagle.

Backpressure: Twisted pauses us (IPushProducer) when the kernel's send buffer and its own
are full. While paused we still accept up to TCP_BACKLOG_BYTES, then drop frames with
``tx_queue_full``; the tunnelled flows see loss and slow down, as they would on a wire.

A connection that receives nothing for ``idle_timeout`` seconds is closed (``idle_timeout``)
and one that ends inside a frame is counted ``truncated_stream``.
"""

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from tunrelay.config import OFFLOAD_SUPER_PACKETS
from tunrelay.constants import STREAM_READ_SIZE, TCP_BACKLOG_BYTES
from tunrelay.datapath.vnet import VNET_HEADER
from tunrelay.protocol.framing import FramingError, StreamDecoder, encode

__all__ = ["FramedConnection", "InboundFactory", "OutboundFactory"]


@implementer(IPushProducer)
class FramedConnection(Protocol):
    kind = "tcp"
    log = Logger()

    def __init__(self, relay, peer=None, probing=None):
        self.relay = relay
        self.peer = peer                 # known in advance only for connections we dial
        self.probing = probing           # callable: True while this dialled endpoint is only being probed
        self.address = None
        sessions = relay.sessions
        self.prefix_size = sessions.stream_prefix
        super_packets = relay.config.interface.offload == OFFLOAD_SUPER_PACKETS
        largest = relay.config.max_frame_size + (VNET_HEADER + 64 if super_packets else 0)  # TSO6 super-packets
        self.decoder = StreamDecoder(largest + sessions.message_overhead, self.prefix_size)
        self.closed = False
        self.paused = False
        self.backlog = 0                 # bytes written while paused
        self.idle_call = None

    # -- link interface used by the relay --
    def describe(self, address):
        host, port = address
        return "tcp://%s:%d" % ("[%s]" % host if ":" in host else host, port)

    def close_path(self, address):
        self.transport.loseConnection()

    def send(self, address, data, body=None):
        """Write one framed message: ``data``, or a WireGuard header ``data`` and its ``body``."""
        if self.closed:
            return "path_closed"
        parts = (data,) if body is None else (data, body)
        size = len(data) if body is None else len(data) + len(body)
        if self.paused:
            if self.backlog + size > TCP_BACKLOG_BYTES:
                return "tx_queue_full"
            self.backlog += size + self.prefix_size
        # Twisted takes bytes only; a plaintext frame may be a view into the device's read.
        self.transport.writeSequence((encode(size, self.prefix_size),)
                                     + tuple(part if type(part) is bytes else bytes(part) for part in parts))
        return None

    def flush(self):
        """Nothing queued here: Twisted writes the stream when the socket is writable."""

    # -- IPushProducer: the transport tells us when its buffers are full --
    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.backlog = 0

    def stopProducing(self):
        self.paused = True

    # -- protocol --
    def connectionMade(self):
        peer_address = self.transport.getPeer()
        self.address = (peer_address.host, peer_address.port)
        self.transport.setTcpNoDelay(True)
        # Twisted reads 64 KiB per readable event; a 64 KiB super-packet plus its framing
        # would then always take two reactor turns and a reassembly copy.
        self.transport.bufferSize = STREAM_READ_SIZE
        self.transport.registerProducer(self, True)
        probe = self.probing is not None and self.probing()
        if not self.relay.sessions.stream_opened(self, self.address, self.peer, probe=probe):
            self.closed = True
            self.transport.abortConnection()
            return
        self._arm_idle_timer()

    def _arm_idle_timer(self):
        timeout = self.relay.config.idle_timeout
        if timeout:
            self.idle_call = self.relay.clock.callLater(timeout, self._idle_timeout)

    def _idle_timeout(self):
        self.idle_call = None
        peer = self.relay.peer_of_path(self, self.address)
        self.relay.drops.drop("idle_timeout", peer, "%s sent nothing for %gs" % (
            self.describe(self.address), self.relay.config.idle_timeout))
        self.transport.abortConnection()

    def dataReceived(self, data):
        if self.idle_call is not None:
            self.idle_call.reset(self.relay.config.idle_timeout)
        try:
            messages = self.decoder.feed(data)
        except FramingError as error:
            self.relay.drops.drop(error.reason, self.relay.peer_of_path(self, self.address), str(error))
            self.transport.abortConnection()
            return
        if messages:
            address = self.address
            self.relay.datapath.received(self, [(address, message) for message in messages])

    def connectionLost(self, reason):
        self.closed = True
        if self.idle_call is not None and self.idle_call.active():
            self.idle_call.cancel()
        self.idle_call = None
        if self.decoder.pending and not self.decoder.failed:
            self.relay.drops.drop("truncated_stream", self.relay.peer_of_path(self, self.address),
                                  "%d bytes of an unfinished frame" % self.decoder.pending)
        if self.address is not None:
            self.relay.stream_closed(self, self.address)


class InboundFactory(Factory):
    """Accepts connections on a ``listen: tcp://`` address."""

    noisy = False

    def __init__(self, relay):
        self.relay = relay

    def buildProtocol(self, addr):
        return FramedConnection(self.relay)


class OutboundFactory(Factory):
    """Builds the connection a peer's ClientService keeps alive."""

    noisy = False

    def __init__(self, relay, peer, probing=None):
        self.relay = relay
        self.peer = peer
        self.probing = probing   # see FramedConnection

    def buildProtocol(self, addr):
        return FramedConnection(self.relay, self.peer, self.probing)
