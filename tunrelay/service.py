"""The relay as a Twisted service: what runs when, and in which privilege.

twistd calls ``privilegedStartService`` as root, then drops to ``-u/-g``, then calls
``startService``. Everything that needs CAP_NET_ADMIN or CAP_NET_RAW or a low port happens
in the first: creating and configuring the device, binding listen sockets, opening
AF_PACKET sockets. Outbound TCP connects, UDP endpoint resolution and timers happen in the
second and need no privilege. Stopping closes the device descriptor, which makes the
kernel delete the interface and everything added to it (see ``tunrelay.device``).

A startup failure (device busy, address in use, missing interface) is one log line and a
non-zero exit, never a traceback.

The running configuration is a frozen ``RelayConfig`` plus its ``Secrets``. It changes
through one method, :meth:`RelayService.apply`, whoever asks: a SIGHUP or ``tunrelay
reload`` (which re-reads the file) or the UAPI (``wg set``, ``wg syncconf``, ``wg-quick``),
which builds the new pair from the running one (``tunrelay.uapi.apply``). Either way, what
did not change keeps its sessions, paths and counters. UAPI changes are running state only,
as with wireguard-go: nothing is written to the file, ``tunrelay showconf`` prints the
running state as YAML, and the next reload re-reads the file and applies it over them.

If the kernel deletes the device under us (``ip link delete``, which is how ``wg-quick
down`` stops a userspace WireGuard), there is nothing left to relay: the relay stops, as
wireguard-go does.
"""

import signal
import sys
from dataclasses import replace

from twisted.application.service import MultiService
from twisted.internet import error as twisted_error
from twisted.logger import Logger

from tunrelay import config as configuration
from tunrelay.config_dump import dump as dump_config
from tunrelay.crypto import keys
from tunrelay.control.server import ControlSocketService
from tunrelay.device import DeviceError, TunDevice
from tunrelay.metrics import MetricsError, metrics_service
from tunrelay.reach import PeerReach
from tunrelay.relay import Relay
from tunrelay.responder.port import ResponderPort
from tunrelay.twisted_io.datagram import EthernetLink, open_ethernet_socket
from tunrelay.twisted_io.device_port import DevicePort
from tunrelay.twisted_io.netlink_watch import NetworkChangeWatcher
from tunrelay.twisted_io.route_mirror import RouteMirror
from tunrelay.twisted_io.stream import InboundFactory
from tunrelay.uapi.apply import apply_set
from tunrelay.uapi.protocol import ERRNO_INVALID, ERRNO_PORT_IN_USE, UapiError
from tunrelay.uapi.server import UapiSocketService
from tunrelay.uapi.state import device_state
from tunrelay.udp_sockets import SocketSetupFailed, UdpSockets
from tunrelay.unix_socket import UnixSocketError

__all__ = ["ConfigRefused", "RelayService", "StartupError"]


def _import_what_runs_unprivileged():
    """Import, while still privileged, modules first needed after twistd drops to -u/-g.

    A Python installed where the unprivileged user cannot read (a root-only prefix, a
    chroot) would otherwise fail lazily inside the reactor, e.g. HostnameEndpoint's
    IDNA codec on the first reconnect, and the failure would surface only as silence.
    """
    import encodings.idna  # noqa: F401  (HostnameEndpoint encodes every host with it)
    import twisted.internet._resolver  # noqa: F401
    import twisted.internet.tcp  # noqa: F401
    import twisted.internet.udp  # noqa: F401
    "warm".encode("idna")


class StartupError(Exception):
    """The relay cannot start; the message is the one line the operator sees."""


class ConfigRefused(Exception):
    """A new configuration cannot be applied while running; ``str()`` says why, in one line."""


class _UapiClients:
    """What DropReporter needs of a peer: bad UAPI input is counted with the relay's drops."""

    name = "UAPI client"

    def __init__(self, counters):
        self.counters = counters


