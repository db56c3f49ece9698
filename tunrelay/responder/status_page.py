"""The ``http`` service's status page: the status document as HTML that refreshes itself.

``render_page(document)`` takes the very document ``tunrelay status --json`` prints (the
relay's snapshot with ``schema_version`` and ``time``; ``tunrelay/control/schema.md``) and
lays it out in four parts: the interface (with the device's transfer), the peers (endpoint,
transport, session, latest handshake and receive as ages, transfer, drops), the drops by
reason (the relay's own, then each peer's), and the responder's own counters (addresses,
connections, frames, drops, TCP, faults). The page asks the browser to reload it every
``REFRESH_SECONDS``; ``/status.json`` serves the same document as JSON.

Every figure is rendered for people (``1.21 MiB``, ``1 minute, 5 seconds ago``) and carries
its exact value in ``data-value`` (JSON) and its place in the document in ``data-key`` (a
JSON Pointer, RFC 6901, without the leading slash: ``peers/0/rx_bytes``), so that a test,
or a script, can check the page against the JSON without parsing prose. All text is HTML-escaped: peer names and
drop reasons come from configuration and from the wire.
"""

import html
import json
import time

from tunrelay.control.render import format_age, format_bytes

__all__ = ["render_page", "REFRESH_SECONDS"]

