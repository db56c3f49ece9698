"""The control protocol as pure functions: bytes in, requests out; results in, bytes out.

Theory of operation
-------------------
A client opens the control socket and writes requests, one JSON object per line
(``{"command": "status"}``); the relay answers each with one JSON object per line, in
order. Nothing here touches a socket or a reactor, so every malformed input can be tested
by feeding bytes.

Input is untrusted even on a 0600 socket (a buggy script is enough), so the reader bounds
what it buffers: a line longer than :data:`MAX_LINE` is answered with a ``line_too_long``
error and the rest of that line is discarded as it arrives, never stored. Every problem
becomes a :class:`RequestError` *value* with a short reason name that the server counts
and answers with; nothing raises out of :meth:`RequestReader.next_item`.

Replies (see ``schema.md`` in this package for the full, versioned schema)::

    {"ok": true, "result": {...status document...}}          status
    {"ok": true, "message": "..."}                           reload succeeded
    {"ok": true, "result": {"yaml": "..."}}                  showconf
    {"ok": false, "error": "REASON", "message": "..."}       anything else

Unknown keys in a request are ignored so that later clients can add optional fields.
"""

import json
import math

__all__ = [
    "COMMANDS", "MAX_LINE", "SCHEMA_VERSION", "Request", "RequestError", "RequestReader",
    "decode_request", "encode_message", "error_reply", "reload_reply", "showconf_reply", "status_document",
    "status_reply",
]

MAX_LINE = 64 * 1024      # a request is a few dozen bytes; anything near this is abuse or a bug
SCHEMA_VERSION = 1        # bump on any incompatible change to the status document
COMMANDS = ("status", "reload", "showconf")


class Request:
    __slots__ = ("command",)

    def __init__(self, command):
        self.command = command

    def __eq__(self, other):
        return isinstance(other, Request) and other.command == self.command

    def __repr__(self):
        return "Request(%r)" % self.command


class RequestError(Exception):
    """A request that cannot be served; ``reason`` is a short counter name.

    ``fatal`` errors mean the stream itself cannot be trusted any more (the server closes
    the connection after replying); the others only spoil one line.
    """

    def __init__(self, reason, message, fatal=False):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.fatal = fatal

    def reply(self):
        return error_reply(self.reason, self.message)


def decode_request(line):
    """One request line (bytes, without the newline) -> Request; raise RequestError."""
    if len(line) > MAX_LINE:
        raise RequestError("line_too_long", "request longer than %d bytes" % MAX_LINE, fatal=True)
    try:
        text = bytes(line).decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("bad_utf8", "request is not UTF-8") from None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise RequestError("bad_json", "request is not JSON: %s" % error) from None
    except RecursionError:  # "[[[[..." within MAX_LINE can exceed the parser's depth
        raise RequestError("bad_json", "request is nested too deeply") from None
    if not isinstance(value, dict):
        raise RequestError("not_object", "request must be a JSON object like {\"command\": \"status\"}")
    command = value.get("command")
    if not isinstance(command, str):
        raise RequestError("no_command", "request has no \"command\" string")
    if command not in COMMANDS:
        raise RequestError("unknown_command", "unknown command %s (known: %s)"
                           % (json.dumps(command[:64]), ", ".join(COMMANDS)))
    return Request(command)


class RequestReader:
    """Splits a byte stream into requests, holding at most one bounded line."""

    def __init__(self, max_line=MAX_LINE):
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = False   # inside an oversized line: drop bytes until its newline

    def feed(self, data):
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                return
            data = data[newline + 1:]
            self._discarding = False
        self._buffer += data

    def next_item(self):
        """The next Request or RequestError, or None when a complete line has not arrived."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self.max_line:
                    # Answer as soon as the bound is crossed rather than when (if ever) the
                    # newline comes, and stop storing the line.
                    del self._buffer[:]
                    self._discarding = True
                    return RequestError("line_too_long", "request longer than %d bytes" % self.max_line,
                                        fatal=True)
                return None
            line = bytes(self._buffer[:newline])
            del self._buffer[:newline + 1]
            # The limit counts every byte before the newline, a CR included, as the check
            # above counts a line still arriving: the answer must not depend on where the
            # stream happened to be cut.
            if len(line) > self.max_line:
                return RequestError("line_too_long", "request longer than %d bytes" % self.max_line, fatal=True)
            line = line.rstrip(b"\r")
            if not line.strip():
                continue  # blank lines (a human with socat pressing return) are not errors
            try:
                return decode_request(line)
            except RequestError as error:
                return error


# ---- replies ------------------------------------------------------------------------------

def _json_safe(value):
    """Replace what JSON cannot carry (NaN, infinities, odd types) instead of failing the reply."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def encode_message(message):
    """A reply or request dict -> one line of compact JSON, newline included."""
    return json.dumps(_json_safe(message), separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"


def error_reply(reason, message):
    return {"ok": False, "error": reason, "message": message}


def status_document(snapshot, now):
    """The ``status`` result: ``Relay.snapshot()`` plus ``schema_version`` and the relay's ``time``.

    ``time`` lets the client compute handshake ages with the relay's clock, not its own.
    """
    if not isinstance(snapshot, dict):
        raise TypeError("snapshot must be a dict, not %s" % type(snapshot).__name__)
    document = dict(snapshot)
    document["schema_version"] = SCHEMA_VERSION
    document["time"] = now
    return document


def status_reply(snapshot, now):
    return {"ok": True, "result": status_document(snapshot, now)}


def showconf_reply(text):
    """The running configuration, as YAML that ``tunrelay check`` reads (see ``tunrelay.config_dump``)."""
    return {"ok": True, "result": {"yaml": str(text)}}


def reload_reply(result):
    """The reload callable's result, ``(ok, message)``, as a reply; any other shape is an error."""
    if (isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[0], bool)):
        ok, message = result
        message = str(message)
        return {"ok": True, "message": message} if ok else error_reply("reload_failed", message)
    return error_reply("internal_error", "reload returned %s, not (ok, message)" % type(result).__name__)
