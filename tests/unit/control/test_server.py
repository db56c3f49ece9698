"""The control server: protocol behaviour on in-memory transports, socket setup on real sockets."""

import json
import os
import shutil
import socket
import stat
import tempfile

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs

from tunrelay.control import server
from tunrelay.control.protocol import MAX_LINE
from tunrelay.control.server import (ControlFactory, ControlSocketError, ControlSocketInUse,
                                     ControlSocketService, prepare_socket_path)

SNAPSHOT = {"interface": {"name": "tr0", "mode": "tun", "mtu": 1420, "addresses": []}, "listen": [],
            "plaintext": True, "device": {}, "drops": {}, "peers": [{"name": "b", "rx_bytes": 1}]}


class Harness:
    """A factory on a fake clock, with connections on StringTransports."""

    def __init__(self, reload=None, snapshot=None, **options):
        self.clock = MemoryReactorClock()
        self.clock.advance(1000)
        self.reloads = 0

        def default_reload():
            self.reloads += 1
            return (True, "reloaded")

        self.factory = ControlFactory(snapshot or (lambda: SNAPSHOT), reload or default_reload, self.clock,
                                      **options)

    def connect(self):
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport


def replies(transport):
    lines = transport.value().split(b"\n")
    assert lines[-1] == b""          # every reply is a complete line
    return [json.loads(line) for line in lines[:-1]]


def test_status_reply_carries_snapshot_schema_version_and_time():
    harness = Harness()
    protocol, transport = harness.connect()
    protocol.dataReceived(b'{"command": "status"}\n')
    [reply] = replies(transport)
    assert reply["ok"] is True
    assert reply["result"]["peers"] == [{"name": "b", "rx_bytes": 1}]
    assert reply["result"]["schema_version"] == 1 and reply["result"]["time"] == 1000
    assert not transport.disconnecting


def test_requests_in_one_chunk_are_answered_in_order_and_errors_are_counted():
    harness = Harness()
    protocol, transport = harness.connect()
    protocol.dataReceived(b'{"command":"reload"}\nnot json\n{"command":"stop"}\n{"command":"status"}\n')
    got = replies(transport)
    assert [reply["ok"] for reply in got] == [True, False, False, True]
    assert got[0]["message"] == "reloaded" and harness.reloads == 1
    assert got[1]["error"] == "bad_json" and got[2]["error"] == "unknown_command"
    assert harness.factory.clients.counters.drops == {"bad_json": 1, "unknown_command": 1}
    assert not transport.disconnecting


def test_oversized_request_gets_an_error_and_the_connection_closes():
    harness = Harness()
    protocol, transport = harness.connect()
    protocol.dataReceived(b"a" * (MAX_LINE + 1))
    [reply] = replies(transport)
    assert reply["error"] == "line_too_long"
    assert transport.disconnecting
    protocol.dataReceived(b'{"command":"status"}\n')     # after closing: ignored, no reply
    assert len(replies(transport)) == 1
    assert harness.factory.clients.counters.drops["line_too_long"] == 1


def test_a_failing_snapshot_costs_one_reply_not_the_connection():
    def broken():
        raise KeyError("boom")

    harness = Harness(snapshot=broken)
    protocol, transport = harness.connect()
    with capturedLogs() as events:
        protocol.dataReceived(b'{"command":"status"}\n{"command":"reload"}\n')
    assert [reply.get("error") for reply in replies(transport)] == ["internal_error", None]
    assert any(event.get("log_failure") is not None for event in events)


def test_an_unencodable_snapshot_is_an_internal_error_reply():
    cyclic = {"peers": []}
    cyclic["peers"].append(cyclic)
    harness = Harness(snapshot=lambda: cyclic)
    protocol, transport = harness.connect()
    with capturedLogs():
        protocol.dataReceived(b'{"command":"status"}\n')
    assert replies(transport)[0]["error"] == "internal_error"
    assert not transport.disconnecting


