"""Prometheus metrics: the relay's snapshot in the text exposition format, over twisted.web.

Theory of operation
-------------------
Nothing is counted here: every scrape calls ``snapshot()`` (``Relay.snapshot()``) and
renders it with :func:`render_prometheus`, so the numbers are exactly the ones ``tunrelay
status`` shows and there is no second set of counters to keep in step. The output follows
text format 0.0.4: one ``# HELP`` and ``# TYPE`` per family, counters end in ``_total``,
label values escape ``\\``, ``"`` and newlines.

Families (``peer`` is the configured peer name)::

    tunrelay_info{interface,mode}                            gauge, always 1
    tunrelay_device_{rx,tx}_{bytes,packets}_total            counter, the tun/tap device
    tunrelay_device_tx_writes_total                          counter, writes to the device (a coalesced run is one)
    tunrelay_drops_total{reason}                             counter, drops with no known peer
    tunrelay_peer_{rx,tx}_{bytes,packets}_total{peer}        counter
    tunrelay_peer_drops_total{peer,reason}                   counter
    tunrelay_peer_paths{peer}                                gauge, live transport paths
    tunrelay_peer_handshakes_total{peer}                     counter, completed handshakes (encrypted)
    tunrelay_peer_rekeys_total{peer}                         counter, handshakes that replaced a session
    tunrelay_peer_latest_handshake_seconds{peer}             gauge, age of the latest handshake
    tunrelay_peer_last_received_seconds{peer}                gauge, age of the last frame received

An age is *omitted* (no sample for that peer) while there has never been a handshake or a
frame: an absent series is what PromQL's ``absent()`` and alerting expect, where NaN would
poison ``max()`` and friends, and a fake 0 would read as "just now".

:func:`metrics_service` binds only the address it is given (an IP literal and port, e.g.
``127.0.0.1:9109`` or ``[::1]:9109``: no hostnames, no wildcard by default), in
``privilegedStartService`` like every other socket of the relay.
"""

import ipaddress
import math

from twisted.application.service import Service
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.logger import Logger
from twisted.internet import error as twisted_error
from twisted.web import pages
from twisted.web.resource import Resource
from twisted.web.server import Site

