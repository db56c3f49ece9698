"""tunrelay (tun, UDP) against a stock wireguard-go: the honest judge of our WireGuard.

wireguard-go runs in namespace B with wg(8) configuring it (under a device name unique to the
run: its socket is in /var/run/wireguard, which namespaces share); tunrelay runs in A. The test
runs twice: once tunrelay initiates the handshake (only it knows the other's endpoint),
once wireguard-go does. Each time: ping both ways, then 20 MB with a matching sha256.
"""

import json
import os
import subprocess

import pytest

from tunrelay.crypto import keys

from .conftest import require_tool
from .netns import checksum_errors, transfer, unique_name
from .test_two_hosts import OVERLAY_A, OVERLAY_B, write_key_file
from .wireguard import start_wireguard_go


@pytest.mark.parametrize("offload", [None, True], ids=["default-offload", "tso-device"])
@pytest.mark.parametrize("initiator", ["tunrelay", "wireguard-go"])
def test_interop_with_wireguard_go(lab, tmp_path, initiator, offload):
    """tunrelay's offload on: by default its device takes coalesced runs of what wireguard-go
    sends; with a TSO device it also cuts its kernel's super-packets into MTU-sized segments
    for wireguard-go, which knows nothing of them. (Debian's wireguard-go predates
    wireguard-go's own offload, so that end has none.)"""
    require_tool("wireguard-go")
    require_tool("wg")
    a, b = lab.underlay()
    relay_key, go_key = keys.generate_private_key(), keys.generate_private_key()
    directory = str(tmp_path)
    peer = {"name": "wg-go", "public_key": keys.encode_key(keys.public_key(go_key)),
            "allowed_ips": ["198.51.100.2/32"]}
    if initiator == "tunrelay":
        peer["endpoint"] = "udp://192.0.2.2:51820"
    interface = {"name": "tr0", "mode": "tun", "mtu": 1420, "addresses": ["198.51.100.1/24"]}
    if offload is not None:
        interface["offload"] = offload
    config = {"interface": interface,
              "private_key_file": write_key_file(os.path.join(directory, "relay.key"), relay_key),
              "listen": ["udp://192.0.2.1:51820"], "peers": [peer]}
    relay = lab.relay(a, config)
    device = unique_name("wg")
    start_wireguard_go(b, directory, device, go_key, 51820, "198.51.100.2/24",
                       [(relay_key, "198.51.100.1/32", "192.0.2.1:51820" if initiator == "wireguard-go" else None)])

    first, second = (a, b) if initiator == "tunrelay" else (b, a)
    first.ping(OVERLAY_B if first is a else OVERLAY_A)
    second.ping(OVERLAY_A if second is b else OVERLAY_B)
    handshakes = b.exec("wg", "show", device, "latest-handshakes").stdout.split()
    assert len(handshakes) == 2 and int(handshakes[1]) > 0
    sent, received = transfer(a, b, OVERLAY_B, tmp_path)
    assert sent == received
    before, errors_before = device_counters(relay), checksum_errors(a)
    sent, received = transfer(b, a, OVERLAY_A, tmp_path, size=5 * 1000 * 1000, port=5002)
    assert sent == received
    relay.wait_log("handshake completed")
    assert "Traceback" not in relay.log()
    after = device_counters(relay)
    # wireguard-go's segments reached A's kernel partly coalesced, and the kernel refused none.
    assert after["tx_writes"] - before["tx_writes"] < after["tx_packets"] - before["tx_packets"], (before, after)
    assert checksum_errors(a) == errors_before


def device_counters(relay):
    return json.loads(relay.tool("status", "-s", relay.config["control_socket"], "--json").stdout)["device"]


def test_keys_interoperate_with_wg_tools(tmp_path):
    import sys

    require_tool("wg")
    ours = subprocess.run([sys.executable, "-m", "tunrelay.cli", "genkey"], capture_output=True, text=True,
                          check=True).stdout
    theirs = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
    for private in (ours, theirs):
        by_wg = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True).stdout
        by_us = subprocess.run([sys.executable, "-m", "tunrelay.cli", "pubkey"], input=private, capture_output=True,
                               text=True, check=True).stdout
        assert by_wg == by_us and len(keys.decode_key(by_us)) == 32
