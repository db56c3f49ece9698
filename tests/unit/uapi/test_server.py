"""The UAPI adapter on in-memory transports, its socket on a real path, and get's view of a relay."""

import os
import socket
import tempfile

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport

from tunrelay.config import Secrets, parse
from tunrelay.crypto import keys
from tunrelay.uapi import protocol
from tunrelay.uapi.server import UapiFactory, UapiSocketService
from tunrelay.uapi.state import device_state
from tunrelay.unix_socket import UnixSocketInUse

KEY = keys.generate_private_key()
PEER = keys.generate_private_key()


class Backend:
    def __init__(self):
        self.sets = []
        self.refuse = None

    def uapi_get(self):
        return protocol.DeviceState(private_key=KEY, listen_port=51820)

    def uapi_set(self, request):
        if self.refuse is not None:
            raise self.refuse
        self.sets.append(request)


class Harness:
    def __init__(self, **options):
        self.clock = MemoryReactorClock()
        self.backend = Backend()
        self.reports = []
        self.factory = UapiFactory(self.backend, self.clock, lambda reason, detail: self.reports.append(reason),
                                   **options)

    def connect(self):
        connection = self.factory.buildProtocol(None)
        transport = StringTransport()
        connection.makeConnection(transport)
        return connection, transport


def test_get_then_set_on_one_connection():
    harness = Harness()
    connection, transport = harness.connect()
    connection.dataReceived(b"get=1\n\nset=1\nlisten_port=1\n\n")
    assert transport.value() == (b"private_key=" + KEY.hex().encode() + b"\nlisten_port=51820\nerrno=0\n\n"
                                 b"errno=0\n\n")
    assert harness.backend.sets == [protocol.Set(device=(protocol.ListenPort(1),))]
    assert not transport.disconnecting and harness.reports == []


def test_bad_input_gets_its_errno_is_reported_and_reaches_no_backend():
    harness = Harness()
    connection, transport = harness.connect()
    connection.dataReceived(b"set=1\nlisten_port\n\nset=1\nbogus=1\n\n")
    assert transport.value() == b"errno=-71\n\nerrno=-22\n\n"
    assert harness.reports == ["malformed_line", "unknown_key"] and harness.backend.sets == []
    assert not transport.disconnecting


def test_a_refused_set_answers_the_backends_errno():
    harness = Harness()
    harness.backend.refuse = protocol.UapiError(protocol.ERRNO_PORT_IN_USE, "listen_failed", "port in use")
    connection, transport = harness.connect()
    connection.dataReceived(b"set=1\nlisten_port=1\n\n")
    assert transport.value() == b"errno=-98\n\n" and harness.reports == ["listen_failed"]


def test_a_backend_bug_is_errno_minus_55_and_the_connection_lives_on():
    harness = Harness()
    harness.backend.uapi_get = lambda: 1 / 0
    connection, transport = harness.connect()
    connection.dataReceived(b"get=1\n\n")
    assert transport.value() == b"errno=-55\n\n" and not transport.disconnecting


def test_fatal_input_is_answered_then_the_connection_closes():
    harness = Harness()
    connection, transport = harness.connect()
    connection.dataReceived(b"delete=1\nget=1\n\n")
    assert transport.value() == b"errno=-22\n\n" and transport.disconnecting
    assert harness.reports == ["unknown_operation"]


def test_oversized_input_is_eio_and_closes():
    harness = Harness()
    connection, transport = harness.connect()
    connection.dataReceived(b"set=1\n" + b"x" * (protocol.MAX_LINE + 1))
    assert transport.value() == b"errno=-5\n\n" and transport.disconnecting


def test_half_close_completes_a_set_and_closes():
    harness = Harness()
    connection, transport = harness.connect()
    connection.dataReceived(b"set=1\nfwmark=3\n")
    connection.readConnectionLost()
    assert transport.value() == b"errno=0\n\n" and harness.backend.sets == [protocol.Set(device=(protocol.Fwmark(3),))]
    assert transport.disconnecting


def test_connections_are_bounded_and_idle_ones_time_out():
    harness = Harness(max_connections=2, idle_timeout=5)
    kept = [harness.connect() for _ in range(2)]
    _, refused = harness.connect()
    assert refused.disconnecting and harness.reports == ["busy"]
    harness.clock.advance(6)
    assert all(transport.disconnecting for _, transport in kept)
    assert harness.reports == ["busy", "idle_timeout", "idle_timeout"]
    for connection, _ in kept:
        connection.connectionLost()
    assert harness.factory.connections == 0


def test_a_live_uapi_socket_is_refused_with_one_line_naming_the_setting():
    directory = tempfile.mkdtemp(prefix="tru", dir="/tmp")
    path = os.path.join(directory, "tr0.sock")
    owner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    owner.bind(path)
    owner.listen(1)
    try:
        service = UapiSocketService(path, Backend(), lambda reason, detail: None, reactor=MemoryReactorClock())
        with pytest.raises(UnixSocketInUse) as caught:
            service.listen()
        message = str(caught.value)
        assert message.startswith("UAPI socket %s is in use by another running WireGuard interface" % path)
        assert "uapi_socket" in message and "\n" not in message
    finally:
        owner.close()
        os.unlink(path)
        os.rmdir(directory)


def test_get_reads_the_status_snapshot_and_the_configs_keys():
    config = parse("interface: {}\nprivate_key_file: k\nfwmark: 9\npeers:\n"
                   "  - {name: b, public_key: '%s', endpoint: 'udp://b.example:1', keepalive: 25,"
                   " allowed_ips: [198.51.100.2/32]}\n"
                   "  - {name: c, public_key: '%s', endpoint: 'tcp://192.0.2.3:1'}\n" % (
                       keys.encode_key(keys.public_key(PEER)), keys.encode_key(keys.public_key(KEY))))
    snapshot = {"peers": [
        {"name": "b", "endpoint": "udp://[2001:db8::2]:51820", "latest_handshake": 1700000000.5, "rx_bytes": 7,
         "tx_bytes": 8, "allowed_ips": ["198.51.100.2/32"]},
        {"name": "c", "endpoint": "tcp://192.0.2.3:1", "latest_handshake": None, "rx_bytes": 0, "tx_bytes": 0,
         "allowed_ips": []}]}
    psk = bytes(range(32))
    state = device_state(config, Secrets(KEY, {"b": psk}), snapshot, 51820)
    assert state.private_key == KEY and state.listen_port == 51820 and state.fwmark == 9
    b, c = state.peers
    assert b.public_key == keys.public_key(PEER) and b.preshared_key == psk
    assert b.endpoint == ("2001:db8::2", 51820) and b.last_handshake == 1700000000.5
    assert (b.rx_bytes, b.tx_bytes, b.keepalive, b.allowed_ips) == (7, 8, 25, ("198.51.100.2/32",))
    assert c.endpoint is None and c.keepalive == 0       # TCP is nothing wg could use
    unresolved = dict(snapshot["peers"][0], endpoint="udp://b.example:1")
    assert device_state(config, Secrets(KEY), {"peers": [unresolved]}, None).peers[0].endpoint is None
