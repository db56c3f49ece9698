"""The http service's status page and /status.json: every figure keyed to the status document."""

import json
from html.parser import HTMLParser

from scapy.layers.inet import IP, TCP

from tunrelay.control.protocol import status_document
from tunrelay.responder.status_page import REFRESH_SECONDS, render_page
from tunrelay.testing import relay_with_responder, from_device

CLIENT, RESPONDER = "198.51.100.1", "198.51.100.9"

DOCUMENT = {
    "schema_version": 1, "time": 1700000100.0,
    "interface": {"name": "tr0", "mode": "tap", "mtu": 1420, "addresses": ["198.51.100.1/24"]},
    "listen": ["udp://0.0.0.0:51820"], "plaintext": False,
    "device": {"rx_bytes": 1, "rx_packets": 1, "tx_bytes": 3 << 20, "tx_packets": 2400, "drops": {}},
    "drops": {"no_route": 3, "<b>odd</b>": 1},
    "peers": [{"name": "<script>alert(1)</script>", "endpoint": "udp://192.0.2.2:51820", "transport": "udp",
               "session": "established", "latest_handshake": 1700000035.0, "last_received": None,
               "rx_bytes": 2048, "rx_packets": 2, "tx_bytes": 7, "tx_packets": 1, "drops": {"replay": 4}}],
    "responder": {"address": "198.51.100.9", "addresses": ["198.51.100.9", "2001:db8:1::9"], "connections": 2,
                  "rx_frames": 10, "rx_bytes": 5000, "drops": {"ipv6_not_for_us": 6},
                  "tcp": {"sack_recoveries": 3, "segments_sent": 90}},
}


class Figures(HTMLParser):
    """Collects ``data-key`` -> ``data-value`` and the visible text of a page."""

    def __init__(self):
        super().__init__()
        self.figures = {}
        self.text = []
        self.refresh = None

    def handle_starttag(self, tag, attributes):
        attributes = dict(attributes)
        if "data-key" in attributes:
            assert attributes["data-key"] not in self.figures, attributes["data-key"]
            self.figures[attributes["data-key"]] = json.loads(attributes["data-value"])
        if tag == "meta" and attributes.get("http-equiv") == "refresh":
            self.refresh = int(attributes["content"])

    def handle_data(self, data):
        self.text.append(data)


def figures_of(page):
    parser = Figures()
    parser.feed(page.decode("utf-8"))
    return parser


def at(document, key):
    """Resolve a ``data-key``: a JSON Pointer (RFC 6901) without its leading slash."""
    value = document
    for part in key.split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_every_figure_is_the_documents_value_at_its_key():
    parser = figures_of(render_page(DOCUMENT))
    assert parser.figures and all(at(DOCUMENT, key) == value for key, value in parser.figures.items())
    for key in ("peers/0/latest_handshake", "peers/0/rx_bytes", "peers/0/tx_packets", "peers/0/endpoint",
                "drops/no_route", "peers/0/drops/replay", "responder/tcp/sack_recoveries",
                "responder/drops/ipv6_not_for_us", "responder/connections", "device/tx_bytes", "interface/mode"):
        assert key in parser.figures, key
    text = "".join(parser.text)
    assert "1 minute, 5 seconds ago" in text and "never" in text     # ages against the document's time
    assert "3.00 MiB in 2400 packets" in text and "2.00 KiB in 2 packets" in text
    assert parser.refresh == REFRESH_SECONDS


def test_names_from_config_and_the_wire_are_escaped():
    page = render_page(DOCUMENT).decode()
    assert "<script>" not in page and "<b>odd</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_relay_without_peers_or_responder_still_renders():
    document = dict(DOCUMENT, peers=[], responder=None, drops={})
    text = "".join(figures_of(render_page(document)).text)
    assert "No peers configured." in text and "Nothing dropped." in text and "Not configured." in text


def _get(relay, path, client_port):
    """An HTTP/1.0 GET through the relay's device to the responder, acknowledging to the end."""
    def segment(flags, seq, ack, payload=b""):
        from_device(relay, bytes(IP(src=CLIENT, dst=RESPONDER) / TCP(
            sport=client_port, dport=80, flags=flags, seq=seq, ack=ack, options=[("MSS", 1380)]) / payload))
        relay.clock.advance(0)
        answers = [IP(frame)[TCP] for frame in relay.device.written]
        relay.device.written.clear()
        return answers

    [synack] = segment("S", 1000, 0)
    request = ("GET %s HTTP/1.0\r\n\r\n" % path).encode()
    received = {}
    answers = segment("PA", 1001, synack.seq + 1, request)
    for _ in range(50):
        for answer in answers:
            received[answer.seq] = bytes(answer.payload)
        if any("F" in str(answer.flags) for answer in answers):
            break
        highest = max(seq + len(data) for seq, data in received.items())
        answers = segment("A", 1001 + len(request), highest)
    head, _, body = b"".join(data for _, data in sorted(received.items())).partition(b"\r\n\r\n")
    return head, body


def test_the_page_and_status_json_hold_the_relays_status_document():
    relay = relay_with_responder("""\
interface: {addresses: [198.51.100.1/24]}
plaintext: true
peers: [{name: b, endpoint: "udp://192.0.2.2:5000", allowed_ips: [198.51.100.2/32]}]
responder: {address: 198.51.100.9, services: {80: http}}
""")
    relay.clock.advance(1234.5)
    head, body = _get(relay, "/status.json", 40001)
    assert b"application/json" in head and b"no-store" in head
    served = json.loads(body)
    expected = json.loads(json.dumps(status_document(relay.snapshot(), relay.clock.seconds())))
    assert served["time"] == 1234.5 and served["schema_version"] == 1
    moving = ("device", "responder")    # they count the answer itself
    assert {k: v for k, v in served.items() if k not in moving} == \
        {k: v for k, v in expected.items() if k not in moving}
    assert served["device"]["tx_packets"] < expected["device"]["tx_packets"]
    head, page = _get(relay, "/", 40002)
    assert b"text/html" in head
    figures = figures_of(page).figures
    assert figures["peers/0/name"] == "b" and figures["peers/0/endpoint"] == "udp://192.0.2.2:5000"
    # This connection and the first, which waits in FIN-WAIT-2 for a FIN this client never sends.
    assert figures["time"] == 1234.5 and figures["responder/connections"] == 2
