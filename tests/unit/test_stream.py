"""TCP link adapter on an in-memory transport: framing errors, idle peers, backpressure."""

import struct
import textwrap

import pytest
from tunrelay.constants import TCP_BACKLOG_BYTES
from tunrelay.testing import MemoryTCPTransport, ipv4_packet, relay_from_yaml, from_device
from tunrelay.twisted_io.stream import FramedConnection, InboundFactory

CONFIG = textwrap.dedent("""\
    interface: {name: tr0, addresses: [198.51.100.1/24]}
    plaintext: true
    idle_timeout: 30
    max_frame_size: 2048
    peers:
      - {name: b, endpoint: "tcp://192.0.2.2:51820", allowed_ips: [198.51.100.2/32]}
      - {name: c, endpoint: "tcp://192.0.2.3:51820", allowed_ips: [198.51.100.3/32]}
    """)


def connect(relay, host):
    connection = InboundFactory(relay).buildProtocol(None)
    transport = MemoryTCPTransport(host)
    connection.makeConnection(transport)
    return connection, transport


def framed(message):
    return struct.pack("!H", len(message)) + message


@pytest.fixture
def relay():
    return relay_from_yaml(CONFIG)


def test_frames_in_and_out_use_the_simpletun_format(relay):
    connection, transport = connect(relay, "192.0.2.2")
    packet = ipv4_packet("198.51.100.2", "198.51.100.1", b"ping")
    connection.dataReceived(framed(packet)[:3])
    connection.dataReceived(framed(packet)[3:])
    assert relay.device.written == [packet]
    assert transport.no_delay
    reply = ipv4_packet("198.51.100.1", "198.51.100.2", b"pong")
    from_device(relay, reply)
    assert transport.value() == framed(reply)


def test_unknown_source_is_closed_at_once(relay):
    _, transport = connect(relay, "192.0.2.99")
    assert transport.disconnecting
    assert relay.drops.counters.drops["unknown_peer"] == 1


def test_oversized_length_prefix_closes_only_that_connection(relay):
    bad, bad_transport = connect(relay, "192.0.2.2")
    good, _ = connect(relay, "192.0.2.3")
    bad.dataReceived(b"\xff\xff" + b"x" * 100)
    assert bad_transport.disconnecting
    assert relay.peers["b"].counters.drops["oversized_length"] == 1
    packet = ipv4_packet("198.51.100.3", "198.51.100.1")
    good.dataReceived(framed(packet))
    assert relay.device.written == [packet]


def test_garbage_is_counted_and_never_reaches_the_device(relay):
    connection, transport = connect(relay, "192.0.2.2")
    connection.dataReceived(framed(b"\x99" * 30) + framed(b"\x45garbage"))
    assert relay.device.written == []
    drops = relay.peers["b"].counters.drops
    assert drops["not_ip"] == 1 and drops["truncated_ip_header"] == 1
    assert not transport.disconnecting


def test_truncated_stream_is_counted(relay):
    connection, _ = connect(relay, "192.0.2.2")
    connection.dataReceived(framed(b"\x45" + b"\x00" * 50)[:20])
    connection.connectionLost(None)
    assert relay.peers["b"].counters.drops["truncated_stream"] == 1
    assert relay.peers["b"].paths == []


def test_silent_connection_is_closed_after_idle_timeout(relay):
    _, transport = connect(relay, "192.0.2.2")
    relay.clock.advance(29)
    assert not transport.disconnecting
    relay.clock.advance(1)
    assert transport.disconnecting
    assert relay.peers["b"].counters.drops["idle_timeout"] == 1


def test_traffic_postpones_the_idle_timeout(relay):
    connection, transport = connect(relay, "192.0.2.2")
    relay.clock.advance(20)
    connection.dataReceived(framed(b""))  # a keepalive counts as life
    relay.clock.advance(20)
    assert not transport.disconnecting


def test_backpressure_bounds_the_queue(relay):
    connection, transport = connect(relay, "192.0.2.2")
    connection.pauseProducing()
    packet = ipv4_packet("198.51.100.1", "198.51.100.2", b"q" * 1000)
    for _ in range(TCP_BACKLOG_BYTES // len(packet) + 10):
        from_device(relay, packet)
    assert len(transport.value()) <= TCP_BACKLOG_BYTES + len(packet)
    dropped = relay.peers["b"].counters.drops["tx_queue_full"]
    assert dropped >= 9
    connection.resumeProducing()
    before = len(transport.value())
    from_device(relay, packet)
    assert relay.peers["b"].counters.drops["tx_queue_full"] == dropped
    assert len(transport.value()) == before + 2 + len(packet)


def test_a_new_silent_connection_does_not_take_the_traffic(relay):
    first, first_transport = connect(relay, "192.0.2.2")
    second, second_transport = connect(relay, "192.0.2.2")
    packet = ipv4_packet("198.51.100.1", "198.51.100.2")
    from_device(relay, packet)
    assert first_transport.value() == framed(packet) and second_transport.value() == b""
    second.dataReceived(framed(ipv4_packet("198.51.100.2", "198.51.100.1")))
    from_device(relay, packet)  # we answer on the path we last heard from
    assert second_transport.value() == framed(packet)


def test_closing_the_active_connection_falls_back_to_another(relay):
    first, first_transport = connect(relay, "192.0.2.2")
    second, second_transport = connect(relay, "192.0.2.2")
    first.connectionLost(None)
    from_device(relay, ipv4_packet("198.51.100.1", "198.51.100.2"))
    assert second_transport.value() != b""


def test_connections_per_peer_are_bounded(relay):
    transports = [connect(relay, "192.0.2.2")[1] for _ in range(6)]
    assert [t.disconnecting for t in transports] == [True, True, False, False, False, False]
    assert relay.peers["b"].counters.drops["connection_replaced"] == 2


def test_outbound_connection_belongs_to_its_peer_whatever_the_address(relay):
    connection = FramedConnection(relay, relay.peers["c"])
    connection.makeConnection(MemoryTCPTransport("192.0.2.200", 51820))
    packet = ipv4_packet("198.51.100.3", "198.51.100.1")
    connection.dataReceived(framed(packet))
    assert relay.device.written == [packet]
