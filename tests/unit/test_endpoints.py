"""Endpoint and listen URLs."""

import pytest

from tunrelay.endpoints import parse_endpoint, parse_listen


@pytest.mark.parametrize("text, transport, host, port", [
    ("tcp://192.0.2.2:51820", "tcp", "192.0.2.2", 51820),
    ("udp://[2001:db8::2]:51820", "udp", "2001:db8::2", 51820),
    ("tcp://relay.example.net:443", "tcp", "relay.example.net", 443),
])
def test_endpoints(text, transport, host, port):
    endpoint = parse_endpoint(text)
    assert (endpoint.transport, endpoint.host, endpoint.port) == (transport, host, port)
    assert str(endpoint) == text


def test_ethernet_endpoint_and_listen():
    assert parse_endpoint("ethernet://eth0/02:00:00:00:00:02").mac == bytes.fromhex("020000000002")
    assert parse_listen("ethernet://eth0").mac is None


@pytest.mark.parametrize("text, message", [
    ("http://192.0.2.1:1", "must start with tcp://, udp:// or ethernet://"),
    ("tcp://192.0.2.1", "needs host:port"),
    ("tcp://192.0.2.1:0", "port must be 1-65535"),
    ("udp://[192.0.2.1]:5", "is not an IPv6 address"),
    ("udp://2001:db8::1:5", "neither an IP address nor a hostname"),
    ("ethernet://eth0/02:00:00", "is not a MAC address"),
    ("ethernet://averyveryverylongname/02:00:00:00:00:02", "interface name must be 1-15"),
])
def test_bad_endpoints(text, message):
    with pytest.raises(ValueError, match=message):
        parse_endpoint(text)


def test_listen_rejects_hostnames_and_macs():
    with pytest.raises(ValueError, match="listen host must be an IP address"):
        parse_listen("tcp://example.net:1")
    with pytest.raises(ValueError, match="no MAC"):
        parse_listen("ethernet://eth0/02:00:00:00:00:02")
