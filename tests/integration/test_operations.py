"""Operating a live relay: status, live reload without loss, refused bad reloads, metrics."""

import json
import os
import stat
import subprocess

from .netns import wait_for
from .test_two_hosts import OVERLAY_A

B_PEER = {"name": "b", "endpoint": "udp://192.0.2.2:51820", "allowed_ips": ["198.51.100.2/32"]}
C_PEER = {"name": "c", "endpoint": "udp://198.18.0.2:51820", "allowed_ips": ["198.51.100.3/32"]}


def hub_config(peers):
    return {"interface": {"name": "tr0", "mode": "tun", "mtu": 1400, "addresses": ["198.51.100.1/24"]},
            "plaintext": True, "metrics": "127.0.0.1:9109",
            "listen": ["udp://192.0.2.1:51820", "udp://198.18.0.1:51820"], "peers": peers}


def spoke_config(last, own_underlay, hub_underlay):
    return {"interface": {"name": "tr0", "mode": "tun", "mtu": 1400, "addresses": ["198.51.100.%d/24" % last]},
            "plaintext": True, "listen": ["udp://%s:51820" % own_underlay],
            "peers": [{"name": "hub", "endpoint": "udp://%s:51820" % hub_underlay, "allowed_ips": ["198.51.100.0/24"]}]}


def pings(host, address):
    return host.exec("ping", "-c", "1", "-W", "1", address, check=False).returncode == 0


def test_status_reload_and_metrics_on_live_relays(lab):
    a, b = lab.underlay()
    c = lab.third_host(a)
    hub = lab.relay(a, hub_config([B_PEER]))
    spoke = lab.relay(b, spoke_config(2, "192.0.2.2", "192.0.2.1"))
    lab.relay(c, spoke_config(3, "198.18.0.2", "198.18.0.1"))
    b.ping(OVERLAY_A)
    assert not pings(c, OVERLAY_A)

    mode = os.stat(hub.config["control_socket"]).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600

    # A continuous ping to the untouched peer runs through every reload below.
    steady = b.popen("ping", "-c", "150", "-i", "0.05", "-W", "1", OVERLAY_A,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    hub.rewrite(hub_config([B_PEER, C_PEER]))
    a.exec("kill", "-HUP", str(hub.process.pid))              # SIGHUP adds c
    wait_for(lambda: pings(c, OVERLAY_A), 20, message="peer c to come into service after SIGHUP")

    hub.rewrite("interface: {mode: tan}\n")                      # a broken file is refused...
    refused = hub.tool("reload", "-s", hub.config["control_socket"])
    assert refused.returncode != 0 and "interface.mode: must be 'tun' or 'tap'" in refused.stdout + refused.stderr
    assert pings(c, OVERLAY_A)                                   # ...and the old config keeps running

    hub.rewrite(hub_config([B_PEER]))
    removed = hub.tool("reload", "-s", hub.config["control_socket"])
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "1 removed" in removed.stdout
    assert not pings(c, OVERLAY_A)

    output, _ = steady.communicate(timeout=60)
    assert " 0% packet loss" in output, output

    status = hub.tool("status", "-s", hub.config["control_socket"], "--json")
    document = json.loads(status.stdout)
    assert [peer["name"] for peer in document["peers"]] == ["b"]
    peer_b = document["peers"][0]
    assert peer_b["rx_bytes"] > 0 and peer_b["tx_bytes"] > 0 and "latest_handshake" in peer_b
    assert peer_b["endpoint"] == "udp://192.0.2.2:51820"
    text = hub.tool("status", "-s", hub.config["control_socket"]).stdout
    assert "peer: b" in text and "udp://192.0.2.2:51820" in text
    spoke_status = json.loads(spoke.tool("status", "-s", spoke.config["control_socket"], "--json").stdout)
    assert spoke_status["interface"]["name"] == "tr0" and spoke_status["listen"] == ["udp://192.0.2.2:51820"]
    assert [peer["name"] for peer in spoke_status["peers"]] == ["hub"]
    assert spoke_status["peers"][0]["tx_packets"] >= 150 and spoke_status["peers"][0]["rx_packets"] >= 150

    scraped = a.exec("curl", "-sf", "http://127.0.0.1:9109/metrics").stdout
    rx_line = next(line for line in scraped.splitlines() if line.startswith('tunrelay_peer_rx_packets_total{peer="b"}'))
    assert float(rx_line.split()[-1]) >= 150
