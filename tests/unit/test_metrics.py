"""Prometheus text output, parsed back strictly, and the twisted.web endpoint serving it."""

import math
import re

import pytest
from twisted.internet import error as twisted_error
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs

from tunrelay import metrics
from tunrelay.metrics import MetricsError, metrics_service, parse_address, render_prometheus

NOW = 1_700_000_000.0


def peer(name, **fields):
    base = {"name": name, "endpoint": None, "transport": "udp", "session": "plaintext", "latest_handshake": None,
            "last_received": None, "paths": 1, "allowed_ips": [], "keepalive": None, "rx_bytes": 0,
            "rx_packets": 0, "tx_bytes": 0, "tx_packets": 0, "drops": {}}
    base.update(fields)
    return base


SNAPSHOT = {
    "interface": {"name": "tr0", "mode": "tap", "mtu": 1420, "addresses": []},
    "listen": [], "plaintext": True,
    "device": {"rx_bytes": 10, "rx_packets": 1, "tx_bytes": 20, "tx_packets": 2, "drops": {}},
    "drops": {"unknown_peer": 7, "no_route": 2},
    "peers": [
        peer("b", rx_bytes=1500, rx_packets=3, tx_bytes=900, tx_packets=2, drops={"not_ip": 4},
             latest_handshake=NOW - 42.5, last_received=NOW - 1),
        peer('we"ird\\name\nx', drops={'odd"reason': 1}),
    ],
}

# ---- a strict little parser for the text format 0.0.4 ----------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % _NAME)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse(text):
    """-> ({(name, frozenset(labels)): value}, {family: type}); asserts on anything off-spec."""
    assert text.endswith("\n")
    samples, types, helped = {}, {}, set()
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helped and name not in types, "HELP must come first, once: " + line
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped and name not in types and kind in ("counter", "gauge")
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, "not a sample line: %r" % line
        name, label_text, value = match.groups()
        assert name in types, "sample before its TYPE: " + line
        assert not name.endswith("_total") or types[name] == "counter"
        labels = {}
        if label_text:
            position = 0
            while position < len(label_text):
                label = _LABEL.match(label_text, position)
                assert label, "bad label syntax in %r" % line
                labels[label.group(1)] = re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group(0)], label.group(2))
                position = label.end()
                if position < len(label_text):
                    assert label_text[position] == ","
                    position += 1
        key = (name, frozenset(labels.items()))
        assert key not in samples, "duplicate series " + line
        samples[key] = float(value)
    return samples, types


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_counters_per_peer_device_and_peerless_drops():
    samples, types = parse(render_prometheus(SNAPSHOT, NOW))
    assert value(samples, "tunrelay_peer_rx_bytes_total", peer="b") == 1500
    assert value(samples, "tunrelay_peer_tx_bytes_total", peer="b") == 900
    assert value(samples, "tunrelay_peer_rx_packets_total", peer="b") == 3
    assert value(samples, "tunrelay_peer_tx_packets_total", peer="b") == 2
    assert value(samples, "tunrelay_peer_drops_total", peer="b", reason="not_ip") == 4
    assert value(samples, "tunrelay_drops_total", reason="unknown_peer") == 7
    assert value(samples, "tunrelay_drops_total", reason="no_route") == 2
    assert value(samples, "tunrelay_device_rx_bytes_total") == 10
    assert value(samples, "tunrelay_device_tx_packets_total") == 2
    assert value(samples, "tunrelay_info", interface="tr0", mode="tap") == 1
    assert value(samples, "tunrelay_peer_paths", peer="b") == 1
    assert types["tunrelay_peer_rx_bytes_total"] == "counter"
    assert types["tunrelay_peer_latest_handshake_seconds"] == "gauge"


def test_handshake_age_is_present_when_known_and_absent_when_never():
    samples, _ = parse(render_prometheus(SNAPSHOT, NOW))
    assert value(samples, "tunrelay_peer_latest_handshake_seconds", peer="b") == 42.5
    assert value(samples, "tunrelay_peer_last_received_seconds", peer="b") == 1
    never = 'we"ird\\name\nx'
    assert ("tunrelay_peer_latest_handshake_seconds", frozenset({("peer", never)})) not in samples
    assert not any(math.isnan(number) for number in samples.values())


def test_handshake_and_rekey_counters_for_encrypted_peers_only():
    snapshot = dict(SNAPSHOT, peers=[peer("b", session="established", handshakes=3, rekeys=2), peer("plain")])
    samples, types = parse(render_prometheus(snapshot, NOW))
    assert value(samples, "tunrelay_peer_handshakes_total", peer="b") == 3
    assert value(samples, "tunrelay_peer_rekeys_total", peer="b") == 2
    assert types["tunrelay_peer_rekeys_total"] == "counter"
    assert ("tunrelay_peer_rekeys_total", frozenset({("peer", "plain")})) not in samples


