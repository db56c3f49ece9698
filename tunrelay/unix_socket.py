"""A UNIX listening socket owned by one relay: the control socket and the UAPI socket.

Theory of operation
-------------------
:class:`UnixSocketService` binds its socket in ``privilegedStartService`` (as root, before
twistd drops to ``-u/-g``, because ``/run`` is root's), in this order:

1. create the parent directory if missing (0755: the socket's own 0600 mode is the access
   control, the directory only has to be traversable);
2. probe an existing path by connecting to it: an answer means another process owns it and
   we refuse with :class:`UnixSocketInUse` (one line naming the path) rather than steal
   it; ``ECONNREFUSED`` means a stale socket left by a crash, which is removed; a path that
   is not a socket is never removed. wg(8) and wireguard-go treat their sockets the same way;
3. bind with a 0177 umask and chmod 0600 afterwards, so no umask and no window between
   bind and chmod ever exposes the socket to other users.

Stopping removes the file. What the socket speaks is the factory's business.
"""

import os
import socket
import stat

from twisted.application.service import Service
from twisted.internet import defer, error as twisted_error
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin

__all__ = ["BoundedConnection", "UnixSocketError", "UnixSocketInUse", "UnixSocketService", "prepare_socket_path",
           "SOCKET_MODE", "DIRECTORY_MODE"]

PROBE_TIMEOUT = 2.0       # connect() on a UNIX socket answers at once; this only guards a wedged peer
SOCKET_MODE = 0o600
DIRECTORY_MODE = 0o755


class UnixSocketError(Exception):
    """The socket cannot be set up; ``str()`` is the one line the operator sees."""


class UnixSocketInUse(UnixSocketError):
    """Another live process answers on the socket's path."""


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


def _default_in_use(label, path):
    return "%s %s is in use by a running relay; stop it first, or set another control_socket" % (label, path)


def prepare_socket_path(path, label="control socket", in_use_message=_default_in_use):
    """Make ``path`` bindable: create its directory, refuse a live socket, remove a stale one.

    Raises UnixSocketError (or its subclass UnixSocketInUse) with a one-line message that
    calls the socket ``label``; ``in_use_message(label, path)`` words the refusal.
    """
    try:
        _create_directory(os.path.dirname(os.path.abspath(path)))
    except OSError as failure:
        raise UnixSocketError("cannot create the directory of %s %s: %s"
                              % (label, path, failure.strerror or failure)) from None
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as failure:
        raise UnixSocketError("cannot inspect %s %s: %s" % (label, path, failure.strerror)) from None
    if not stat.S_ISSOCK(mode):
        raise UnixSocketError("%s path %s exists and is not a socket; refusing to replace it" % (label, path))
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
        raise UnixSocketInUse(in_use_message(label, path)) from None
    except OSError as failure:
        raise UnixSocketError("cannot probe %s %s: %s" % (label, path, failure.strerror or failure)) from None
    else:
        raise UnixSocketInUse(in_use_message(label, path))
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as failure:
        raise UnixSocketError("cannot remove stale %s %s: %s" % (label, path, failure.strerror)) from None


class BoundedConnection(TimeoutMixin):
    """A connection counted against ``factory.max_connections`` and closed after
    ``factory.idle_timeout`` seconds of silence (``factory.reactor`` is the clock). One over
    the bound is handed to ``refuse()`` and never counted."""

    accepted = False
    closed = False

    def refuse(self):
        raise NotImplementedError

    def connectionMade(self):
        factory = self.factory
        self.callLater = factory.reactor.callLater   # TimeoutMixin's clock: the injected one
        if factory.connections >= factory.max_connections:
            self.refuse()
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


class UnixSocketService(Service):
    """Serves ``factory`` on a 0600 UNIX socket at ``path``; see the module docstring."""

    log = Logger(namespace="tunrelay.control")
    label = "control socket"

    def __init__(self, path, factory, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.path = path
        self.reactor = reactor
        self.factory = factory
        self.port = None

    def in_use_message(self, label, path):
        return _default_in_use(label, path)

    def privilegedStartService(self):
        """Bind the socket (see the module docstring); raise UnixSocketError on failure."""
        self.listen()
        Service.privilegedStartService(self)

    def listen(self):
        if self.port is not None:
            return
        prepare_socket_path(self.path, self.label, self.in_use_message)
        previous = os.umask(0o177)
        try:
            self.port = self.reactor.listenUNIX(self.path, self.factory, mode=SOCKET_MODE)
        except twisted_error.CannotListenError as failure:
            raise UnixSocketError("cannot listen on %s %s: %s"
                                  % (self.label, self.path, getattr(failure.socketError, "strerror", None)
                                     or failure.socketError)) from None
        finally:
            os.umask(previous)
        try:
            os.chmod(self.path, SOCKET_MODE)
        except OSError as failure:
            self.close()
            raise UnixSocketError("cannot set mode 0600 on %s %s: %s"
                                  % (self.label, self.path, failure.strerror)) from None
        self.log.info("{label} listening on {path}", label=self.label, path=self.path)

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
            self.log.warn("cannot remove {label} {path}: {error}", label=self.label, path=self.path,
                          error=failure.strerror)
