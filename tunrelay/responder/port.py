"""The responder as a port on the relay's forwarding plane.

Theory of operation
-------------------
The pure cores do the protocol work: ``tunrelay.stack.interface.ResponderInterface``
(Ethernet/ARP in tap mode, IPv4 with reassembly, ICMP; RFC 826, 791, 792, 1122) and
``tunrelay.stack.tcp.TcpStack`` (RFC 9293). This port feeds them frames the relay routes
to the responder's address, hands every frame they emit back to the relay (which sends it
to the kernel through the device or to a peer through the tunnel), fires their timers at
``next_deadline()``, and turns TCP events into calls on ordinary Twisted protocols built by
the configured factories, each connection behind a ``StackTransport``.

An optional seeded fault injector (``responder.faults``) disturbs what the responder sends,
for testing under loss, reordering and duplication without netem.

Writes by protocols are flushed at most once per reactor turn (``flush_soon``), so a
protocol that writes many small pieces produces full segments. An exception raised by a
protocol aborts that one connection and is logged; it never reaches the relay's data path.
"""

import os
from dataclasses import replace

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import Logger

from tunrelay.control.protocol import status_document
from tunrelay.responder.services import make_factory
from tunrelay.responder.transport import StackTransport, twisted_address
from tunrelay.stack.faults import FaultInjector
from tunrelay.stack.interface import ResponderInterface
from tunrelay.stack.tcp import events as tcp_events
from tunrelay.stack.tcp.constants import DEFAULT_LOCAL_MSS
from tunrelay.stack.tcp.stack import TcpStack
from tunrelay.timers import CoreTimer

__all__ = ["ResponderPort"]

_MAX_EVENT_ROUNDS = 64   # protocol callbacks that trigger more events, bounded per turn
MAX_CONNECTIONS = 256    # established connections; the core bounds only those not yet accepted