def test_deferred_reload_holds_later_requests_until_it_answers():
    pending = defer.Deferred()
    harness = Harness(reload=lambda: pending)
    protocol, transport = harness.connect()
    protocol.dataReceived(b'{"command":"reload"}\n{"command":"status"}\n')
    assert transport.value() == b""
    assert transport.producerState == "paused"
    harness.clock.advance(server.IDLE_TIMEOUT * 3)           # waiting on a reload is not idleness
    assert not transport.disconnecting
    pending.callback((False, "interface.mtu: must be a number"))
    got = replies(transport)
    assert got[0] == {"ok": False, "error": "reload_failed", "message": "interface.mtu: must be a number"}
    assert got[1]["ok"] is True and "result" in got[1]
    assert transport.producerState == "producing"


def test_service_errors_count_bad_requests_but_not_failed_reloads():
    service = ControlSocketService("/nonexistent/x.sock", dict, lambda: (False, "bad config"), MemoryReactorClock())
    protocol = service.factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    with capturedLogs() as events:
        protocol.dataReceived(b'{"command":"reload"}\n[]\n')
    assert [reply.get("error") for reply in replies(transport)] == ["reload_failed", "not_object"]
    assert service.errors == {"not_object": 1}
    assert [event["reason"] for event in events if "reason" in event] == ["not_object"]


def test_only_one_reload_at_a_time():
    pending = defer.Deferred()
    harness = Harness(reload=lambda: pending)
    first, first_transport = harness.connect()
    second, second_transport = harness.connect()
    first.dataReceived(b'{"command":"reload"}\n')
    second.dataReceived(b'{"command":"reload"}\n')
    assert replies(second_transport)[0]["error"] == "busy"
    pending.callback((True, "ok"))
    assert replies(first_transport)[0]["ok"] is True
    second.dataReceived(b'{"command":"reload"}\n')          # the flag is released after the first finished
    assert len(replies(second_transport)) == 2


def test_reload_that_raises_or_returns_nonsense_is_reported_not_raised():
    def raising():
        raise RuntimeError("config vanished")

    harness = Harness(reload=raising)
    protocol, transport = harness.connect()
    with capturedLogs():
        protocol.dataReceived(b'{"command":"reload"}\n')
    [reply] = replies(transport)
    assert reply["error"] == "reload_failed" and "config vanished" in reply["message"]
    assert harness.factory.reloading is False

    harness = Harness(reload=lambda: "fine")
    protocol, transport = harness.connect()
    protocol.dataReceived(b'{"command":"reload"}\n')
    assert replies(transport)[0]["error"] == "internal_error"


def test_a_reply_for_a_connection_that_went_away_is_dropped():
    pending = defer.Deferred()
    harness = Harness(reload=lambda: pending)
    protocol, transport = harness.connect()
    protocol.dataReceived(b'{"command":"reload"}\n')
    protocol.connectionLost(None)
    pending.callback((True, "ok"))
    assert transport.value() == b""
    assert harness.factory.connections == 0 and harness.factory.reloading is False


def test_connections_are_bounded():
    harness = Harness(max_connections=2)
    (first, _), _ = harness.connect(), harness.connect()
    third, third_transport = harness.connect()
    assert replies(third_transport)[0]["error"] == "busy" and third_transport.disconnecting
    third.connectionLost(None)
    assert harness.factory.connections == 2
    first.connectionLost(None)
    fourth, fourth_transport = harness.connect()
    fourth.dataReceived(b'{"command":"status"}\n')
    assert replies(fourth_transport)[0]["ok"] is True


def test_idle_connections_are_closed_and_activity_resets_the_timer():
    harness = Harness(idle_timeout=10)
    protocol, transport = harness.connect()
    harness.clock.advance(9)
    protocol.dataReceived(b'{"command":"status"}\n')
    harness.clock.advance(9)
    assert not transport.disconnecting
    harness.clock.advance(1)
    assert transport.disconnecting
    assert harness.factory.clients.counters.drops["idle_timeout"] == 1


