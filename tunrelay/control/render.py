"""``tunrelay status`` as text, in the spirit of ``wg show``.

Theory of operation
-------------------
:func:`render_status` turns a status document (``Relay.snapshot()`` plus
``schema_version`` and ``time``) into lines for a terminal: an ``interface:`` block, then
one ``peer:`` block per peer in configuration order, with sizes in binary units and ages
spelled out the way ``wg show`` does (``1 minute, 5 seconds ago``). The document comes
from another process, possibly another version, so every field is optional here and an
odd value is printed as it is rather than failing the whole output.
"""

__all__ = ["render_status", "format_age", "format_bytes"]

_UNITS = (("year", 365 * 24 * 3600), ("day", 24 * 3600), ("hour", 3600), ("minute", 60), ("second", 1))
_SIZES = ("KiB", "MiB", "GiB", "TiB")


def format_bytes(count):
    """``wg show``'s sizes: ``512 B``, ``1.50 KiB``, ``1.23 MiB``..."""
    if not isinstance(count, (int, float)) or isinstance(count, bool):
        return str(count)
    if count < 1024:
        return "%d B" % count
    value = float(count)
    for unit in _SIZES:
        value /= 1024
        if value < 1024 or unit == _SIZES[-1]:
            return "%.2f %s" % (value, unit)


def format_age(then, now):
    """How long ago ``then`` was: ``1 minute, 5 seconds ago``, ``now``, or ``never`` for None."""
    if then is None:
        return "never"
    try:
        seconds = int(now - then)
    except TypeError:
        return str(then)
    if seconds < 0:
        return "in the future (clock changed?)"
    if seconds == 0:
        return "now"
    parts = []
    for name, size in _UNITS:
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append("%d %s%s" % (amount, name, "" if amount == 1 else "s"))
    return ", ".join(parts) + " ago"


def _counted(count, noun):
    """``1 packet``, ``3 packets``."""
    return "%s %s%s" % (count, noun, "" if count == 1 else "s")


def _transfer(counters):
    rx_bytes, tx_bytes = counters.get("rx_bytes", 0), counters.get("tx_bytes", 0)
    rx_packets, tx_packets = counters.get("rx_packets", 0), counters.get("tx_packets", 0)
    return "%s received (%s), %s sent (%s)" % (format_bytes(rx_bytes), _counted(rx_packets, "packet"),
                                               format_bytes(tx_bytes), _counted(tx_packets, "packet"))


def _drops(drops):
    if not isinstance(drops, dict) or not drops:
        return "none"
    return ", ".join("%s=%s" % (reason, count) for reason, count in sorted(drops.items(), key=str))


def _endpoint_choice(peer):
    """For a peer with an endpoint list: which one is in use, and why."""
    if not peer.get("endpoint_in_use"):
        return []
    return ["  endpoint in use: %s (%s; list: %s)" % (peer["endpoint_in_use"], peer.get("endpoint_reason") or "?",
                                                      _listing(peer.get("endpoints") or []))]


def _listing(values):
    if isinstance(values, (list, tuple)):
        return ", ".join(str(value) for value in values) if values else "(none)"
    return str(values)


def render_status(document, now):
    """The status document as ``wg show``-like text (a str ending in a newline)."""
    interface = document.get("interface") or {}
    lines = ["interface: %s" % interface.get("name", "?"),
             "  mode: %s, mtu %s" % (interface.get("mode", "?"), interface.get("mtu", "?")),
             "  addresses: %s" % _listing(interface.get("addresses", [])),
             "  listening: %s" % _listing(document.get("listen", []))]
    if document.get("plaintext"):
        lines.append("  encryption: none (plaintext mode)")
    device = document.get("device")
    if isinstance(device, dict):
        lines.append("  device transfer: %s" % _transfer(device))
    lines.append("  drops without a peer: %s" % _drops(document.get("drops")))
    for route in document.get("routes_via_peers") or []:
        if isinstance(route, dict):
            lines.append("  kernel route: %s via %s -> %s" % (route.get("network"), route.get("gateway"),
                                                             route.get("peer") or "(not followed)"))
    ignored = {reason: count for reason, count in (document.get("routes_not_followed") or {}).items() if count}
    if ignored:
        lines.append("  kernel routes not followed: %s" % _drops(ignored))
    for peer in document.get("peers") or []:
        if not isinstance(peer, dict):
            continue
        lines += ["", "peer: %s" % peer.get("name", "?"),
                  "  endpoint: %s" % (peer.get("endpoint") or "(none)"),
                  *_endpoint_choice(peer),
                  "  transport: %s" % (peer.get("transport") or "(none)"),
                  "  session: %s" % (peer.get("session") or "(none)"),
                  "  latest handshake: %s" % format_age(peer.get("latest_handshake"), now)]
        if "handshakes" in peer or "rekeys" in peer:   # encrypted mode only
            lines.append("  handshakes: %s (%s)" % (peer.get("handshakes", "?"),
                                                    _counted(peer.get("rekeys", "?"), "rekey")))
        lines += ["  latest receive: %s" % format_age(peer.get("last_received"), now),
                  "  paths: %s" % peer.get("paths", 0),
                  "  allowed ips: %s" % _listing(peer.get("allowed_ips", []))]
        if peer.get("keepalive"):
            lines.append("  persistent keepalive: every %s seconds" % _number(peer["keepalive"]))
        lines += ["  transfer: %s" % _transfer(peer),
                  "  drops: %s" % _drops(peer.get("drops"))]
    return "\n".join(lines) + "\n"


def _number(value):
    return "%g" % value if isinstance(value, float) else str(value)
