"""The real wg(8) drives a running tunrelay over the UAPI: show, showconf, set, remove, syncconf.

tunrelay (twistd, from YAML) runs in A with peer B, a stock wireguard-go. wg adds C, another
wireguard-go on a second underlay, which then carries traffic; syncconf applies a diff (C out,
D in) while 200 pings to the untouched B lose none; bad input gets wireguard-go's errno and
changes nothing. tunrelay status shows every change, and showconf prints it as YAML.
"""

import json
import os
import subprocess

import yaml

from tunrelay.config import default_peer_name
from tunrelay.crypto import keys

from .conftest import require_tool
from .netns import unique_name, wait_for
from .test_startup import run_twistd
from .test_two_hosts import OVERLAY_A, OVERLAY_B, write_key_file
from .wireguard import public, start_wireguard_go, uapi_exchange

OVERLAY_C = "198.51.100.3"


def pings(host, address):
    return host.exec("ping", "-c", "1", "-W", "1", address, check=False).returncode == 0


def status(relay):
    result = relay.tool("status", "-s", relay.config["control_socket"], "--json")
    assert result.returncode == 0, result.stderr
    return {peer["name"]: peer for peer in json.loads(result.stdout)["peers"]}


def relay_and_wireguard_go_b(lab, a, b, directory, relay_key, b_key, listen):
    """tunrelay from YAML in A with peer site-b, a wireguard-go in B; returns (relay, B's device)."""
    relay = lab.relay(a, {
        "interface": {"name": "tr0", "mode": "tun", "mtu": 1420, "addresses": ["198.51.100.1/24"]},
        "private_key_file": write_key_file(os.path.join(directory, "relay.key"), relay_key),
        "listen": [listen],
        "peers": [{"name": "site-b", "public_key": public(b_key), "endpoint": "udp://192.0.2.2:51820",
                   "allowed_ips": ["198.51.100.2/32"]}]})
    device = unique_name("wb")
    start_wireguard_go(b, directory, device, b_key, 51820, OVERLAY_B + "/24",
                       [(relay_key, "198.51.100.1/32", "192.0.2.1:51820")])
    return relay, device


def test_wg_show_set_remove_and_syncconf_on_a_live_relay(lab, tmp_path):
    require_tool("wireguard-go")
    require_tool("wg")
    a, b = lab.underlay()
    c = lab.third_host(a)
    relay_key, b_key, c_key, d_key = (keys.generate_private_key() for _ in range(4))
    directory = str(tmp_path)
    relay, _ = relay_and_wireguard_go_b(lab, a, b, directory, relay_key, b_key, "udp://0.0.0.0:51820")
    start_wireguard_go(c, directory, unique_name("wc"), c_key, 51820, OVERLAY_C + "/24",
                       [(relay_key, "198.51.100.1/32", "198.18.0.1:51820")])
    a.ping(OVERLAY_B)

    # wg show: the YAML peer, with its endpoint, latest handshake and transfer.
    shown = relay.wg("show", "{}").stdout
    assert "interface: %s" % relay.wg_name in shown and "listening port: 51820" in shown
    assert "peer: %s" % public(b_key) in shown and "endpoint: 192.0.2.2:51820" in shown
    assert "latest handshake:" in shown and "transfer:" in shown and "received" in shown
    assert relay.wg("show", "{}", "public-key").stdout.strip() == public(relay_key)

    # wg set adds C, which then carries traffic, and tunrelay status sees it.
    relay.wg("set", "{}", "peer", public(c_key), "allowed-ips", OVERLAY_C + "/32", "endpoint", "198.18.0.2:51820")
    a.ping(OVERLAY_C)
    c_name = default_peer_name(keys.public_key(c_key))
    assert status(relay)[c_name]["allowed_ips"] == [OVERLAY_C + "/32"]
    assert status(relay)[c_name]["rx_packets"] > 0

    # wg showconf: a file wg itself can read back, with our key.
    showconf = relay.wg("showconf", "{}").stdout
    assert "PrivateKey = %s" % keys.encode_key(relay_key) in showconf and "ListenPort = 51820" in showconf
    assert showconf.count("[Peer]") == 2 and "Endpoint = 198.18.0.2:51820" in showconf

    # wg syncconf with B untouched, C gone and D new, while 200 pings go to B.
    sync_file = os.path.join(directory, "sync.conf")
    with open(sync_file, "w") as stream:
        stream.write("[Interface]\nListenPort = 51820\nPrivateKey = %s\n\n[Peer]\nPublicKey = %s\n"
                     "AllowedIPs = 198.51.100.2/32\nEndpoint = 192.0.2.2:51820\n\n[Peer]\nPublicKey = %s\n"
                     "AllowedIPs = 198.51.100.4/32\n" % (keys.encode_key(relay_key), public(b_key), public(d_key)))
    steady = a.popen("ping", "-c", "200", "-i", "0.05", "-W", "1", OVERLAY_B,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: status(relay)["site-b"]["rx_packets"] > 20, 10, message="the steady pings to B to begin")
    relay.wg("syncconf", "{}", sync_file)
    output, _ = steady.communicate(timeout=60)
    assert "200 received" in output and " 0% packet loss" in output, output
    peers = status(relay)
    assert set(peers) == {"site-b", default_peer_name(keys.public_key(d_key))}
    assert not pings(a, OVERLAY_C)
    assert "peer: %s" % public(c_key) not in relay.wg("show", "{}").stdout

    # wg set ... remove.
    relay.wg("set", "{}", "peer", public(d_key), "remove")
    assert set(status(relay)) == {"site-b"}

    # Bad input: wireguard-go's errno, counted, nothing changed, the relay carries on.
    socket_path = relay.config["uapi_socket"]
    assert uapi_exchange(socket_path, b"set=1\nlisten_port=70000\n\n") == b"errno=-22\n\n"
    assert uapi_exchange(socket_path, b"set=1\nlisten_port\n\n") == b"errno=-71\n\n"
    assert uapi_exchange(socket_path, b"set=1\npublic_key=%s\nallowed_ip=bogus\n\n"
                         % keys.public_key(d_key).hex().encode()) == b"errno=-22\n\n"
    rejected = relay.wg("set", "{}", "peer", public(d_key), "allowed-ips", OVERLAY_B + "/32", "endpoint",
                        "192.0.2.99:0", check=False)
    assert rejected.returncode != 0
    assert set(status(relay)) == {"site-b"} and status(relay)["site-b"]["allowed_ips"] == [OVERLAY_B + "/32"]
    document = json.loads(relay.tool("status", "-s", relay.config["control_socket"], "--json").stdout)
    assert document["drops"]["uapi_bad_value"] >= 3 and document["drops"]["uapi_malformed_line"] == 1
    assert "uapi_bad_value" in relay.log()
    a.ping(OVERLAY_B)

    # tunrelay showconf prints the running state (the file still names only site-b, as at start).
    shown = yaml.safe_load(relay.tool("showconf", "-s", relay.config["control_socket"], check=True).stdout)
    assert [peer["name"] for peer in shown["peers"]] == ["site-b"]
    assert shown["private_key_file"] == relay.config["private_key_file"]
    assert "Traceback" not in relay.log()


