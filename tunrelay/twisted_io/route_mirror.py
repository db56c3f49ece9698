"""The kernel's routes via a gateway on our tun device, mirrored into the relay (tun mode).

Each burst of route notices (RTM_NEWROUTE/RTM_DELROUTE on the rtnetlink route groups,
gathered for SETTLE seconds) makes one dump of the main table (pyroute2); the unicast routes
whose next hop is on our device and has a gateway go to the pure model
(tunrelay.forwarding.next_hops), which decides what the peers may carry. A dump rather than
the notices' contents: the set is small, a dump cannot miss a change, and an ENOBUFS (lost
notices) costs nothing special. SETTLE is short because a routing daemon's failover (BFD)
is measured in a few hundred milliseconds, and this adds to it.

The dump runs in the reactor's thread pool: pyroute2's synchronous API runs an asyncio loop
of its own, which cannot nest inside a running event loop (uvloop's or asyncio's). One dump
is in flight at a time; a change during it asks for one more, so the last one always wins.
"""

import socket

from twisted.internet import threads

from .netlink_watch import ROUTE_CHANGES, ROUTE_GROUPS, NetworkChangeWatcher

__all__ = ["RouteMirror", "kernel_routes_via"]

SETTLE = 0.02
RT_TABLE_MAIN = 254
RTN_UNICAST = 1


def _gateways_on(message, index):
    """The gateways of ``message``'s next hops on interface ``index`` (multipath included)."""
    if message.get_attr("RTA_OIF") == index and message.get_attr("RTA_GATEWAY"):
        return (message.get_attr("RTA_GATEWAY"),)
    return tuple(hop.get_attr("RTA_GATEWAY") for hop in message.get_attr("RTA_MULTIPATH") or ()
                 if hop.get("oif") == index and hop.get_attr("RTA_GATEWAY"))


def kernel_routes_via(index):
    """[(network, gateways)] of the main table's unicast routes with a gateway on ``index``."""
    from pyroute2 import IPRoute

    found = []
    with IPRoute() as ipr:
        for family, default in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            for message in ipr.get_routes(family=family, table=RT_TABLE_MAIN):
                table = message.get_attr("RTA_TABLE") or message["table"]
                if table != RT_TABLE_MAIN or message["type"] != RTN_UNICAST:
                    continue
                gateways = _gateways_on(message, index)
                if gateways:
                    found.append(("%s/%d" % (message.get_attr("RTA_DST") or default, message["dst_len"]), gateways))
    return found


class RouteMirror:
    """Keeps ``next_hops`` (a NextHopRoutes) equal to the kernel's routes via our device.

    A failed dump is counted and logged at a limited rate through ``drops`` (the relay's
    DropReporter) as ``route_dump_failed``, and the last routes stay."""

    def __init__(self, reactor, next_hops, drops, read_routes=kernel_routes_via):
        self.reactor = reactor
        self.next_hops = next_hops
        self.drops = drops
        self.read_routes = read_routes
        self.index = None
        self._reading = False
        self._again = False
        self._stopped = False
        self._watcher = NetworkChangeWatcher(reactor, self.resync, groups=ROUTE_GROUPS, kinds=ROUTE_CHANGES,
                                             settle=SETTLE)
        self._watcher.consequence = "routes via peers are read at start only"

    def start(self, index):
        self.index = index
        self._watcher.start()
        self.resync()

    def stop(self):
        self._stopped = True
        self._watcher.stop()

    def resync(self):
        if self._reading:
            self._again = True
            return
        self._reading, self._again = True, False
        reading = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.read_routes, self.index)
        reading.addCallbacks(self._read, self._failed)
        reading.addBoth(self._done)

    def _read(self, routes):
        if not self._stopped:
            self.next_hops.replace_routes(routes)

    def _failed(self, failure):
        # pyroute2 raises NetlinkError, OSError and its own kinds
        self.drops.drop("route_dump_failed", None, "cannot read the kernel's routes (%s); keeping the last ones"
                        % failure.getErrorMessage())

    def _done(self, _):
        self._reading = False
        if self._again and not self._stopped:
            self.resync()