class ResponderPort:
    log = Logger()

    def __init__(self, config, mode, mtu, clock, emit, status, isn_secret=None):
        self.config = config
        self.clock = clock
        self.emit = emit                      # callable([frames]): back into the relay's data path
        # RFC 9293 §3.7.1: the MSS we offer is what the link carries less 40 bytes of headers.
        self.tcp = TcpStack([address.packed for address in config.addresses], isn_secret or os.urandom(32),
                            mss=min(DEFAULT_LOCAL_MSS, mtu - 40))
        self.interface = ResponderInterface(mode, config.addresses, config.mac if mode == "tap" else None,
                                            mtu, tcp=self.tcp)
        self._owned = frozenset((address.version, int(address)) for address in config.addresses)
        # The http service shows what ``tunrelay status --json`` prints: the snapshot, timed.
        self._status = lambda: status_document(status(), self.now())
        self.factories = {}
        for port, spec in config.services:
            self.factories[port] = make_factory(spec, self._status)
            self.tcp.listen(port)
        self.faults = FaultInjector(*config.faults) if config.faults else None
        self.transports = {}                  # core connection -> StackTransport
        self._timer = CoreTimer(clock, self._next_deadline, self._flush)
        self._flush_queued = False
        self._handlers = {
            tcp_events.ConnectionAccepted: self._accepted,
            tcp_events.DataReceived: self._data,
            tcp_events.PeerClosed: self._peer_closed,
            tcp_events.ConnectionLost: self._lost,
            tcp_events.WritableAgain: self._writable,
        }

    def now(self):
        return self.clock.seconds()

    def owns(self, version, address):
        """Whether a packet for IP ``version`` and ``address`` (an integer) is ours to take."""
        return (version, address) in self._owned

    # ---- lifecycle --------------------------------------------------------------------

    def start(self):
        for factory in self.factories.values():
            factory.doStart()
        self._emit(self.interface.start(self.now()))
        self._settle()

    def stop(self):
        for transport in list(self.transports.values()):
            transport.abortConnection()
        self._emit(self.interface.poll(self.now()))
        for factory in self.factories.values():
            factory.doStop()
        self._timer.cancel()

    def update_services(self, services):
        """Apply a reloaded ``services`` map: new ports listen, removed ones stop accepting.

        Connections already accepted on a removed or changed port carry on with the
        protocol they have; only new connections see the change.
        """
        wanted = dict(services)
        current = dict(self.config.services)
        for port, spec in current.items():
            if wanted.get(port) != spec:
                self.tcp.stop_listening(port)
                self.factories.pop(port).doStop()
        for port, spec in wanted.items():
            if current.get(port) != spec:
                factory = make_factory(spec, self._status)
                factory.doStart()
                self.factories[port] = factory
                self.tcp.listen(port)
        self.config = replace(self.config, services=tuple(services))

    # ---- frames -----------------------------------------------------------------------

    def frame_received(self, frame):
        self._emit(self.interface.frame_received(frame, self.now()))
        self._settle()

    def flush_soon(self):
        if not self._flush_queued:
            self._flush_queued = True
            self.clock.callLater(0, self._flush)

    def _flush(self):
        self._flush_queued = False
        self._emit(self.interface.poll(self.now()))
        if self.faults is not None:
            self._send(self.faults.poll(self.now()))
        self._settle()

    def _emit(self, frames):
        if self.faults is not None:
            frames = self.faults.process(frames, self.now())
        self._send(frames)

    def _send(self, frames):
        frames = list(frames)
        if frames:
            self.emit(frames)   # one batch: coalesced for the device, one send per run for a peer

    def _settle(self):
        """Run protocol callbacks for pending TCP events, send what they wrote, rearm the timer."""
        for _ in range(_MAX_EVENT_ROUNDS):
            events = self.tcp.pop_events()
            if not events:
                break
            for event in events:
                self._dispatch(event)
            self._emit(self.interface.poll(self.now()))
        self._timer.rearm()

    def _next_deadline(self):
        deadlines = [self.interface.next_deadline(), self.faults.next_deadline() if self.faults else None]
        return min((deadline for deadline in deadlines if deadline is not None), default=None)

    # ---- TCP events -> protocols --------------------------------------------------------

    def _dispatch(self, event):
        try:
            self._handlers[type(event)](event)
        except Exception:
            self.log.failure("responder service on port {port} failed; aborting that connection",
                             port=event.conn.host[1])
            transport = self.transports.get(event.conn)
            if transport is not None:
                transport.abortConnection()

    def _accepted(self, event):
        connection = event.conn
        if len(self.transports) >= MAX_CONNECTIONS:
            self.interface.drops["tcp_too_many_connections"] += 1
            connection.abort(self.now())
            return
        factory = self.factories.get(connection.host[1])
        protocol = factory.buildProtocol(twisted_address(connection, connection.peer)) if factory else None
        if protocol is None:
            connection.abort(self.now())
            return
        transport = StackTransport(self, connection, protocol)
        self.transports[connection] = transport
        protocol.makeConnection(transport)

    def _data(self, event):
        transport = self.transports.get(event.conn)
        if transport is not None and not transport.disconnected:
            transport.protocol.dataReceived(event.data)

    def _peer_closed(self, event):
        transport = self.transports.get(event.conn)
        if transport is None:
            return
        if IHalfCloseableProtocol.providedBy(transport.protocol):
            transport.protocol.readConnectionLost()
        else:
            transport.loseConnection()  # Twisted's rule: no half-close support, so close

    def _lost(self, event):
        transport = self.transports.pop(event.conn, None)
        if transport is not None:
            transport.connection_lost(event.reason)

    def _writable(self, event):
        transport = self.transports.get(event.conn)
        if transport is not None:
            transport.writable_again()

    # ---- status -----------------------------------------------------------------------

    def snapshot(self):
        counters = dict(self.interface.counters())
        counters["address"] = str(self.config.address)
        counters["addresses"] = [str(address) for address in self.config.addresses]
        counters["tcp"] = dict(self.tcp.counters)
        counters["connections"] = len(self.transports)
        if self.faults is not None:
            counters["faults"] = dict(self.faults.counts)
        return counters
