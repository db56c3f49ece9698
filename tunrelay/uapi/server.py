"""The UAPI socket: a thin Twisted adapter around ``tunrelay.uapi.protocol``.

Theory of operation
-------------------
:class:`UapiSocketService` binds, probes and removes its socket as every
``tunrelay.unix_socket.UnixSocketService`` does. wg(8) finds a userspace interface NAME
only at ``/var/run/wireguard/NAME.sock``; a socket another live process answers on (a relay
or wireguard-go with the same name, perhaps in another network namespace, since namespaces
share the filesystem) is refused with one line that says which setting picks another.

Each connection is a :class:`UapiProtocol`: bytes go into a ``RequestReader``; each
request is served at once, in order, by the ``backend``:

    backend.uapi_get() -> protocol.DeviceState
    backend.uapi_set(protocol.Set) -> None, or raise protocol.UapiError

and answered with wireguard-go's reply. Bad input (and a refused ``set``) is answered with
its errno, reported through ``report(reason, detail)`` (the service counts it with the
relay's drops, ``uapi_`` + reason, and logs it at a limited rate) and changes nothing.
Connections are bounded (:data:`MAX_CONNECTIONS`; extra ones are closed at once) and
closed after :data:`IDLE_TIMEOUT` seconds without a byte. A half-close ends a ``set`` that
lacks its empty line, as wireguard-go's scanner does at EOF (``printf 'set=1\\n...' | socat``).
"""

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from tunrelay.uapi import protocol
from tunrelay.unix_socket import BoundedConnection, UnixSocketService

__all__ = ["UapiFactory", "UapiProtocol", "UapiSocketService", "IDLE_TIMEOUT", "MAX_CONNECTIONS"]

MAX_CONNECTIONS = 16      # wg, wg-quick and an exporter at once, with room to spare
IDLE_TIMEOUT = 30.0       # a client that connects and says nothing must not hold a slot


@implementer(IHalfCloseableProtocol)
class UapiProtocol(BoundedConnection, Protocol):
    def __init__(self):
        self.reader = protocol.RequestReader()

    def refuse(self):
        self.factory.report("busy", "more than %d UAPI connections" % self.factory.max_connections)
        self.closed = True
        self.transport.loseConnection()

    def dataReceived(self, data):
        if self.closed:
            return
        self.resetTimeout()
        self.reader.feed(data)
        while not self.closed:
            item = self.reader.next_item()
            if item is None:
                return
            self._serve(item)

    def readConnectionLost(self):
        if not self.closed:
            item = self.reader.end_of_input()
            if item is not None:
                self._serve(item)
        self.closed = True
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass

    def _serve(self, item):
        self.transport.write(self.factory.handle(item))
        if isinstance(item, protocol.UapiError) and item.fatal:
            self.closed = True
            self.transport.loseConnection()

    def timeoutConnection(self):
        self.factory.report("idle_timeout", "UAPI client sent nothing for %gs" % self.factory.idle_timeout)
        self.closed = True
        self.transport.loseConnection()


class UapiFactory(Factory):
    protocol = UapiProtocol
    log = Logger(namespace="tunrelay.uapi")

    def __init__(self, backend, reactor, report, max_connections=MAX_CONNECTIONS, idle_timeout=IDLE_TIMEOUT):
        self.backend = backend
        self.reactor = reactor
        self.report = report            # (reason, detail): count and log bad input
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.connections = 0

    def handle(self, item):
        """The reply bytes for one framed item (never raises)."""
        if isinstance(item, protocol.UapiError):
            return self._refused(item)
        try:
            if isinstance(item, protocol.Get):
                return protocol.render_get(self.backend.uapi_get())
            self.backend.uapi_set(item)
        except protocol.UapiError as error:
            return self._refused(error)
        except Exception:  # a bug must cost one reply, not the relay
            self.log.failure("UAPI request failed")
            return protocol.encode_errno(protocol.ERRNO_UNKNOWN)
        return protocol.encode_errno(0)

    def _refused(self, error):
        self.report(error.reason, "%s (errno=%d)" % (error.message, error.errno))
        return protocol.encode_errno(error.errno)


class UapiSocketService(UnixSocketService):
    """Serves the UAPI at ``path`` for ``backend`` (see the module docstring)."""

    label = "UAPI socket"
    log = Logger(namespace="tunrelay.uapi")

    def __init__(self, path, backend, report, reactor=None, **options):
        if reactor is None:
            from twisted.internet import reactor
        UnixSocketService.__init__(self, path, UapiFactory(backend, reactor, report, **options), reactor)

    def in_use_message(self, label, path):
        return ("%s %s is in use by another running WireGuard interface (a relay or wireguard-go of that name, "
                "perhaps in another network namespace); stop it, or set uapi_socket to another path (wg(8) then "
                "calls this relay by the file's name) or to false" % (label, path))
