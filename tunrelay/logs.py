"""Logging: JSON-lines output for twistd, and one-line peer state-change events.

Theory of operation
-------------------
Every tunrelay log call is a ``twisted.logger`` event with named fields (``peer``,
``reason``, ``path``...); the text the default observer prints is just one rendering of
them. :func:`json_observer` is another, for log shippers: one JSON object per line, the
named fields kept as keys. Use it with twistd's ``--logger``, which takes the
fully-qualified name of a factory called with no arguments::

    twistd -n --pidfile= --logger tunrelay.logs.json_observer tunrelay -c FILE

It writes to the file named by the environment variable ``TUNRELAY_JSON_LOG`` (appended,
created 0640) or, without it, to standard output as it was when twistd set up logging
(under systemd that is the journal). twistd's ``--logfile`` does not apply to it; when
daemonizing (no ``-n``) standard output is /dev/null, so set ``TUNRELAY_JSON_LOG``.

Each line has ``time`` (Unix seconds), ``level``, ``namespace``, ``message`` (the
formatted text), ``event`` when the event is a state change (below), every named field
whose value JSON can carry, and ``traceback`` for failures. Key material must never reach
a log: fields whose name mentions a private, preshared or secret key, a password or a
token are written as ``"<redacted>"``, and bytes values (payloads, keys) as their length.

State changes go through :func:`log_state_change` so that their event names and fields
are stable for alerting; see :data:`STATE_EVENTS`.
"""

import json
import math
import os
import re
import sys

from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from zope.interface import implementer

__all__ = ["JSONLinesObserver", "STATE_EVENTS", "event_as_json", "json_observer", "log_state_change"]

JSON_LOG_ENV = "TUNRELAY_JSON_LOG"

# Documented state-change events: name -> message format. Fields beyond ``peer`` are the
# ones named in the format; callers may add more.
STATE_EVENTS = {
    "peer_up": "peer {peer} up via {path}",
    "peer_down": "peer {peer} down: {reason}",
    "handshake": "peer {peer} handshake completed",
    "rekey": "peer {peer} rekeyed",
    "reconnect": "peer {peer} reconnecting to {endpoint} in {delay:.1f}s",
    "roaming": "peer {peer} moved from {old_path} to {new_path}",
    "endpoint": "peer {peer} now uses endpoint {endpoint}: {reason}",
}

_SECRET_FIELD = re.compile(r"private|preshared|secret|password|passphrase|token|psk|(^|_)key($|_)",
                           re.IGNORECASE)
_PUBLIC_FIELDS = {"public_key"}   # identifies a peer; not secret
_LEVEL_NAMES = {LogLevel.debug: "debug", LogLevel.info: "info", LogLevel.warn: "warn",
                LogLevel.error: "error", LogLevel.critical: "critical"}

_state_log = Logger(namespace="tunrelay.state")


def log_state_change(event, peer, log=None, **fields):
    """Emit one info-level line for a peer state change; ``event`` is a key of STATE_EVENTS.

    An unknown event name is still logged (with a generic format) rather than raising:
    a logging call must never break the code path that makes it.
    """
    text = STATE_EVENTS.get(event, "peer {peer}: {event}")
    (log or _state_log).info(text, event=event, peer=peer, **fields)


def _json_value(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "<%d bytes>" % len(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    return str(value)


def _is_secret(name):
    return name not in _PUBLIC_FIELDS and bool(_SECRET_FIELD.search(name))


def event_as_json(event):
    """One twisted.logger event -> one line of JSON (no newline); never raises."""
    level = event.get("log_level")
    record = {
        "time": event.get("log_time"),
        "level": _LEVEL_NAMES.get(level, getattr(level, "name", None) or "info"),
        "namespace": event.get("log_namespace"),
        "message": _message(event),
    }
    for name, value in event.items():
        if name.startswith("log_") or name in record or not isinstance(name, str):
            continue
        record[name] = "<redacted>" if _is_secret(name) else _json_value(value)
    failure = event.get("log_failure")
    if failure is not None:
        try:
            record["traceback"] = failure.getTraceback()
        except Exception:
            record["traceback"] = repr(failure)
    try:
        return json.dumps(record, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return json.dumps({"time": record["time"], "level": record["level"], "message": record["message"]},
                          default=str)


def _message(event):
    if any(_is_secret(name) and "{%s" % name in (event.get("log_format") or "")
           for name in event if isinstance(name, str)):
        return (event.get("log_format") or "").replace("\n", " ")   # the unformatted template is safe
    try:
        return formatEvent(event)
    except Exception:
        return str(event.get("log_format"))


@implementer(ILogObserver)
class JSONLinesObserver:
    """Writes each event as one JSON line to ``stream`` and flushes (a crash loses nothing)."""

    def __init__(self, stream):
        self.stream = stream

    def __call__(self, event):
        try:
            self.stream.write(event_as_json(event) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a full disk or closed stream must not recurse into the log system


def json_observer():
    """twistd ``--logger tunrelay.logs.json_observer``: JSON lines to $TUNRELAY_JSON_LOG or stdout."""
    path = os.environ.get(JSON_LOG_ENV)
    if path:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return JSONLinesObserver(os.fdopen(descriptor, "a", encoding="utf-8", buffering=1))
    # twistd redirects sys.stdout into the log once logging begins; holding the stream
    # object from before that avoids feeding our own output back to ourselves.
    return JSONLinesObserver(sys.stdout)
