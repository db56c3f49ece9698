"""The control socket as a Twisted service: a UNIX socket speaking ``tunrelay.control.protocol``.

Theory of operation
-------------------
:class:`ControlSocketService` binds the socket in ``privilegedStartService`` (as root,
before twistd drops to ``-u/-g``, because ``/run`` is root's), in this order:

1. create the parent directory if missing (0755: the socket's own 0600 mode is the access
   control, the directory only has to be traversable);
2. probe an existing path by connecting to it: an answer means another relay owns it and
   we refuse with :class:`ControlSocketInUse` (one line naming the path) rather than steal
   it; ``ECONNREFUSED`` means a stale socket left by a crash, which is removed; a path that
   is not a socket is never removed;
3. bind with a 0177 umask and chmod 0600 afterwards, so no umask and no window between
   bind and chmod ever exposes the socket to other users.

Each connection is a :class:`ControlProtocol`: requests are answered in order, one at a
time (a reload in progress pauses reading, so requests queue in the kernel rather than in
our memory). Connections are bounded (:data:`MAX_CONNECTIONS`, extra ones get a ``busy``
reply and are closed) and closed after :data:`IDLE_TIMEOUT` seconds without a request.
Every bad request (and every idle or refused connection) is counted by reason in
:attr:`ControlSocketService.errors` and logged at a limited rate; no request, however malformed, raises out of the handler.

``snapshot()`` returns ``Relay.snapshot()``-shaped data; ``reload()`` returns ``(ok,
message)`` or a Deferred firing with it. Only one reload runs at a time.
"""

import os
import socket
import stat

from twisted.application.service import Service
from twisted.internet import defer, error as twisted_error
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin

from tunrelay.control import protocol
from tunrelay.stats import Counters, DropReporter

__all__ = ["ControlSocketError", "ControlSocketInUse", "ControlSocketService", "ControlFactory",
           "ControlProtocol", "prepare_socket_path", "IDLE_TIMEOUT", "MAX_CONNECTIONS"]

MAX_CONNECTIONS = 16      # an operator's status loop plus monitoring, with room to spare
IDLE_TIMEOUT = 10.0       # a client that connects and says nothing must not hold a slot
PROBE_TIMEOUT = 2.0       # connect() on a UNIX socket answers at once; this only guards a wedged peer
SOCKET_MODE = 0o600
DIRECTORY_MODE = 0o755


class ControlSocketError(Exception):
    """The control socket cannot be set up; ``str()`` is the one line the operator sees."""


class ControlSocketInUse(ControlSocketError):
    """Another live process answers on the control socket's path."""


def _create_directory(directory):
    """Create ``directory`` and missing parents, 0755 whatever the umask; leave existing ones alone."""
    missing = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIRECTORY_MODE)
        except FileExistsError:
            continue  # created concurrently (systemd's RuntimeDirectory, another relay)
        os.chmod(path, DIRECTORY_MODE)


