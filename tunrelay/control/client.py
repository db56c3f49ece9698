"""A blocking control-socket client for the CLI: one request, one reply, plain ``socket``.

Theory of operation
-------------------
The CLI runs outside the relay's reactor and asks one question per run, so a blocking
socket with a timeout is all it needs. Every way this can fail (no socket file, nobody
listening, no permission, no or garbled reply) becomes a :class:`ControlClientError`
whose ``str()`` is the one line the CLI prints; the reply itself is returned as the
decoded dict (``{"ok": ..., ...}``, see ``protocol.py``).
"""

import json
import os
import socket
import stat

from tunrelay.control import protocol

__all__ = ["ControlClientError", "request", "DEFAULT_TIMEOUT", "MAX_REPLY"]

DEFAULT_TIMEOUT = 10.0          # a reload may take a few seconds; status answers at once
MAX_REPLY = 16 * 1024 * 1024    # a status reply for thousands of peers, with a bound on a runaway server


class ControlClientError(Exception):
    """The request could not be made or answered; ``str()`` is one line for the operator."""


def request(path, command, timeout=DEFAULT_TIMEOUT):
    """Send ``{"command": command}`` to the control socket at ``path``; return the reply dict."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        try:
            connection.connect(path)
        except FileNotFoundError:
            raise ControlClientError("control socket %s does not exist: is the relay running?" % path) from None
        except ConnectionRefusedError:
            if not _is_socket(path):
                raise ControlClientError("%s is not a socket: check -s or control_socket" % path) from None
            raise ControlClientError("control socket %s refused the connection: is the relay running?"
                                     % path) from None
        except PermissionError:
            raise ControlClientError("permission denied on control socket %s (it is 0600: run as its owner, "
                                     "usually root)" % path) from None
        except socket.timeout:
            raise ControlClientError("control socket %s did not accept within %gs: is the relay stuck?"
                                     % (path, timeout)) from None
        except OSError as failure:
            raise ControlClientError("cannot connect to control socket %s: %s"
                                     % (path, failure.strerror or failure)) from None
        try:
            connection.sendall(protocol.encode_message({"command": command}))
            line = _read_line(connection, path)
        except socket.timeout:
            raise ControlClientError("no reply from control socket %s within %gs" % (path, timeout)) from None
        except OSError as failure:
            raise ControlClientError("control socket %s: %s" % (path, failure.strerror or failure)) from None
    finally:
        connection.close()
    return _decode_reply(line, path)


def _is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return True   # vanished meanwhile: the refusal message is the right one


def _read_line(connection, path):
    received = bytearray()
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            raise ControlClientError("control socket %s closed the connection without a reply" % path)
        newline = chunk.find(b"\n")
        if newline >= 0:
            received += chunk[:newline]
            return bytes(received)
        received += chunk
        if len(received) > MAX_REPLY:
            raise ControlClientError("reply from control socket %s is larger than %d bytes" % (path, MAX_REPLY))


def _decode_reply(line, path):
    try:
        reply = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ControlClientError("control socket %s sent a malformed reply" % path) from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlClientError("control socket %s sent a reply without \"ok\"" % path)
    return reply
