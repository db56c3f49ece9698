"""The blocking client: one request, one reply, and one clear line for every failure."""

import json
import os
import socket
import tempfile

import pytest

from tunrelay.control import client
from tunrelay.control.client import ControlClientError

from .fakeserver import CannedServer


def test_sends_one_json_line_and_returns_the_reply():
    with CannedServer(b'{"ok": true, "message": "reloaded"}\n') as server:
        reply = client.request(server.path, "reload")
    assert reply == {"ok": True, "message": "reloaded"}
    assert [json.loads(line) for line in server.requests] == [{"command": "reload"}]


def test_reply_split_over_many_segments():
    document = {"ok": True, "result": {"peers": [{"name": "p%d" % n} for n in range(5000)]}}
    with CannedServer(json.dumps(document).encode() + b"\n") as server:
        assert client.request(server.path, "status") == document


def test_missing_socket_says_is_the_relay_running():
    with pytest.raises(ControlClientError) as raised:
        client.request("/nonexistent/tunrelay/tr0.sock", "status")
    assert str(raised.value) == ("control socket /nonexistent/tunrelay/tr0.sock does not exist: "
                                 "is the relay running?")


def test_stale_socket_is_refused():
    directory = tempfile.mkdtemp(prefix="trc", dir="/tmp")
    path = os.path.join(directory, "tr0.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    with pytest.raises(ControlClientError, match="refused the connection: is the relay running"):
        client.request(path, "status")
    os.unlink(path)
    os.rmdir(directory)


def test_a_path_that_is_not_a_socket_says_so(tmp_path):
    with pytest.raises(ControlClientError, match="is not a socket: check -s or control_socket"):
        client.request(str(tmp_path), "status")


@pytest.mark.parametrize("reply, message", [
    (None, "closed the connection without a reply"),
    (b"not json\n", "malformed reply"),
    (b"[1, 2]\n", 'reply without "ok"'),
    (b'{"ok": "yes"}\n', 'reply without "ok"'),
])
def test_bad_replies_are_one_line_errors(reply, message):
    with CannedServer(reply) as server:
        with pytest.raises(ControlClientError, match=message) as raised:
            client.request(server.path, "status")
    assert "\n" not in str(raised.value)