class RelayService(MultiService):
    log = Logger()
    event_loop = "the caller's reactor"   # set by makeService: what tunrelay.reactor installed

    def __init__(self, config, reactor=None, secrets=configuration.Secrets()):
        MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.secrets = secrets = configuration.Secrets(*secrets)
        self.relay = Relay(config, reactor, private_key=secrets.private_key, preshared_keys=secrets.preshared_keys)
        self.device = None
        self.device_port = None
        self.route_mirror = None       # tun mode: the kernel's routes via peers (set at open)
        self.startup_failure = None    # the one line a failed start printed
        self.listening = []            # TCP IListeningPort objects
        self.ethernet_links = {}       # interface -> EthernetLink
        self.udp = UdpSockets(self.relay, reactor)
        self.responder = None
        if config.responder is not None:
            self.responder = ResponderPort(config.responder, config.interface.mode, config.interface.mtu,
                                           reactor, self.relay.datapath.from_responder, self.relay.snapshot)
            self.relay.attach_responder(self.responder)
        self.control = ControlSocketService(config.control_socket, self.relay.snapshot, self.reload, reactor,
                                            showconf=self.showconf)
        self.control.setServiceParent(self)
        self.uapi = None
        if config.uapi_socket is not None:
            self._uapi_clients = _UapiClients(self.relay.drops.counters)
            self.uapi = UapiSocketService(config.uapi_socket, self, self._report_uapi, reactor)
            self.uapi.setServiceParent(self)
        self.metrics = metrics_service(config.metrics, self.relay.snapshot, reactor) if config.metrics else None
        if self.metrics is not None:
            self.metrics.setServiceParent(self)
        self.reach = PeerReach(self.relay, self.udp, reactor, self.ethernet_links)
        self.reach.setServiceParent(self)
        self.network_changes = NetworkChangeWatcher(reactor, self.reach.retry_clock.retry_now)
        for peer in self.relay.peers.values():
            self.reach.add(peer)

    @property
    def clients(self):
        """Peer name -> {Endpoint: ClientService} of the TCP endpoints being dialled."""
        return self.reach.clients

    # ---- privileged start --------------------------------------------------------------

    def privilegedStartService(self):
        _import_what_runs_unprivileged()
        try:
            self._check_mode()
            self._bind_control()
            self._open_device()
            for address in self.config.listen:
                self._listen(address)
            self._set_fwmark(self.config.fwmark)
            for peer in self.relay.peers.values():
                for endpoint in peer.config.endpoints:
                    if endpoint.transport == "ethernet":
                        self._ethernet_link(endpoint.interface)
        except StartupError as failure:
            self._abort_start(str(failure))
        MultiService.privilegedStartService(self)

    def _check_mode(self):
        if self.config.plaintext:
            self.log.warn("plaintext mode: frames between peers are neither encrypted nor authenticated")
        else:
            self._log_public_key()

    def _log_public_key(self):
        public_key = self.relay.sessions.core.public_key
        if public_key is None:
            self.log.warn("encrypted mode: WireGuard (Noise_IKpsk2), no private key yet: nothing can handshake "
                          "until one is set (wg set {interface} private-key FILE)", interface=self.config.interface.name)
        else:
            self.log.info("encrypted mode: WireGuard (Noise_IKpsk2) with public key {public_key}",
                          public_key=keys.encode_key(public_key))

    def _bind_control(self):
        # First, so a second relay on the same config is told the socket is taken
        # rather than that the device is busy.
        try:
            self.control.listen()
            if self.metrics is not None:
                self.metrics.listen()
            if self.uapi is not None:
                self.uapi.listen()
        except (UnixSocketError, MetricsError) as failure:
            raise StartupError(str(failure)) from None

    def _open_device(self):
        interface = self.config.interface
        self.device = TunDevice(interface.name, interface.mode, interface.offload)
        try:
            self.device.open()
            self.device.configure(interface.mtu, interface.addresses, interface.routes)
        except DeviceError as failure:
            raise StartupError(str(failure)) from None
        self.device_port = DevicePort(self.device, self.relay.datapath, self.reactor, on_removed=self._device_removed)
        if interface.mode == "tun":
            self.route_mirror = RouteMirror(self.reactor, self.relay.next_hops, self.relay.drops)
        self.relay.datapath.attach_device(self.device_port)

    def _listen(self, address):
        try:
            if address.transport == "tcp":
                self.listening.append(self.reactor.listenTCP(address.port, InboundFactory(self.relay),
                                                             interface=address.host))
            elif address.transport == "udp":
                self.udp.listen(address)
            else:
                self._ethernet_link(address.interface)
                return
        except twisted_error.CannotListenError as failure:
            raise StartupError("cannot listen on %s: %s" % (address, failure.socketError)) from None
        except SocketSetupFailed as failure:
            raise StartupError(str(failure)) from None
        self.log.info("listening on {address}", address=str(address))

    def _set_fwmark(self, mark):
        try:
            self.udp.set_fwmark(mark)
        except SocketSetupFailed as failure:
            raise StartupError(str(failure)) from None

    def _ethernet_link(self, interface):
        if interface in self.ethernet_links:
            return self.ethernet_links[interface]
        try:
            sock = open_ethernet_socket(interface)
        except OSError as failure:
            raise StartupError("cannot open raw Ethernet socket on %s: %s" % (interface, failure.strerror)) from None
        link = EthernetLink(self.relay.datapath, interface, sock, self.reactor)
        self.ethernet_links[interface] = link
        self.log.info("listening on ethernet://{interface}", interface=interface)
        return link

    def _abort_start(self, message):
        self.log.critical("cannot start: {message}", message=message)
        # twistd has replaced sys.stderr with a log writer by now; the operator needs the
        # line on the real stderr (the log gets it from log.critical above).
        sys.__stderr__.write("tunrelay: cannot start: %s\n" % message)
        sys.__stderr__.flush()
        self.startup_failure = message
        self._close_everything()
        raise SystemExit(1)

    # ---- unprivileged start ------------------------------------------------------------

    def startService(self):
        MultiService.startService(self)
        self.device_port.start()
        self.udp.start()
        if self.responder is not None:
            self.responder.start()
        for link in self.ethernet_links.values():
            link.start()
        for peer in self.relay.peers.values():
            self.reach.connect_datagram(peer)
        self._install_sighup()
        self.network_changes.start()
        if self.route_mirror is not None:
            self.route_mirror.start(self.device.index)
        self.relay.endpoint_refresh = self.reach.refresh
        self.relay.start_liveness()
        self.log.info("relay up on {device} ({mode}), {count} peers; event loop: {loop}",
                      device=self.device.name, mode=self.config.interface.mode, count=len(self.relay.peers),
                      loop=self.event_loop)

    # ---- reload -------------------------------------------------------------------------

    def _install_sighup(self):
        def on_sighup(signal_number, frame):
            self.reactor.callFromThread(self.reload)

        signal.signal(signal.SIGHUP, on_sighup)

    def reload(self):
        """Re-read the config file and apply what changed; return (ok, one-line message)."""
        if self.config.source.startswith("<"):
            return self._not_reloaded("this relay has no configuration file (%s); change it over the UAPI"
                                      % self.config.source)
        try:
            new = configuration.load(self.config.source)
            secrets = configuration.load_secrets(new)
        except configuration.ConfigError as failure:
            return self._not_reloaded("; ".join(failure.problems))
        try:
            added, removed, moved, updated = self.apply(new, secrets)
        except (ConfigRefused, SocketSetupFailed) as failure:
            return self._not_reloaded(str(failure))
        message = "reloaded %s: %d added, %d removed, %d with new endpoints, %d updated" % (
            new.source, len(added), len(removed), len(moved), len(updated))
        self.log.info("{message}", message=message, added=added, removed=removed, moved=moved, updated=updated)
        return True, message

    def _not_reloaded(self, reason):
        message = "config not reloaded, the old one keeps running: " + reason
        self.log.error("{message}", message=message)
        return False, message

    def apply(self, new, secrets):
        """Make (``new``, ``secrets``) the running configuration; the one path for reload and the UAPI.

        Returns the (added, removed, moved, updated) peer names. Raises ConfigRefused, or
        SocketSetupFailed (a UDP port in use, a fwmark refused); either way nothing changed.
        """
        refusal = self._unreloadable(new, secrets)
        if refusal is not None:
            raise ConfigRefused(refusal)
        self._apply_sockets(new)
        if not new.plaintext:
            if secrets.private_key != self.secrets.private_key:
                self.relay.sessions.set_private_key(secrets.private_key)
                self._log_public_key()
            self.relay.sessions.preshared_keys = dict(secrets.preshared_keys)
        old_services = self.config.responder.services if self.config.responder is not None else ()
        old_preshared = self.secrets.preshared_keys
        added, removed, moved, updated = self.relay.reconfigure(new)
        for name, peer in self.relay.peers.items():
            # An equal PeerConfig with another key (a new psk over the UAPI, or in the same file)
            # is no change to reconfigure; the session must still take the key.
            if name not in added and old_preshared.get(name) != secrets.preshared_keys.get(name):
                self.relay.sessions.peer_changed(peer)
        if self.responder is not None and new.responder.services != old_services:
            self.responder.update_services(new.responder.services)
        for name in removed + moved:
            self.reach.remove(name)
        for name in added + moved:
            self.reach.add(self.relay.peers[name])
            self.reach.connect_datagram(self.relay.peers[name])
        self.config, self.secrets = new, secrets
        return added, removed, moved, updated

    def _apply_sockets(self, new):
        """The new UDP listen addresses and fwmark, or SocketSetupFailed with both as they were."""
        old_mark = self.udp.fwmark
        self.udp.set_fwmark(new.fwmark)
        try:
            replacements = self.udp.rebind([address for address in new.listen if address.transport == "udp"])
        except SocketSetupFailed:
            self.udp.set_fwmark(old_mark)
            raise
        self.reach.rebound(replacements)

    def _unreloadable(self, new, secrets):
        """Why ``new`` cannot be applied without a restart, or None."""
        old = self.config
        for key in ("interface", "plaintext", "control_socket", "metrics", "uapi_socket"):
            if getattr(old, key) != getattr(new, key):
                return "'%s' changed; that needs a restart" % key
        if [address for address in old.listen if address.transport != "udp"] != [
                address for address in new.listen if address.transport != "udp"]:
            return "'listen' changed its tcp or ethernet addresses; that needs a restart (udp ones change live)"
        if (old.responder is None) != (new.responder is None) or (
                old.responder is not None and replace(old.responder, services=()) != replace(new.responder, services=())):
            return "the responder's address, MAC or faults changed; that needs a restart"
        for peer in new.peers:
            for endpoint in peer.endpoints:
                if endpoint.transport == "ethernet" and endpoint.interface not in self.ethernet_links:
                    return ("peer %r needs a raw socket on %s, which only opens at start; that needs a restart"
                            % (peer.name, endpoint.interface))
        if not new.plaintext and secrets.private_key is not None:
            own = keys.encode_key(keys.public_key(secrets.private_key))
            for peer in new.peers:
                if peer.public_key == own:
                    return "peer %r has this relay's own public key" % peer.name
        return None

    # ---- the UAPI and showconf ------------------------------------------------------------

    def uapi_get(self):
        """What ``wg show`` sees: the running config and secrets, and the status snapshot."""
        return device_state(self.config, self.secrets, self.relay.snapshot(), self.udp.listen_port())

    def uapi_set(self, request):
        """Apply a UAPI ``set`` through :meth:`apply`; raise UapiError (nothing changed)."""
        new, secrets = apply_set(self.config, self.secrets, request)
        if new == self.config and secrets == self.secrets:
            return
        try:
            added, removed, moved, updated = self.apply(new, secrets)
        except SocketSetupFailed as failure:
            raise UapiError(ERRNO_PORT_IN_USE, "socket_setup_failed", str(failure)) from None
        except ConfigRefused as failure:
            raise UapiError(ERRNO_INVALID, "refused", str(failure)) from None
        self.log.info("changed over the UAPI: {added} added, {removed} removed, {moved} with new endpoints, "
                      "{updated} updated", added=len(added), removed=len(removed), moved=len(moved),
                      updated=len(updated), peers_added=added, peers_removed=removed)

    def _report_uapi(self, reason, detail):
        self.relay.drops.drop("uapi_" + reason, self._uapi_clients, detail)

    def showconf(self):
        """The running configuration as YAML (``tunrelay showconf``)."""
        return dump_config(self.config, self.secrets)

    def _device_removed(self):
        if not self.running:
            return
        self.log.warn("device {device} was removed (ip link delete?): stopping", device=self.device.name)
        if getattr(self.reactor, "running", False):
            self.reactor.stop()

    # ---- stop ---------------------------------------------------------------------------

    def stopService(self):
        stopped = MultiService.stopService(self)
        self.network_changes.stop()
        if self.route_mirror is not None:
            self.route_mirror.stop()
        if self.responder is not None:
            self.responder.stop()
        self.relay.stop()
        self._close_everything()
        return stopped

    def _close_everything(self):
        self.control.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.uapi is not None:
            self.uapi.close()
        for link in self.relay.stream_links():
            link.transport.abortConnection()
        for port in self.listening:
            port.stopListening()
        self.listening = []
        self.udp.close()
        for link in self.ethernet_links.values():
            link.stop()
        self.ethernet_links = {}
        if self.device_port is not None:
            self.device_port.stop()
            self.device_port = None
            self.relay.datapath.attach_device(None)
        if self.device is not None:
            self.device.close()
            self.device = None

