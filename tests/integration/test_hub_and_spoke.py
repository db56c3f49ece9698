"""Hub and spoke: spokes A (over TCP) and B (over UDP) each know only the hub H, and reach
each other through H's relay (``forward_between_peers``), in tun and tap, with H's kernel
not forwarding; with ``forward_between_peers: false`` the hub hands A->B packets to its
kernel instead, so they cross only if the kernel forwards them."""

import json
import os

import pytest

from tunrelay.crypto import keys

from .netns import transfer, wait_for
from .test_two_hosts import write_key_file

HUB, SPOKE_A, SPOKE_B = "198.51.100.1", "198.51.100.2", "198.51.100.3"
KEYS = {name: keys.generate_private_key() for name in ("hub", "a", "b")}


def public(name):
    return keys.encode_key(keys.public_key(KEYS[name]))


def config(directory, name, mode, overlay, listen, peers, **extra):
    key_file = write_key_file(os.path.join(str(directory), "hub-spoke-%s.key" % name), KEYS[name])
    result = {"interface": {"name": "tr0", "mode": mode, "mtu": 1400, "addresses": ["%s/24" % overlay]},
              "private_key_file": key_file, "listen": listen, "peers": peers}
    result.update(extra)
    return result


def start_hub_and_spokes(lab, mode, forward_between_peers=True):
    """H=192.0.2.1 (TCP) and 198.18.0.1 (UDP); A dials H over TCP, B over UDP; H's kernel forwards nothing."""
    hub_host, a = lab.underlay(ipv6=False)
    b = lab.third_host(hub_host)
    hub_host.exec("sysctl", "-qw", "net.ipv4.ip_forward=0")
    hub = lab.relay(hub_host, config(
        lab.directory, "hub", mode, HUB, ["tcp://192.0.2.1:51820", "udp://198.18.0.1:51820"],
        [{"name": "a", "public_key": public("a"), "allowed_ips": [SPOKE_A + "/32"]},
         {"name": "b", "public_key": public("b"), "allowed_ips": [SPOKE_B + "/32"]}],
        forward_between_peers=forward_between_peers))
    spoke_peer = {"name": "hub", "public_key": public("hub"), "allowed_ips": ["198.51.100.0/24"]}
    relay_a = lab.relay(a, config(lab.directory, "a", mode, SPOKE_A, [],
                                  [dict(spoke_peer, endpoint="tcp://192.0.2.1:51820")]))
    relay_b = lab.relay(b, config(lab.directory, "b", mode, SPOKE_B, ["udp://198.18.0.2:51820"],
                                  [dict(spoke_peer, endpoint="udp://198.18.0.1:51820")]))
    # Each spoke's first packet to the hub makes the handshake that tells H where it is.
    a.ping(HUB)
    b.ping(HUB)
    return hub_host, a, b, (hub, relay_a, relay_b)


def status(relay):
    result = relay.tool("status", "-s", relay.config["control_socket"], "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def pings_once(host, address):
    return host.exec("ping", "-c", "1", "-W", "1", address, check=False).returncode == 0


@pytest.mark.parametrize("mode", ["tun", "tap"])
def test_spokes_reach_each_other_through_the_hub(lab, tmp_path, mode):
    hub_host, a, b, relays = start_hub_and_spokes(lab, mode)
    hub = relays[0]
    assert hub_host.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    a.ping(SPOKE_B)
    b.ping(SPOKE_A)
    sent, received = transfer(a, b, SPOKE_B, tmp_path, size=5 * 1000 * 1000)
    assert sent == received
    # The hub's relay carried it peer to peer: both spokes' counters show the payload.
    peers = {peer["name"]: peer for peer in status(hub)["peers"]}
    assert peers["a"]["rx_bytes"] > 5 * 1000 * 1000 and peers["b"]["tx_bytes"] > 5 * 1000 * 1000, peers
    assert peers["a"]["transport"] == "tcp" and peers["b"]["transport"] == "udp", peers
    assert "Traceback" not in "".join(relay.log() for relay in relays)


def test_without_forward_between_peers_the_hub_kernel_decides(lab):
    """tun, forward_between_peers false: A->B goes to H's kernel, which drops it while
    ip_forward=0 (the packets show up as device writes) and routes it back out when 1."""
    hub_host, a, b, relays = start_hub_and_spokes(lab, "tun", forward_between_peers=False)
    hub = relays[0]
    written_before = status(hub)["device"]["tx_packets"]
    result = a.exec("ping", "-c", "5", "-i", "0.2", "-W", "1", SPOKE_B, check=False)
    assert result.returncode != 0 and " 100% packet loss" in result.stdout, result.stdout
    # The five echo requests were written to H's device (to its kernel), not sent to B.
    assert status(hub)["device"]["tx_packets"] - written_before >= 5
    assert {peer["name"]: peer["tx_packets"] for peer in status(hub)["peers"]}["b"] >= 1  # B's session is up

    hub_host.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
    wait_for(lambda: pings_once(a, SPOKE_B), 20, message="A to reach B once H's kernel forwards")
    b.ping(SPOKE_A)