REFRESH_SECONDS = 5

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:70em;color:#222;padding:0 1em}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .4em}
p.meta{color:#555;margin:0}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f4f4f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv{width:auto;min-width:28em}
.none{color:#888}
"""


def _escape(value):
    return html.escape(str(value), quote=True)


def _key(*parts):
    """A JSON Pointer (RFC 6901 §3) to a value, without its leading "/"."""
    return "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _figure(key, value, text=None, tag="span", numeric=False):
    """One figure: ``text`` for people, the exact ``value`` and its ``key`` for machines."""
    if text is None:
        text = "never" if value is None else value
    attributes = ' data-key="%s" data-value="%s"' % (_escape(key), _escape(json.dumps(value)))
    if numeric:
        attributes += ' class="n"'
    return "<%s%s>%s</%s>" % (tag, attributes, _escape(text), tag)


def _cell(key, value, text=None, numeric=False):
    return _figure(key, value, text, tag="td", numeric=numeric)


def _table(headings, rows, empty):
    """A table; without ``headings`` a narrow one of names and values."""
    if not rows:
        return '<p class="none">%s</p>' % _escape(empty)
    if headings:
        head = "<tr>%s</tr>" % "".join("<th>%s</th>" % _escape(heading) for heading in headings)
        return "<table>%s%s</table>" % (head, "".join("<tr>%s</tr>" % row for row in rows))
    return '<table class="kv">%s</table>' % "".join("<tr>%s</tr>" % row for row in rows)


def _counter_rows(prefix, counters):
    return ["<th>%s</th>%s" % (_escape(name), _cell(
        _key(*prefix, name), value, format_bytes(value) if str(name).endswith("_bytes") else value,
        numeric=True)) for name, value in counters]


def _transfer(prefix, counters, side):
    """A cell such as ``1.21 MiB in 880 packets``, both figures keyed."""
    count = counters.get(side + "_bytes", 0)
    packets = counters.get(side + "_packets", 0)
    return '<td class="n">%s in %s packet%s</td>' % (
        _figure(_key(*prefix, side + "_bytes"), count, format_bytes(count)),
        _figure(_key(*prefix, side + "_packets"), packets), "" if packets == 1 else "s")


def _interface(document):
    interface = document.get("interface") or {}
    addresses, listen = interface.get("addresses", []), document.get("listen", [])
    rows = ["<th>name</th>" + _cell("interface/name", interface.get("name")),
            "<th>mode</th>" + _cell("interface/mode", interface.get("mode")),
            "<th>MTU</th>" + _cell("interface/mtu", interface.get("mtu")),
            "<th>addresses</th>" + _cell("interface/addresses", addresses, ", ".join(addresses) or "none"),
            "<th>listening</th>" + _cell("listen", listen, ", ".join(listen) or "none"),
            "<th>encryption</th>" + _cell("plaintext", document.get("plaintext"),
                                          "none (plaintext)" if document.get("plaintext") else "WireGuard")]
    device = document.get("device")
    if isinstance(device, dict):
        rows += ["<th>device %s</th>%s" % (direction, _transfer(("device",), device, side))
                 for direction, side in (("received", "rx"), ("sent", "tx"))]
    return "<h2>Interface</h2>" + _table(None, rows, "")


def _peers(document, now):
    rows = []
    for index, peer in enumerate(document.get("peers") or []):
        key = "peers/%d/" % index
        prefix = ("peers", index)
        rows.append("".join([
            _cell(key + "name", peer.get("name")),
            _cell(key + "endpoint", peer.get("endpoint"), peer.get("endpoint") or "none"),
            _cell(key + "transport", peer.get("transport"), peer.get("transport") or "none"),
            _cell(key + "session", peer.get("session")),
            _cell(key + "latest_handshake", peer.get("latest_handshake"),
                  format_age(peer.get("latest_handshake"), now)),
            _cell(key + "last_received", peer.get("last_received"), format_age(peer.get("last_received"), now)),
            _transfer(prefix, peer, "rx"), _transfer(prefix, peer, "tx")]))
    return "<h2>Peers</h2>" + _table(
        ["peer", "endpoint", "transport", "session", "latest handshake", "latest receive",
         "received", "sent"], rows, "No peers configured.")


def _drop_rows(where, prefix, drops):
    return ["<td>%s</td><td>%s</td>%s" % (_escape(where), _escape(reason),
                                          _cell(_key(*prefix, reason), count, numeric=True))
            for reason, count in sorted((drops or {}).items())]


def _drops(document):
    rows = _drop_rows("relay", ("drops",), document.get("drops"))
    for index, peer in enumerate(document.get("peers") or []):
        rows += _drop_rows("peer " + str(peer.get("name")), ("peers", index, "drops"), peer.get("drops"))
    return "<h2>Drops by reason</h2>" + _table(["where", "reason", "count"], rows, "Nothing dropped.")


def _responder(document):
    responder = document.get("responder")
    if not isinstance(responder, dict):
        return "<h2>Responder</h2><p class=\"none\">Not configured.</p>"
    plain = [(name, value) for name, value in sorted(responder.items())
             if isinstance(value, (int, float)) and not isinstance(value, bool)]
    rows = ["<th>addresses</th>" + _cell("responder/addresses", responder.get("addresses", []),
                                         ", ".join(responder.get("addresses", [])))]
    parts = ["<h2>Responder</h2>", _table(None, rows + _counter_rows(("responder",), plain), "")]
    for section, title in (("tcp", "TCP"), ("drops", "drops"), ("faults", "fault injector")):
        counters = responder.get(section)
        if isinstance(counters, dict):
            parts.append("<h2>Responder %s</h2>" % title)
            parts.append(_table(None, _counter_rows(("responder", section), sorted(counters.items())),
                                "None."))
    return "".join(parts)


def render_page(document):
    """The HTML page (bytes) for a status document."""
    now = document.get("time")
    name = (document.get("interface") or {}).get("name", "?")
    taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)) if isinstance(now, (int, float)) else "?"
    body = "".join([
        "<h1>tunrelay %s</h1>" % _escape(name),
        '<p class="meta">snapshot at %s; this page reloads every %d s; the same as JSON at '
        '<a href="/status.json">/status.json</a></p>' % (_figure("time", now, taken), REFRESH_SECONDS),
        _interface(document), _peers(document, now), _drops(document), _responder(document)])
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta http-equiv="refresh" content="%d"><title>tunrelay %s</title><style>%s</style></head>'
            "<body>%s</body></html>" % (REFRESH_SECONDS, _escape(name), _STYLE, body)).encode("utf-8")
