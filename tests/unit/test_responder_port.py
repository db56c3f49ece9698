"""The responder as a relay port, on in-memory fakes, with scapy as the independent oracle."""

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from twisted.internet.protocol import Factory, Protocol

from tunrelay.responder import port as port_module
from tunrelay.testing import from_device, relay_with_responder

CLIENT, RESPONDER = "198.51.100.1", "198.51.100.9"


class Exploding(Protocol):
    def dataReceived(self, data):
        raise RuntimeError("application bug")


exploding = Factory.forProtocol(Exploding)


@pytest.fixture
def relay():
    return relay_with_responder("""\
interface: {addresses: [198.51.100.1/24]}
plaintext: true
responder:
  address: 198.51.100.9
  services: {7: echo, 80: http, 99: "tests.unit.test_responder_port:exploding"}
""")


def replies(relay):
    relay.clock.advance(0)  # flushes queued writes
    packets = [IP(frame) for frame in relay.device.written]
    relay.device.written.clear()
    return packets


def handshake(relay, port, client_port=40000):
    from_device(relay, bytes(IP(src=CLIENT, dst=RESPONDER) / TCP(sport=client_port, dport=port, flags="S", seq=1000)))
    synack = replies(relay)[0]
    assert synack[TCP].flags == "SA" and synack[TCP].ack == 1001
    from_device(relay, bytes(IP(src=CLIENT, dst=RESPONDER) / TCP(sport=client_port, dport=port, flags="A",
                                                                 seq=1001, ack=synack[TCP].seq + 1)))
    return synack[TCP].seq + 1


def send_data(relay, port, server_next, data, client_port=40000):
    from_device(relay, bytes(IP(src=CLIENT, dst=RESPONDER) / TCP(sport=client_port, dport=port, flags="PA", seq=1001,
                                                                 ack=server_next) / data))
    return replies(relay)


def test_ping_through_the_relay_device(relay):
    from_device(relay, bytes(IP(src=CLIENT, dst=RESPONDER) / ICMP(id=7, seq=1) / b"payload"))
    (reply,) = replies(relay)
    assert reply[IP].src == RESPONDER and reply[ICMP].type == 0 and bytes(reply[ICMP].payload) == b"payload"


def test_echo_service_over_tcp(relay):
    server_next = handshake(relay, 7)
    echoed = b"".join(bytes(packet[TCP].payload) for packet in send_data(relay, 7, server_next, b"hello responder"))
    assert echoed == b"hello responder"


def test_http_status_page(relay):
    server_next = handshake(relay, 80)
    answer = b"".join(bytes(p[TCP].payload) for p in send_data(relay, 80, server_next, b"GET / HTTP/1.0\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.0 200") and b"tunrelay tr0" in answer


def test_closed_port_gets_a_reset(relay):
    from_device(relay, bytes(IP(src=CLIENT, dst=RESPONDER) / TCP(sport=40001, dport=23, flags="S", seq=5)))
    (reset,) = replies(relay)
    assert "R" in reset[TCP].flags


def test_a_crashing_protocol_aborts_only_its_connection(relay):
    server_next = handshake(relay, 99)
    answer = send_data(relay, 99, server_next, b"boom")
    assert any("R" in packet[TCP].flags for packet in answer)
    echo_next = handshake(relay, 7, client_port=40002)
    echoed = send_data(relay, 7, echo_next, b"still fine", client_port=40002)
    assert b"still fine" in b"".join(bytes(p[TCP].payload) for p in echoed)


def test_established_connections_are_capped(relay, monkeypatch):
    monkeypatch.setattr(port_module, "MAX_CONNECTIONS", 2)
    for client_port in (41000, 41001):
        handshake(relay, 7, client_port)
    from_device(relay, bytes(IP(src=CLIENT, dst=RESPONDER) / TCP(sport=41002, dport=7, flags="S", seq=1000)))
    synack = replies(relay)[0]
    from_device(relay, bytes(IP(src=CLIENT, dst=RESPONDER) / TCP(sport=41002, dport=7, flags="A", seq=1001,
                                                                 ack=synack[TCP].seq + 1)))
    assert any("R" in packet[TCP].flags for packet in replies(relay))
    assert relay.responder.snapshot()["connections"] == 2


def test_reloaded_services_take_effect_for_new_connections(relay):
    established = handshake(relay, 7, client_port=42000)
    relay.responder.update_services(((80, "http"), (8080, "echo")))
    from_device(relay, bytes(IP(src=CLIENT, dst=RESPONDER) / TCP(sport=42001, dport=7, flags="S", seq=5)))
    assert "R" in replies(relay)[0][TCP].flags            # port 7 no longer accepts
    echo_next = handshake(relay, 8080, client_port=42002)  # the new port does
    assert b"new port" in b"".join(bytes(p[TCP].payload) for p in send_data(relay, 8080, echo_next, b"new port",
                                                                            client_port=42002))
    old = send_data(relay, 7, established, b"kept", client_port=42000)  # the old connection carries on
    assert b"kept" in b"".join(bytes(p[TCP].payload) for p in old)


# -- IPv6: the relay hands the responder what it owns -----------------------------------------

CLIENT6, RESPONDER6 = "2001:db8:1::1", "2001:db8:1::9"


@pytest.fixture
def relay6():
    return relay_with_responder("""\
interface: {addresses: [198.51.100.1/24, "2001:db8:1::1/64"]}
plaintext: true
responder:
  address: [198.51.100.9, "2001:db8:1::9"]
  services: {7: echo}
""")


def replies6(relay):
    relay.clock.advance(0)
    packets = [IPv6(frame) for frame in relay.device.written]
    relay.device.written.clear()
    return packets


def test_the_port_owns_exactly_its_addresses(relay6):
    import ipaddress
    owns = relay6.responder.owns
    assert owns(4, int(ipaddress.ip_address(RESPONDER))) and owns(6, int(ipaddress.ip_address(RESPONDER6)))
    assert not owns(6, int(ipaddress.ip_address(CLIENT6))) and not owns(4, int(ipaddress.ip_address(RESPONDER6)) & 0xFFFFFFFF)


def test_ping6_and_tcp_echo_over_ipv6_through_the_relay(relay6):
    from_device(relay6, bytes(IPv6(src=CLIENT6, dst=RESPONDER6) / ICMPv6EchoRequest(id=3, seq=4, data=b"six")))
    (reply,) = replies6(relay6)
    assert reply.src == RESPONDER6 and reply[ICMPv6EchoReply].data == b"six"
    from_device(relay6, bytes(IPv6(src=CLIENT6, dst=RESPONDER6) / TCP(sport=40000, dport=7, flags="S", seq=1000)))
    (synack,) = replies6(relay6)
    assert synack[TCP].flags == "SA" and dict(synack[TCP].options)["MSS"] == 1420 - 60
    from_device(relay6, bytes(IPv6(src=CLIENT6, dst=RESPONDER6) / TCP(sport=40000, dport=7, flags="PA", seq=1001,
                                                                      ack=synack[TCP].seq + 1) / b"over six"))
    echoed = b"".join(bytes(p[TCP].payload) for p in replies6(relay6))
    assert echoed == b"over six"
    [transport] = relay6.responder.transports.values()
    assert (transport.getPeer().type, transport.getPeer().host) == ("TCP", CLIENT6)
    assert type(transport.getPeer()).__name__ == "IPv6Address"
    assert relay6.responder.snapshot()["addresses"] == [RESPONDER, RESPONDER6]