# ---- real sockets: the path on disk ---------------------------------------------------------

@pytest.fixture
def short_dir():
    # sun_path holds 107 bytes; pytest's tmp_path can be longer than that.
    directory = tempfile.mkdtemp(prefix="trc", dir="/tmp")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def loose_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


def bound_socket(path, listening):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    if listening:
        sock.listen(1)
    return sock


class SocketReactor(MemoryReactorClock):
    """listenUNIX on a real socket, world-writable like a careless bind, so our chmod must fix it."""

    def listenUNIX(self, address, factory, backlog=50, mode=0o666, wantPID=0):
        sock = bound_socket(address, listening=True)
        os.chmod(address, 0o666)
        reactor = self

        class Port:
            def stopListening(self):
                sock.close()
                reactor.stopped = True
                return defer.succeed(None)

        return Port()


def test_missing_directories_are_created_0755_whatever_the_umask(short_dir):
    path = os.path.join(short_dir, "run", "tr", "tr0.sock")
    previous = os.umask(0o077)
    try:
        prepare_socket_path(path)
    finally:
        os.umask(previous)
    for directory in (os.path.join(short_dir, "run"), os.path.dirname(path)):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(short_dir).st_mode) == 0o700     # an existing directory is left alone


def test_stale_socket_is_removed(short_dir):
    path = os.path.join(short_dir, "tr0.sock")
    bound_socket(path, listening=False).close()    # a crashed relay leaves exactly this
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    prepare_socket_path(path)
    assert not os.path.exists(path)


def test_live_socket_is_refused_with_a_message_naming_it(short_dir):
    path = os.path.join(short_dir, "tr0.sock")
    live = bound_socket(path, listening=True)
    try:
        with pytest.raises(ControlSocketInUse) as raised:
            prepare_socket_path(path)
    finally:
        live.close()
    message = str(raised.value)
    assert path in message and "in use" in message and "\n" not in message
    assert os.path.exists(path)


def test_a_path_that_is_not_a_socket_is_never_removed(short_dir):
    path = os.path.join(short_dir, "tr0.sock")
    with open(path, "w") as stream:
        stream.write("precious")
    with pytest.raises(ControlSocketError, match="not a socket"):
        prepare_socket_path(path)
    with open(path) as stream:
        assert stream.read() == "precious"


def test_service_socket_is_0600_even_with_umask_0_and_is_removed_on_stop(short_dir, loose_umask):
    path = os.path.join(short_dir, "run", "tr0.sock")
    reactor = SocketReactor()
    service = ControlSocketService(path, lambda: SNAPSHOT, lambda: (True, ""), reactor)
    service.privilegedStartService()
    service.startService()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.umask(0) == 0                      # the temporary umask was restored
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)                          # it really listens
    client.close()
    stopped = service.stopService()
    assert stopped.called and reactor.stopped
    assert not os.path.exists(path)


def test_second_service_on_a_live_path_refuses_to_start(short_dir):
    path = os.path.join(short_dir, "tr0.sock")
    first = ControlSocketService(path, dict, dict, SocketReactor())
    first.privilegedStartService()
    second = ControlSocketService(path, dict, dict, SocketReactor())
    with pytest.raises(ControlSocketInUse):
        second.privilegedStartService()
    assert second.port is None
    first.stopService()
    second.privilegedStartService()               # once the first is gone, the path is free
    assert second.port is not None
    second.stopService()


def test_showconf_answers_the_running_yaml_or_says_it_cannot():
    harness = Harness(showconf=lambda: "interface: {name: tr0}\n")
    protocol, transport = harness.connect()
    protocol.dataReceived(b'{"command": "showconf"}\n')
    [reply] = replies(transport)
    assert reply == {"ok": True, "result": {"yaml": "interface: {name: tr0}\n"}}
    protocol, transport = Harness().connect()
    protocol.dataReceived(b'{"command": "showconf"}\n')
    [reply] = replies(transport)
    assert reply["ok"] is False and reply["error"] == "unknown_command"
