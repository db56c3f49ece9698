"""Reconnect at once when the network comes back: rtnetlink change notices (RFC 3549 §3.1.1).

A TCP peer we dial is retried with capped exponential backoff; after a long underlay outage
the next attempt may be many seconds away when the link returns. The kernel announces every
link, address and route change on the rtnetlink multicast groups, so a socket that joins
them learns of a returning link the moment it happens. Each notice (any burst of them,
gathered for ``SETTLE`` seconds, since a link coming up brings its addresses and routes a
moment later) moves every waiting reconnect to now. The backoff itself is untouched: it
still spaces attempts while nothing changes.

Only the 16-byte nlmsghdr of each notice is read, and its length checked; what changed does
not matter, only that something did.
"""

import socket
import struct

from twisted.logger import Logger

from .readers import add_reader

__all__ = ["NetworkChangeWatcher", "RetryClock"]

_RTMGRP_LINK, _RTMGRP_IPV4_IFADDR, _RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
_RTMGRP_IPV6_IFADDR, _RTMGRP_IPV6_ROUTE = 0x100, 0x400
_GROUPS = _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV4_ROUTE | _RTMGRP_IPV6_IFADDR | _RTMGRP_IPV6_ROUTE
ROUTE_GROUPS = _RTMGRP_IPV4_ROUTE | _RTMGRP_IPV6_ROUTE
_RTM_NEWLINK, _RTM_NEWADDR, _RTM_NEWROUTE, _RTM_DELROUTE = 16, 20, 24, 25
_COMING_UP = frozenset((_RTM_NEWLINK, _RTM_NEWADDR, _RTM_NEWROUTE))
ROUTE_CHANGES = frozenset((_RTM_NEWROUTE, _RTM_DELROUTE))
_HEADER = struct.Struct("=IHHII")   # length, type, flags, sequence, port id
_READS_PER_TURN = 64
SETTLE = 0.2


def coming_up(datagram, kinds=_COMING_UP):
    """True if ``datagram`` (one read from the socket) holds a notice of one of ``kinds``
    (by default new-link, -address or -route)."""
    offset = 0
    while offset + _HEADER.size <= len(datagram):
        length, kind, _, _, _ = _HEADER.unpack_from(datagram, offset)
        if length < _HEADER.size or offset + length > len(datagram):
            return False            # malformed: the kernel never sends that, so nothing is trusted
        if kind in kinds:
            return True
        offset += (length + 3) & ~3   # NLMSG_ALIGN
    return False


class RetryClock:
    """The clock a ClientService schedules its retries on: the reactor's, remembering the calls
    so that ``retry_now`` can move them to now (DelayedCall.reset is public API)."""

    def __init__(self, reactor):
        self.reactor = reactor
        self._calls = []

    def seconds(self):
        return self.reactor.seconds()

    def callLater(self, delay, function, *args, **kwargs):
        self._calls = [call for call in self._calls if call.active()]
        call = self.reactor.callLater(delay, function, *args, **kwargs)
        self._calls.append(call)
        return call

    def retry_now(self):
        for call in self._calls:
            if call.active():
                call.reset(0)
        self._calls = []


class NetworkChangeWatcher:
    """Calls ``changed()`` once per burst of network changes that may have brought a path back
    (or, given other ``groups`` and ``kinds``, once per burst of those notices)."""

    log = Logger()
    consequence = "TCP peers reconnect on their backoff only"

    def __init__(self, reactor, changed, groups=_GROUPS, kinds=_COMING_UP, settle=SETTLE):
        self.reactor = reactor
        self.changed = changed
        self.groups, self.kinds, self.settle = groups, kinds, settle
        self._socket = None
        self._reader = None
        self._settling = None

    def start(self):
        sock = None
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
            sock.bind((0, self.groups))
        except OSError as error:
            if sock is not None:
                sock.close()
            self.log.warn("no rtnetlink notices ({error}): {consequence}", error=error.strerror,
                          consequence=self.consequence)
            return
        self._socket = sock
        self._reader = add_reader(self.reactor, sock.fileno(), self._readable, "rtnetlink notices")

    def stop(self):
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._settling is not None and self._settling.active():
            self._settling.cancel()
        self._settling = None

    def _readable(self):
        up = False
        for _ in range(_READS_PER_TURN):
            try:
                datagram = self._socket.recv(65536)
            except BlockingIOError:
                break
            except OSError:   # ENOBUFS: notices were lost, so something changed
                up = True
                continue
            up = up or coming_up(datagram, self.kinds)
        if up and (self._settling is None or not self._settling.active()):
            self._settling = self.reactor.callLater(self.settle, self.changed)
