"""The responder's status page in headless Chromium, served through the responder's own TCP.

Relay A hosts the responder; relay B is its encrypted (WireGuard over UDP) peer, so A's
page has a peer with a handshake, an endpoint and traffic. Chromium runs in A's namespace
and loads http://198.51.100.9/ (and the IPv6 address) through tr0, i.e. over the
responder's TCP. Every figure on the page carries its key in the status document
(``data-key``, see tunrelay/responder/status_page.py), and each must match what
``tunrelay status --json`` says right after: exactly for what nothing changes meanwhile
(the interface, the peer, its handshake and transfer), and no more than it for counters
that the page fetch itself moves (the device's, the responder's, the relay's drops).
/status.json must be the same document.
"""

import json
import os
import shutil
from html.parser import HTMLParser

import pytest

from .conftest import require_tool
from .test_two_hosts import encrypted, relay_config

RESPONDER, RESPONDER6 = "198.51.100.9", "2001:db8:1::9"
MOVING = ("device/", "responder/", "drops/", "time")


class _Figures(HTMLParser):
    def __init__(self):
        super().__init__()
        self.figures = {}
        self.refresh = None

    def handle_starttag(self, tag, attributes):
        attributes = dict(attributes)
        if "data-key" in attributes:
            self.figures[attributes["data-key"]] = json.loads(attributes["data-value"])
        if tag == "meta" and attributes.get("http-equiv") == "refresh":
            self.refresh = attributes.get("content")


def _at(document, key, missing=KeyError):
    """Resolve a ``data-key`` (a JSON Pointer without its leading slash); a counter not yet
    in the document may be taken as ``missing``."""
    value = document
    for part in key.split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except KeyError:
            if missing is KeyError:
                raise
            return missing
    return value


def chromium_dom(host, url, profile):
    chromium = shutil.which("chromium")
    result = host.exec(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                       "--no-first-run", "--disable-background-networking", "--disable-component-update",
                       "--disable-sync", "--user-data-dir=%s" % profile, "--dump-dom", url, timeout=90)
    return result.stdout


def status(relay):
    return json.loads(relay.tool("status", "-s", relay.config["control_socket"], "--json", check=True).stdout)


@pytest.fixture
def relays(lab, tmp_path):
    require_tool("chromium")
    a, b = lab.underlay()
    config_a = encrypted(relay_config("tun", 1, ["udp://192.0.2.1:51820"]), tmp_path, 1)
    config_a["interface"]["addresses"].append("2001:db8:1::1/64")
    config_a["responder"] = {"address": [RESPONDER, RESPONDER6], "services": {80: "http"}}
    relay_a = lab.relay(a, config_a)
    config_b = encrypted(relay_config("tun", 2, ["udp://192.0.2.2:51820"], "udp://192.0.2.1:51820"), tmp_path, 2)
    relay_b = lab.relay(b, config_b)
    b.ping("198.51.100.1", count=5)          # a handshake, and transfer both ways
    return a, relay_a, relay_b


@pytest.mark.parametrize("address", [RESPONDER, "[%s]" % RESPONDER6], ids=["ipv4", "ipv6"])
def test_the_status_page_in_chromium_matches_tunrelay_status(relays, tmp_path, address):
    a, relay_a, _ = relays
    profile = os.path.join(str(tmp_path), "chromium-profile-%s" % address.strip("[]").replace(":", "-"))
    os.makedirs(profile)
    before = status(relay_a)
    page = chromium_dom(a, "http://%s/" % address, profile)
    after = status(relay_a)
    parser = _Figures()
    parser.feed(page)
    figures = parser.figures
    assert parser.refresh == "5", page[:500]                      # it refreshes itself
    assert "peers/0/latest_handshake" in figures and "responder/tcp/segments_received" in figures
    assert after["peers"][0]["latest_handshake"] is not None and after["peers"][0]["rx_bytes"] > 0
    for key, shown in figures.items():
        if key == "responder/connections":
            assert shown >= 1, key          # at least the one that carried the page
        elif key.startswith(MOVING):
            if isinstance(shown, (int, float)) and not isinstance(shown, bool) and key != "time":
                assert _at(before, key, missing=0) <= shown <= _at(after, key), key
        else:
            assert shown == _at(after, key), (key, shown, _at(after, key))
    assert before["time"] <= figures["time"] <= after["time"]
    # The page was fetched over the responder's TCP, and it counted it.
    assert after["responder"]["tcp"]["segments_received"] > before["responder"]["tcp"].get("segments_received", 0)


def test_status_json_is_the_same_document(relays):
    a, relay_a, _ = relays
    served = json.loads(a.exec("curl", "-sf", "--max-time", "20", "http://%s/status.json" % RESPONDER).stdout)
    reference = status(relay_a)
    assert set(served) == set(reference) and served["schema_version"] == reference["schema_version"] == 1
    for name in ("interface", "listen", "plaintext", "peers"):
        assert served[name] == reference[name], name
    assert served["responder"]["addresses"] == reference["responder"]["addresses"] == [RESPONDER, RESPONDER6]
