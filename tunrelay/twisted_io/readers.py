"""Readable descriptors on the data path, called straight from the event loop.

Twisted wraps every readable descriptor in its own dispatch (a logging context, failure
capture and the disconnect protocol of ``IReadDescriptor``); on the data path that costs
a large part of a small packet's round trip. Under Twisted's asyncio reactor, which
tunrelay installs by default (on uvloop where it is installed, see ``tunrelay.reactor``),
the data path's descriptors are registered with the asyncio loop's ``add_reader``
directly, so a wake-up calls the relay's read function and nothing else. Under any other
reactor (``twistd --reactor=...``, or tests) they are ordinary Twisted readers.

Either way the callback must not raise: an exception would tear down a descriptor that
serves every peer. It is logged as a bug and the reader stays registered.
"""

from twisted.internet.abstract import FileDescriptor
from twisted.logger import Logger

__all__ = ["add_reader"]

log = Logger()


def _guarded(callback, what):
    def call():
        try:
            callback()
        except Exception:
            log.failure("reading {what} failed (a bug: the data path must not raise)", what=what)
    return call


class _TwistedReader(FileDescriptor):
    def __init__(self, reactor, fd, callback):
        FileDescriptor.__init__(self, reactor)
        self._fd = fd
        self._callback = callback
        self.connected = 1

    def fileno(self):
        return self._fd

    def doRead(self):
        self._callback()

    def connectionLost(self, reason):
        pass   # the owner closes the descriptor


class Reader:
    """A registration to undo with ``stop()``."""

    def __init__(self, reactor, fd, callback):
        self._loop = getattr(reactor, "_asyncioEventloop", None)
        self._fd = fd
        if self._loop is not None:
            self._loop.add_reader(fd, callback)
            self._twisted = None
        else:
            self._twisted = _TwistedReader(reactor, fd, callback)
            self._twisted.startReading()

    @property
    def direct(self):
        """True when the event loop calls the callback without Twisted's dispatch."""
        return self._loop is not None

    def stop(self):
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None
        elif self._twisted is not None:
            self._twisted.stopReading()
            self._twisted = None


def add_reader(reactor, fd, callback, what):
    """Call ``callback()`` whenever ``fd`` is readable; returns a ``Reader`` to stop it."""
    return Reader(reactor, fd, _guarded(callback, what))
