"""``tunrelay status`` text: wg show's layout, sizes and ages."""

import pytest

from tunrelay.control.render import format_age, format_bytes, render_status

NOW = 1_700_000_000.0

DOCUMENT = {
    "schema_version": 1, "time": NOW,
    "interface": {"name": "tr0", "mode": "tun", "mtu": 1420, "addresses": ["198.51.100.1/24", "2001:db8:1::1/64"]},
    "listen": ["udp://0.0.0.0:5000"],
    "plaintext": True,
    "device": {"rx_bytes": 100, "rx_packets": 1, "tx_bytes": 2048, "tx_packets": 2, "drops": {}},
    "drops": {"unknown_peer": 3},
    "peers": [
        {"name": "site-b", "endpoint": "udp://192.0.2.2:5000", "transport": "udp", "session": "plaintext",
         "latest_handshake": NOW - 65, "last_received": NOW - 2, "paths": 1, "allowed_ips": ["10.0.2.0/24"],
         "keepalive": 25, "rx_bytes": 1_289_748, "rx_packets": 1000, "tx_bytes": 4_781_506, "tx_packets": 1,
         "drops": {"source_not_allowed": 1, "not_ip": 4}},
        {"name": "laptop", "endpoint": None, "transport": None, "session": "none", "latest_handshake": None,
         "last_received": None, "paths": 0, "allowed_ips": [], "keepalive": None,
         "rx_bytes": 0, "rx_packets": 0, "tx_bytes": 0, "tx_packets": 0, "drops": {}},
    ],
}


def test_wg_show_like_layout():
    assert render_status(DOCUMENT, NOW) == """\
interface: tr0
  mode: tun, mtu 1420
  addresses: 198.51.100.1/24, 2001:db8:1::1/64
  listening: udp://0.0.0.0:5000
  encryption: none (plaintext mode)
  device transfer: 100 B received (1 packet), 2.00 KiB sent (2 packets)
  drops without a peer: unknown_peer=3

peer: site-b
  endpoint: udp://192.0.2.2:5000
  transport: udp
  session: plaintext
  latest handshake: 1 minute, 5 seconds ago
  latest receive: 2 seconds ago
  paths: 1
  allowed ips: 10.0.2.0/24
  persistent keepalive: every 25 seconds
  transfer: 1.23 MiB received (1000 packets), 4.56 MiB sent (1 packet)
  drops: not_ip=4, source_not_allowed=1

peer: laptop
  endpoint: (none)
  transport: (none)
  session: none
  latest handshake: never
  latest receive: never
  paths: 0
  allowed ips: (none)
  transfer: 0 B received (0 packets), 0 B sent (0 packets)
  drops: none
"""


@pytest.mark.parametrize("count, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (1536, "1.50 KiB"), (1024 ** 2, "1.00 MiB"),
    (5 * 1024 ** 3, "5.00 GiB"), (3 * 1024 ** 5, "3072.00 TiB"), (None, "None"),
])
def test_sizes(count, text):
    assert format_bytes(count) == text


@pytest.mark.parametrize("age, text", [
    (0, "now"), (0.4, "now"), (1, "1 second ago"), (60, "1 minute ago"), (3661, "1 hour, 1 minute, 1 second ago"),
    (2 * 86400 + 5, "2 days, 5 seconds ago"), (366 * 86400, "1 year, 1 day ago"),
    (-30, "in the future (clock changed?)"),
])
def test_ages(age, text):
    assert format_age(NOW - age, NOW) == text


def test_never_and_odd_values():
    assert format_age(None, NOW) == "never"
    assert format_age("yesterday", NOW) == "yesterday"


def test_sparse_or_odd_documents_still_render():
    text = render_status({"peers": [{"name": "x", "drops": "n/a"}, "junk"]}, NOW)
    assert text.startswith("interface: ?\n")
    assert "peer: x\n" in text and "  drops: none\n" in text and "latest handshake: never" in text


def test_an_encrypted_peer_shows_its_handshakes_and_rekeys():
    peer = dict(DOCUMENT["peers"][1], session="established", handshakes=3, rekeys=2)
    text = render_status({"peers": [peer]}, NOW)
    assert "  latest handshake: never\n  handshakes: 3 (2 rekeys)\n  latest receive: never\n" in text
    assert "  handshakes: 1 (0 rekeys)\n" in render_status({"peers": [dict(peer, handshakes=1, rekeys=0)]}, NOW)
    assert "handshakes" not in render_status(DOCUMENT, NOW)   # plaintext peers have none