def prepare_socket_path(path):
    """Make ``path`` bindable: create its directory, refuse a live socket, remove a stale one.

    Raises ControlSocketError (or its subclass ControlSocketInUse) with a one-line message.
    """
    try:
        _create_directory(os.path.dirname(os.path.abspath(path)))
    except OSError as failure:
        raise ControlSocketError("cannot create the directory of control socket %s: %s"
                                 % (path, failure.strerror or failure)) from None
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as failure:
        raise ControlSocketError("cannot inspect control socket %s: %s" % (path, failure.strerror)) from None
    if not stat.S_ISSOCK(mode):
        raise ControlSocketError("control socket path %s exists and is not a socket; refusing to replace it"
                                 % path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        pass  # nobody listens: stale, removed below
    except FileNotFoundError:
        return  # removed between lstat and connect
    except (BlockingIOError, socket.timeout):
        # A full backlog or a wedged listener is still a live owner.
        raise ControlSocketInUse(_in_use_message(path)) from None
    except OSError as failure:
        raise ControlSocketError("cannot probe control socket %s: %s" % (path, failure.strerror or failure)) from None
    else:
        raise ControlSocketInUse(_in_use_message(path))
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as failure:
        raise ControlSocketError("cannot remove stale control socket %s: %s" % (path, failure.strerror)) from None


def _in_use_message(path):
    return ("control socket %s is in use by a running relay; stop it first, or set another "
            "control_socket" % path)


class ControlProtocol(Protocol, TimeoutMixin):
    """One control connection: requests in, replies out, strictly in order."""

    def __init__(self):
        self.reader = protocol.RequestReader()
        self.accepted = False
        self.waiting = False       # a reload reply is outstanding; later requests wait
        self.closed = False

    def connectionMade(self):
        factory = self.factory
        self.callLater = factory.reactor.callLater   # TimeoutMixin's clock: the injected one
        if factory.connections >= factory.max_connections:
            self._fail(protocol.RequestError("busy", "too many control connections (%d); try again"
                                             % factory.max_connections, fatal=True))
            return
        self.accepted = True
        factory.connections += 1
        self.setTimeout(factory.idle_timeout)

    def connectionLost(self, reason=None):
        self.closed = True
        self.setTimeout(None)
        if self.accepted:
            self.accepted = False
            self.factory.connections -= 1

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

    def __init__(self, snapshot, reload, reactor, max_connections=MAX_CONNECTIONS, idle_timeout=IDLE_TIMEOUT):
        self.snapshot = snapshot
        self.reload = reload
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


class ControlSocketService(Service):
    """Serves the control socket at ``path``; see the module docstring for start and stop."""

    log = Logger(namespace="tunrelay.control")

    def __init__(self, path, snapshot, reload, reactor=None, max_connections=MAX_CONNECTIONS,
                 idle_timeout=IDLE_TIMEOUT):
        if reactor is None:
            from twisted.internet import reactor
        self.path = path
        self.reactor = reactor
        self.factory = ControlFactory(snapshot, reload, reactor, max_connections, idle_timeout)
        self.port = None

    @property
    def errors(self):
        """Error replies so far by reason (``bad_json``, ``line_too_long``...): a live Counter."""
        return self.factory.clients.counters.drops

    def privilegedStartService(self):
        """Bind the socket (see the module docstring); raise ControlSocketError on failure."""
        self.listen()
        Service.privilegedStartService(self)

    def listen(self):
        if self.port is not None:
            return
        prepare_socket_path(self.path)
        previous = os.umask(0o177)
        try:
            self.port = self.reactor.listenUNIX(self.path, self.factory, mode=SOCKET_MODE)
        except twisted_error.CannotListenError as failure:
            raise ControlSocketError("cannot listen on control socket %s: %s"
                                     % (self.path, getattr(failure.socketError, "strerror", None)
                                        or failure.socketError)) from None
        finally:
            os.umask(previous)
        try:
            os.chmod(self.path, SOCKET_MODE)
        except OSError as failure:
            self.close()
            raise ControlSocketError("cannot set mode 0600 on control socket %s: %s"
                                     % (self.path, failure.strerror)) from None
        self.log.info("control socket listening on {path}", path=self.path)

    def startService(self):
        self.listen()   # started without twistd's privileged step (tests, embedding)
        Service.startService(self)

    def stopService(self):
        Service.stopService(self)
        return self.close()

    def close(self):
        """Stop listening and remove the socket file; idempotent. A Deferred (already fired
        under a real reactor once the port has closed)."""
        port, self.port = self.port, None
        if port is None:
            return defer.succeed(None)
        stopped = defer.maybeDeferred(port.stopListening)
        # Twisted unlinks the path itself when the port closes; do it again in case that
        # failed, and never let a leftover file (e.g. after dropping privileges) fail stop.
        stopped.addErrback(lambda failure: None)
        stopped.addCallback(lambda _: self._remove_socket_file())
        return stopped

    def _remove_socket_file(self):
        try:
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as failure:
            self.log.warn("cannot remove control socket {path}: {error}", path=self.path, error=failure.strerror)