__all__ = ["CONTENT_TYPE", "MetricsError", "MetricsResource", "MetricsService", "metrics_service",
           "parse_address", "render_prometheus"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_DIRECTIONS = (("rx", "received from"), ("tx", "sent to"))


class MetricsError(Exception):
    """The metrics endpoint cannot be set up; ``str()`` is one line for the operator."""


# ---- exposition format ---------------------------------------------------------------------

def _escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class _Exposition:
    """Collects families in order; each family's HELP/TYPE header is written once."""

    def __init__(self):
        self._families = {}          # name -> (help, type, [sample lines]); dicts keep order

    def family(self, name, kind, help_text):
        self._families.setdefault(name, (help_text, kind, []))

    def sample(self, name, labels, value):
        if not isinstance(value, (int, float)):
            return  # a field missing or odd in the snapshot: no sample beats a bogus one
        label_text = ",".join('%s="%s"' % (key, _escape_label(item)) for key, item in labels)
        self._families[name][2].append("%s%s %s" % (name, "{%s}" % label_text if label_text else "",
                                                   _format_value(value)))

    def text(self):
        lines = []
        for name, (help_text, kind, samples) in self._families.items():
            lines.append("# HELP %s %s" % (name, help_text.replace("\\", "\\\\").replace("\n", "\\n")))
            lines.append("# TYPE %s %s" % (name, kind))
            lines.extend(samples)
        return "\n".join(lines) + "\n"


def _traffic(out, prefix, what, labels, counters):
    for direction, verb in _DIRECTIONS:
        for unit in ("bytes", "packets"):
            name = "%s_%s_%s_total" % (prefix, direction, unit)
            out.family(name, "counter", "%s %s %s." % (unit.capitalize(), verb, what))
            out.sample(name, labels, counters.get("%s_%s" % (direction, unit)))


def _age(out, name, help_text, labels, then, now):
    out.family(name, "gauge", help_text)
    if isinstance(then, (int, float)) and not isinstance(then, bool):
        out.sample(name, labels, max(0.0, float(now) - then))


def render_prometheus(snapshot, now):
    """``Relay.snapshot()`` as Prometheus text (format 0.0.4); ``now`` is the snapshot's clock."""
    out = _Exposition()
    interface = snapshot.get("interface") or {}
    out.family("tunrelay_info", "gauge", "Always 1; labels name the interface and its mode.")
    out.sample("tunrelay_info", (("interface", interface.get("name", "")), ("mode", interface.get("mode", ""))), 1)
    device = snapshot.get("device") or {}
    _traffic(out, "tunrelay_device", "the tun/tap device", (), device)
    out.family("tunrelay_device_tx_writes_total", "counter", "Writes to the device (a coalesced run is one).")
    out.sample("tunrelay_device_tx_writes_total", (), device.get("tx_writes"))
    out.family("tunrelay_drops_total", "counter", "Frames dropped before a peer was known, by reason.")
    for reason, count in sorted((snapshot.get("drops") or {}).items()):
        out.sample("tunrelay_drops_total", (("reason", reason),), count)
    peers = [peer for peer in snapshot.get("peers") or [] if isinstance(peer, dict)]
    for peer in peers:
        labels = (("peer", peer.get("name", "")),)
        _traffic(out, "tunrelay_peer", "the peer", labels, peer)
    out.family("tunrelay_peer_drops_total", "counter", "Frames from or to a peer dropped, by reason.")
    for peer in peers:
        for reason, count in sorted((peer.get("drops") or {}).items()):
            out.sample("tunrelay_peer_drops_total", (("peer", peer.get("name", "")), ("reason", reason)), count)
    out.family("tunrelay_peer_handshakes_total", "counter", "Completed WireGuard handshakes with the peer.")
    out.family("tunrelay_peer_rekeys_total", "counter",
               "Completed WireGuard handshakes with the peer that replaced a current session (rekeys).")
    for peer in peers:
        labels = (("peer", peer.get("name", "")),)
        out.sample("tunrelay_peer_handshakes_total", labels, peer.get("handshakes"))
        out.sample("tunrelay_peer_rekeys_total", labels, peer.get("rekeys"))
    out.family("tunrelay_peer_paths", "gauge", "Live transport paths to the peer.")
    for peer in peers:
        labels = (("peer", peer.get("name", "")),)
        out.sample("tunrelay_peer_paths", labels, peer.get("paths"))
        _age(out, "tunrelay_peer_latest_handshake_seconds",
             "Seconds since the latest handshake with the peer; absent if there has been none.",
             labels, peer.get("latest_handshake"), now)
        _age(out, "tunrelay_peer_last_received_seconds",
             "Seconds since anything was last received from the peer; absent if nothing has been.",
             labels, peer.get("last_received"), now)
    return out.text()


# ---- twisted.web ----------------------------------------------------------------------------

class MetricsResource(Resource):
    """``GET /metrics``: a fresh rendering of ``snapshot()`` on every scrape."""

    isLeaf = True
    log = Logger(namespace="tunrelay.metrics")

    def __init__(self, snapshot, clock):
        Resource.__init__(self)
        self.snapshot = snapshot
        self.clock = clock

    def render_GET(self, request):
        try:
            body = render_prometheus(self.snapshot(), self.clock.seconds()).encode("utf-8")
        except Exception:  # a scrape must never take the relay down
            self.log.failure("cannot render metrics")
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"cannot render metrics; see the relay's log\n"
        request.setHeader(b"content-type", CONTENT_TYPE)
        return body


class _Root(Resource):
    """``/`` names the one real page; anything else is a plain 404."""

    def getChild(self, name, request):
        return self if name == b"" else pages.notFound()

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"tunrelay: metrics are at /metrics\n"


def metrics_site(snapshot, clock):
    root = _Root()
    root.putChild(b"metrics", MetricsResource(snapshot, clock))
    site = Site(root)
    site.noisy = False    # Prometheus scrapes every few seconds; twisted.web would log each one
    site.log = lambda request: None
    return site


def parse_address(text):
    """``"127.0.0.1:9109"`` or ``"[::1]:9109"`` -> (host, port); ValueError with a clear message.

    Suitable for ``config.py``'s ``reader.parsed`` when the ``metrics`` key is validated.
    """
    if not isinstance(text, str):
        raise ValueError("must be a string like 127.0.0.1:9109")
    host, separator, port_text = text.rpartition(":")
    if not separator or not host:
        raise ValueError("%r must be IP:PORT, like 127.0.0.1:9109 or [::1]:9109" % text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("%r: write an IPv6 address in brackets, like [::1]:9109" % text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("%r: %r is not an IP address (metrics binds only an explicit address)"
                         % (text, host)) from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("%r: port must be 1-65535" % text)
    return str(address), int(port_text)


class MetricsService(Service):
    """Listens on one TCP address in ``privilegedStartService``; stops listening on stop."""

    log = Logger(namespace="tunrelay.metrics")

    def __init__(self, host, port, snapshot, reactor):
        self.host = host
        self.port = port
        self.reactor = reactor
        self.site = metrics_site(snapshot, reactor)
        self.listening = None

    def privilegedStartService(self):
        self.listen()
        Service.privilegedStartService(self)

    def listen(self):
        if self.listening is not None:
            return
        endpoint_type = TCP6ServerEndpoint if ":" in self.host else TCP4ServerEndpoint
        outcome = []
        endpoint_type(self.reactor, self.port, interface=self.host).listen(self.site).addBoth(outcome.append)
        # Reactor endpoints listen synchronously; the Deferred has fired by now.
        result = outcome[0] if outcome else None
        if result is None or not hasattr(result, "stopListening"):
            raise MetricsError("cannot serve metrics on %s: %s" % (self.describe(), _listen_error(result)))
        self.listening = result
        self.log.info("metrics on http://{address}/metrics", address=self.describe())

    def describe(self):
        return "[%s]:%d" % (self.host, self.port) if ":" in self.host else "%s:%d" % (self.host, self.port)

    def startService(self):
        self.listen()
        Service.startService(self)

    def stopService(self):
        Service.stopService(self)
        return self.close()

    def close(self):
        """Stop listening; idempotent (for a start-up that fails after ``listen``)."""
        listening, self.listening = self.listening, None
        if listening is not None:
            return listening.stopListening()
        return None


def _listen_error(result):
    if result is None:
        return "the endpoint did not answer"
    if result.check(twisted_error.CannotListenError):
        socket_error = result.value.socketError
        return getattr(socket_error, "strerror", None) or str(socket_error)
    return result.getErrorMessage()


def metrics_service(address, snapshot, reactor=None):
    """A Service serving ``snapshot()`` at ``http://ADDRESS/metrics``; ValueError for a bad address."""
    if reactor is None:
        from twisted.internet import reactor
    host, port = parse_address(address)
    return MetricsService(host, port, snapshot, reactor)
