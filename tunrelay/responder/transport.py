"""An ITransport over one connection of the pure TCP core, for ordinary Twisted protocols.

The protocol writes through ``write``/``writeSequence`` without ever blocking, as with any
Twisted transport; bytes the core's send buffer cannot take yet wait here and go out on
``WritableAgain``. That local backlog is bounded in effect: past HIGH_WATER we pause the
registered producer (IConsumer side) *and* stop reading from the peer (so a protocol that
writes in answer to reads, like echo, is throttled by the peer's own window), and resume
both below LOW_WATER.

Flow control the other way (IPushProducer side): a protocol that calls
``transport.pauseProducing()`` makes the core advertise a zero window until
``resumeProducing()``.
"""

import socket

from twisted.internet import error as twisted_error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer

from tunrelay.stack.tcp.connection import TcpStateError

__all__ = ["StackTransport", "HIGH_WATER", "LOW_WATER", "twisted_address"]

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
_OVEROFFER = 64 * 1024


def twisted_address(connection, host_and_port):
    """The Twisted address object for one end (``connection.host`` or ``.peer``)."""
    kind = IPv6Address if connection.family == socket.AF_INET6 else IPv4Address
    return kind("TCP", *host_and_port)


@implementer(ITransport, IConsumer, IPushProducer)
class StackTransport:
    def __init__(self, port, connection, protocol):
        self._port = port
        self.connection = connection
        self.protocol = protocol
        self._backlog = bytearray()
        self._producer = None
        self._streaming = False
        self._throttled = False
        self.disconnecting = False
        self.disconnected = False

    # ---- ITransport -------------------------------------------------------------------

    def write(self, data):
        if self.disconnecting or self.disconnected or not data:
            return
        self._backlog += data
        self._push()

    def writeSequence(self, sequence):
        self.write(b"".join(sequence))

    def loseConnection(self):
        if self.disconnecting or self.disconnected:
            return
        self.disconnecting = True
        if not self._backlog:
            self.connection.close(self._port.now())
            self._port.flush_soon()

    def abortConnection(self):
        if self.disconnected:
            return
        self.disconnecting = True
        self._backlog.clear()
        self.connection.abort(self._port.now())
        self._port.flush_soon()

    def getPeer(self):
        return twisted_address(self.connection, self.connection.peer)

    def getHost(self):
        return twisted_address(self.connection, self.connection.host)

    # ---- IConsumer: a producer feeding this transport ---------------------------------

    def registerProducer(self, producer, streaming):
        if self._producer is not None:
            raise RuntimeError("a producer is already registered")
        self._producer, self._streaming = producer, streaming
        if not streaming:
            producer.resumeProducing()

    def unregisterProducer(self):
        self._producer = None

    # ---- IPushProducer: the protocol throttling what it receives ----------------------

    def pauseProducing(self):
        self.connection.pause_reading()

    def resumeProducing(self):
        if not self.disconnected:
            self.connection.resume_reading(self._port.now())
            self._port.flush_soon()

    def stopProducing(self):
        self.loseConnection()

    # ---- events from the core ---------------------------------------------------------

    def writable_again(self):
        self._push()
        if self.disconnecting and not self._backlog and not self.disconnected:
            self.connection.close(self._port.now())
            self._port.flush_soon()

    def connection_lost(self, reason):
        if self.disconnected:
            return
        self.disconnected = True
        self._backlog.clear()
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()
        failure = twisted_error.ConnectionDone if reason == "done" else twisted_error.ConnectionLost
        self.protocol.connectionLost(Failure(failure("responder TCP: %s" % reason)))

    # ---- internals --------------------------------------------------------------------

    def _push(self):
        if self._backlog:
            # Offer a little more than fits: the core promises WritableAgain only after a
            # send it could not take whole, and that event is what drains the backlog.
            offer = self.connection.send_buffer_free() + _OVEROFFER
            try:
                accepted = self.connection.send(bytes(self._backlog[:offer]), self._port.now())
            except TcpStateError:  # closing underneath us: nothing more can be sent
                accepted = len(self._backlog)
            del self._backlog[:accepted]
            self._port.flush_soon()
        size = len(self._backlog)
        if size > HIGH_WATER and not self._throttled:
            self._throttled = True
            self.connection.pause_reading()
            if self._producer is not None and self._streaming:
                self._producer.pauseProducing()
        elif size < LOW_WATER and self._throttled:
            self._throttled = False
            self.connection.resume_reading(self._port.now())
            if self._producer is not None and self._streaming:
                self._producer.resumeProducing()
        elif size < LOW_WATER and self._producer is not None and not self._streaming:
            self._producer.resumeProducing()
