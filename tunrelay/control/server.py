"""The control socket as a Twisted service: a UNIX socket speaking ``tunrelay.control.protocol``.

Theory of operation
-------------------
:class:`ControlSocketService` binds, probes and removes its socket as every
``tunrelay.unix_socket.UnixSocketService`` does (0600, a live owner refused with
:class:`ControlSocketInUse`, a stale socket replaced).

Each connection is a :class:`ControlProtocol`: requests are answered in order, one at a
time (a reload in progress pauses reading, so requests queue in the kernel rather than in
our memory). Connections are bounded (:data:`MAX_CONNECTIONS`, extra ones get a ``busy``
reply and are closed) and closed after :data:`IDLE_TIMEOUT` seconds without a request.
Every bad request (and every idle or refused connection) is counted by reason in
:attr:`ControlSocketService.errors` and logged at a limited rate; no request, however malformed, raises out of the handler.

``snapshot()`` returns ``Relay.snapshot()``-shaped data; ``reload()`` returns ``(ok,
message)`` or a Deferred firing with it. Only one reload runs at a time. ``showconf()``
returns the running configuration as YAML text.
"""

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from tunrelay.control import protocol
from tunrelay.stats import Counters, DropReporter
from tunrelay.unix_socket import (BoundedConnection, UnixSocketError, UnixSocketInUse, UnixSocketService,
                                  prepare_socket_path)

__all__ = ["ControlSocketError", "ControlSocketInUse", "ControlSocketService", "ControlFactory",
           "ControlProtocol", "prepare_socket_path", "IDLE_TIMEOUT", "MAX_CONNECTIONS"]

MAX_CONNECTIONS = 16      # an operator's status loop plus monitoring, with room to spare
IDLE_TIMEOUT = 10.0       # a client that connects and says nothing must not hold a slot


# The socket's setup and teardown live in tunrelay.unix_socket; these names stay for callers.
ControlSocketError = UnixSocketError
ControlSocketInUse = UnixSocketInUse


class ControlProtocol(BoundedConnection, Protocol):
    """One control connection: requests in, replies out, strictly in order."""

    def __init__(self):
        self.reader = protocol.RequestReader()
        self.waiting = False       # a reload reply is outstanding; later requests wait

    def refuse(self):
        self._fail(protocol.RequestError("busy", "too many control connections (%d); try again"
                                         % self.factory.max_connections, fatal=True))

    def dataReceived(self, data):
        if not self.accepted or self.closed:
            return
        self.resetTimeout()
        self.reader.feed(data)
        self._serve()

    def _serve(self):
        while not self.waiting and not self.closed:
            item = self.reader.next_item()
            if item is None:
                return
            if isinstance(item, protocol.RequestError):
                self._fail(item)
                continue
            try:
                result = self.factory.handle(item)
            except Exception:  # a handler bug must cost one reply, not the relay
                self.factory.log.failure("control request {command} failed", command=item.command)
                result = protocol.error_reply("internal_error", "the relay failed to answer; see its log")
            if isinstance(result, defer.Deferred):
                self._wait_for(result)
            else:
                self._reply(result)

    def _wait_for(self, deferred):
        self.waiting = True
        self.setTimeout(None)                 # a slow reload is not an idle client
        self.transport.pauseProducing()       # queue further requests in the kernel, not here

        def answered(reply):
            self.waiting = False
            if self.closed:
                return
            self._reply(reply)
            self.transport.resumeProducing()
            self.setTimeout(self.factory.idle_timeout)
            self._serve()

        deferred.addCallback(answered)

    def _reply(self, reply):
        try:
            data = protocol.encode_message(reply)
        except Exception:  # e.g. a snapshot with a reference cycle: answer, don't crash
            self.factory.log.failure("cannot encode a control reply")
            data = protocol.encode_message(protocol.error_reply("internal_error", "the relay failed to answer; "
                                                                "see its log"))
        self.transport.write(data)

    def _fail(self, request_error):
        # Counted here, for what the client did wrong; a failed reload is the reload's to log.
        self.factory.count(request_error.reason, request_error.message)
        self._reply(request_error.reply())
        if request_error.fatal:
            self.closed = True
            self.transport.loseConnection()

    def timeoutConnection(self):
        self.factory.count("idle_timeout", "control client sent nothing for %gs" % self.factory.idle_timeout)
        self.transport.loseConnection()


class _ControlClients:
    """What DropReporter needs of a peer: control errors are counted and logged like drops."""

    name = "control client"

    def __init__(self):
        self.counters = Counters()


class ControlFactory(Factory):
    protocol = ControlProtocol
    log = Logger(namespace="tunrelay.control")

    def __init__(self, snapshot, reload, reactor, max_connections=MAX_CONNECTIONS, idle_timeout=IDLE_TIMEOUT,
                 showconf=None):
        self.snapshot = snapshot
        self.reload = reload
        self.showconf = showconf
        self.reactor = reactor
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.connections = 0
        self.reloading = False
        self.reporter = DropReporter(reactor)
        self.clients = _ControlClients()

    def count(self, reason, detail=""):
        """Count an error reply by reason and log it at a limited rate."""
        self.reporter.drop(reason, self.clients, detail)

    def handle(self, request):
        """Serve one request: a reply dict, or a Deferred firing with one (never failing)."""
        if request.command == "status":
            return protocol.status_reply(self.snapshot(), self.reactor.seconds())
        if request.command == "showconf":
            if self.showconf is None:
                return protocol.error_reply("unknown_command", "this relay cannot show its configuration")
            return protocol.showconf_reply(self.showconf())
        return self._reload()

    def _reload(self):
        if self.reloading:
            return protocol.error_reply("busy", "a reload is already in progress")
        self.reloading = True

        def failed(failure):
            self.log.failure("reload failed", failure)
            return (False, "reload failed: %s" % (failure.getErrorMessage() or failure.type.__name__))

        def done(reply):
            self.reloading = False
            return reply

        deferred = defer.maybeDeferred(self.reload)
        deferred.addErrback(failed)
        deferred.addCallback(protocol.reload_reply)
        deferred.addBoth(done)
        return deferred


class ControlSocketService(UnixSocketService):
    """Serves the control socket at ``path``; see ``tunrelay.unix_socket`` for start and stop."""

    def __init__(self, path, snapshot, reload, reactor=None, max_connections=MAX_CONNECTIONS,
                 idle_timeout=IDLE_TIMEOUT, showconf=None):
        if reactor is None:
            from twisted.internet import reactor
        UnixSocketService.__init__(self, path, ControlFactory(snapshot, reload, reactor, max_connections,
                                                              idle_timeout, showconf), reactor)

    @property
    def errors(self):
        """Error replies so far by reason (``bad_json``, ``line_too_long``...): a live Counter."""
        return self.factory.clients.counters.drops