def test_label_values_are_escaped_and_round_trip():
    text = render_prometheus(SNAPSHOT, NOW)
    assert 'peer="we\\"ird\\\\name\\nx",reason="odd\\"reason"' in text
    samples, _ = parse(text)
    assert value(samples, "tunrelay_peer_drops_total", peer='we"ird\\name\nx', reason='odd"reason') == 1


def test_agrees_with_prometheus_client_parser():
    parser = pytest.importorskip("prometheus_client.parser")
    families = {family.name: family for family in parser.text_string_to_metric_families(
        render_prometheus(SNAPSHOT, NOW))}
    ours, _ = parse(render_prometheus(SNAPSHOT, NOW))
    theirs = {(sample.name, frozenset(sample.labels.items())): sample.value
              for family in families.values() for sample in family.samples}
    assert theirs == ours
    assert families["tunrelay_peer_rx_bytes"].type == "counter"


def test_empty_and_sparse_snapshots():
    samples, _ = parse(render_prometheus({}, NOW))
    assert value(samples, "tunrelay_info", interface="", mode="") == 1
    samples, _ = parse(render_prometheus({"peers": [{"name": "x", "rx_bytes": "lots"}, "junk"]}, NOW))
    assert ("tunrelay_peer_rx_bytes_total", frozenset({("peer", "x")})) not in samples


def test_special_float_values_use_the_spec_spelling():
    assert metrics._format_value(float("nan")) == "NaN"
    assert metrics._format_value(float("inf")) == "+Inf"
    assert metrics._format_value(float("-inf")) == "-Inf"
    assert metrics._format_value(True) == "1"


# ---- the HTTP side ------------------------------------------------------------------------------

def http_get(site, path):
    protocol = site.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    if headers.get(b"Transfer-Encoding") == b"chunked":
        body = _unchunk(body)
    return status, {key.lower(): value for key, value in headers.items()}, body


def _unchunk(data):
    body = b""
    while True:
        size_text, _, rest = data.partition(b"\r\n")
        size = int(size_text, 16)
        if size == 0:
            return body
        body += rest[:size]
        data = rest[size + 2:]


def test_metrics_endpoint_serves_text_format_with_content_type():
    clock = MemoryReactorClock()
    clock.advance(NOW)
    site = metrics.metrics_site(lambda: SNAPSHOT, clock)
    status, headers, body = http_get(site, b"/metrics")
    assert status == 200
    assert headers[b"content-type"] == b"text/plain; version=0.0.4; charset=utf-8"
    samples, _ = parse(body.decode("utf-8"))
    assert value(samples, "tunrelay_peer_latest_handshake_seconds", peer="b") == 42.5
    assert http_get(site, b"/other")[0] == 404
    status, _, body = http_get(site, b"/")
    assert status == 200 and b"/metrics" in body


def test_a_failing_snapshot_is_a_500_not_a_crash():
    def broken():
        raise RuntimeError("boom")

    with capturedLogs() as events:
        status, _, body = http_get(metrics.metrics_site(broken, MemoryReactorClock()), b"/metrics")
    assert status == 500 and b"cannot render metrics" in body
    assert any(event.get("log_failure") is not None for event in events)


@pytest.mark.parametrize("text, parsed", [
    ("127.0.0.1:9109", ("127.0.0.1", 9109)), ("[::1]:9109", ("::1", 9109)), ("0.0.0.0:1", ("0.0.0.0", 1)),
])
def test_addresses(text, parsed):
    assert parse_address(text) == parsed


@pytest.mark.parametrize("text, complaint", [
    ("9109", "IP:PORT"), (":9109", "IP:PORT"), ("localhost:9109", "not an IP address"),
    ("::1:9109", "brackets"), ("127.0.0.1:0", "port"), ("127.0.0.1:http", "port"), ("127.0.0.1:70000", "port"),
])
def test_bad_addresses(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        parse_address(text)


def test_service_binds_only_the_given_address_and_stops():
    reactor = MemoryReactorClock()
    service = metrics_service("[::1]:9109", lambda: SNAPSHOT, reactor)
    service.privilegedStartService()
    service.startService()
    [(port, factory, _, interface)] = reactor.tcpServers
    assert (port, interface) == (9109, "::1")
    assert service.listening is not None
    service.stopService()
    assert service.listening is None


def test_listen_failure_is_one_line():
    class Refusing(MemoryReactorClock):
        def listenTCP(self, port, factory, backlog=50, interface=""):
            raise twisted_error.CannotListenError(interface, port, OSError(98, "Address already in use"))

    service = metrics_service("127.0.0.1:9109", dict, Refusing())
    with pytest.raises(MetricsError, match=r"^cannot serve metrics on 127.0.0.1:9109: Address already in use$"):
        service.privilegedStartService()