def test_listen_port_and_private_key_change_over_the_uapi_and_a_reload_restores_the_file(lab, tmp_path):
    """wg set listen-port rebinds while a session lives on; wg set private-key makes B's old
    idea of us useless until B learns the new key; SIGHUP re-reads the file over both."""
    require_tool("wireguard-go")
    require_tool("wg")
    a, b = lab.underlay()
    relay_key, b_key, new_key = (keys.generate_private_key() for _ in range(3))
    directory = str(tmp_path)
    relay, go_name = relay_and_wireguard_go_b(lab, a, b, directory, relay_key, b_key, "udp://192.0.2.1:51820")
    a.ping(OVERLAY_B)

    relay.wg("set", "{}", "listen-port", "51999")
    assert relay.wg("show", "{}", "listen-port").stdout.strip() == "51999"
    assert ":51999 " in a.exec("ss", "-ulnH").stdout and ":51820 " not in a.exec("ss", "-ulnH").stdout
    a.ping(OVERLAY_B)                        # the session moved to the new socket; B roams to it
    b.ping(OVERLAY_A)

    key_path = write_key_file(os.path.join(directory, "new.key"), new_key)
    relay.wg("set", "{}", "private-key", key_path)
    assert relay.wg("show", "{}", "public-key").stdout.strip() == public(new_key)
    b.exec("wg", "set", go_name, "peer", public(relay_key), "remove")
    b.exec("wg", "set", go_name, "peer", public(new_key), "allowed-ips", "198.51.100.1/32",
           "endpoint", "192.0.2.1:51999")
    a.ping(OVERLAY_B)

    assert relay.tool("reload", "-s", relay.config["control_socket"]).returncode == 0
    assert relay.wg("show", "{}", "public-key").stdout.strip() == public(relay_key)
    assert relay.wg("show", "{}", "listen-port").stdout.strip() == "51820"
    assert "Traceback" not in relay.log()


def test_two_tr0_relays_in_two_namespaces_need_two_uapi_sockets(lab, tmp_path):
    """Namespaces share /var/run/wireguard: the second relay on a taken socket is refused with one
    line naming uapi_socket; on its own socket it runs beside the first, and wg reaches each."""
    require_tool("wg")
    a, b = lab.underlay()
    directory = str(tmp_path)
    shared = "/var/run/wireguard/%s.sock" % unique_name("tr")

    def config(host_last, socket_path):
        return {"interface": {"name": "tr0", "mode": "tun", "addresses": ["198.51.100.%d/24" % host_last]},
                "private_key_file": write_key_file(os.path.join(directory, "k%d.key" % host_last),
                                                   keys.generate_private_key()),
                "uapi_socket": socket_path}

    first = lab.relay(a, config(1, shared))
    refused = run_twistd(b, tmp_path, dict(config(2, shared), control_socket=os.path.join(directory, "b.sock")),
                         "--pidfile=")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "tunrelay: cannot start: UAPI socket %s is in use by another running WireGuard interface (a relay or "
        "wireguard-go of that name, perhaps in another network namespace); stop it, or set uapi_socket to another "
        "path (wg(8) then calls this relay by the file's name) or to false" % shared]
    assert not b.has_link("tr0")
    second = lab.relay(b, config(2, "/var/run/wireguard/%s.sock" % unique_name("tr")))
    assert first.wg("show", "{}", "public-key").stdout != second.wg("show", "{}", "public-key").stdout
    assert a.has_link("tr0") and b.has_link("tr0")
