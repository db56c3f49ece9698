"""Two relays on two namespaces, linked over every transport, plaintext and encrypted:
ping both ways, move 20 MB."""

import json
import os

import pytest

from tunrelay.crypto import keys

from .netns import transfer

RELAY_KEYS = {1: keys.generate_private_key(), 2: keys.generate_private_key()}

OVERLAY_A, OVERLAY_B = "198.51.100.1", "198.51.100.2"


def relay_config(mode, overlay_last, listen, peer_endpoint=None, mtu=1400, **extra):
    peer = {"name": "other", "allowed_ips": ["198.51.100.%d/32" % (3 - overlay_last)]}
    if peer_endpoint:
        peer["endpoint"] = peer_endpoint
    config = {
        "interface": {"name": "tr0", "mode": mode, "mtu": mtu,
                      "addresses": ["198.51.100.%d/24" % overlay_last]},
        "plaintext": True,
        "listen": listen,
        "peers": [peer],
    }
    config.update(extra)
    return config


def write_key_file(path, key):
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(keys.encode_key(key) + "\n")
    return path


def encrypted(config, directory, overlay_last):
    """The same relay config in WireGuard mode: our key file, the other relay's public key."""
    path = write_key_file(os.path.join(str(directory), "relay%d.key" % overlay_last), RELAY_KEYS[overlay_last])
    other_public = keys.encode_key(keys.public_key(RELAY_KEYS[3 - overlay_last]))
    return dict(config, plaintext=False, private_key_file=path,
                peers=[dict(peer, public_key=other_public) for peer in config["peers"]])


# (mode, transport of A's listen, B's endpoint to A, B's own listen)
CASES = {
    "tun-tcp": ("tun", ["tcp://192.0.2.1:51820"], "tcp://192.0.2.1:51820", []),
    "tun-udp": ("tun", ["udp://192.0.2.1:51820"], "udp://192.0.2.1:51820", ["udp://192.0.2.2:51820"]),
    "tap-tcp": ("tap", ["tcp://192.0.2.1:51820"], "tcp://192.0.2.1:51820", []),
    "tap-udp": ("tap", ["udp://192.0.2.1:51820"], "udp://192.0.2.1:51820", ["udp://192.0.2.2:51820"]),
    "tap-ethernet": ("tap", ["ethernet://u0"], "ethernet://u0/02:00:00:00:00:01", ["ethernet://u0"]),
    "tun-udp-ipv6-underlay": ("tun", ["udp://[2001:db8::1]:51820"], "udp://[2001:db8::1]:51820",
                              ["udp://[2001:db8::2]:51820"]),
    "tap-tcp-ipv6-underlay": ("tap", ["tcp://[2001:db8::1]:51820"], "tcp://[2001:db8::1]:51820", []),
}


def start_pair(lab, mode, a_listen, b_endpoint, b_listen, a_extra=(), b_extra=(), secure=False):
    a, b = lab.underlay()
    config_a, config_b = relay_config(mode, 1, a_listen), relay_config(mode, 2, b_listen, b_endpoint)
    if secure:
        config_a, config_b = encrypted(config_a, lab.directory, 1), encrypted(config_b, lab.directory, 2)
    relay_a = lab.relay(a, config_a, extra_twistd=a_extra)
    relay_b = lab.relay(b, config_b, extra_twistd=b_extra)
    return a, b, relay_a, relay_b


@pytest.mark.parametrize("security", ["plaintext", "encrypted"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_ping_and_20mb_transfer(lab, tmp_path, case, security):
    mode, a_listen, b_endpoint, b_listen = CASES[case]
    a, b, relay_a, relay_b = start_pair(lab, mode, a_listen, b_endpoint, b_listen, secure=security == "encrypted")
    b.ping(OVERLAY_A)
    a.ping(OVERLAY_B)
    sent, received = transfer(a, b, OVERLAY_B, tmp_path)
    assert sent == received
    assert "Traceback" not in relay_a.log() + relay_b.log()


def test_traffic_flows_after_twistd_drops_privileges(lab, tmp_path):
    """Device and sockets are opened before -u/-g take effect; reconnects work as nobody."""
    unprivileged = ("-u", "nobody", "-g", "nogroup")
    a, b, relay_a, relay_b = start_pair(lab, "tun", ["tcp://192.0.2.1:51820"], "tcp://192.0.2.1:51820", [],
                                        a_extra=unprivileged, b_extra=unprivileged, secure=True)
    b.ping(OVERLAY_A)
    for relay in (relay_a, relay_b):
        assert relay.effective_uid() != 0
    relay_a.stop()
    assert not a.has_link("tr0")  # removed although A ran as nobody: closing the fd deletes it
    lab.relay(a, encrypted(relay_config("tun", 1, ["tcp://192.0.2.1:51820"]), lab.directory, 1))
    b.ping(OVERLAY_A, timeout=40)  # B's ClientService reconnected while running as nobody
    sent, received = transfer(b, a, OVERLAY_A, tmp_path, size=2 * 1000 * 1000)
    assert sent == received


def test_stopping_a_relay_removes_its_device_addresses_and_routes(lab):
    a, _ = lab.underlay()
    config = relay_config("tun", 1, [])
    config["interface"].update(addresses=["198.51.100.1/24", "2001:db8:1::1/64"], routes=["203.0.113.0/24"])
    relay = lab.relay(a, config)
    link = a.ip("addr", "show", "tr0").stdout
    assert "198.51.100.1/24" in link and "2001:db8:1::1/64" in link and "mtu 1400" in link and ",UP" in link
    assert "dev tr0" in a.ip("route", "show", "203.0.113.0/24").stdout
    relay.stop()
    assert "Server Shut Down" in relay.log() and "Traceback" not in relay.log()
    assert not a.has_link("tr0")
    assert a.ip("route", "show", "203.0.113.0/24").stdout.strip() == ""


@pytest.mark.parametrize("case, whole", [("tun-tcp", True), ("tun-udp", True), ("tun-udp", False)],
                         ids=["tcp-super-packets", "udp-offload-peer", "udp-segments"])
def test_offload_devices(lab, tmp_path, case, whole):
    """IFF_VNET_HDR + TSO on both devices (``interface.offload: true``). Between offload
    peers super-packets cross TCP whole; over UDP, and to a peer without ``offload``, each one
    is cut into MTU-sized segments in userspace, and the receiving relay writes them to its
    device coalesced again. A's own kernel also talks TCP to A's responder, which must only
    ever see finished segments."""
    import hashlib

    from tunrelay.responder.services import deterministic_bytes

    from .netns import sha256_of

    mode, a_listen, b_endpoint, b_listen = CASES[case]
    a, b = lab.underlay()
    config_a = encrypted(relay_config(mode, 1, a_listen), tmp_path, 1)
    config_b = encrypted(relay_config(mode, 2, b_listen, b_endpoint), tmp_path, 2)
    config_a["responder"] = {"address": "198.51.100.9", "services": {80: "http"}}
    for config in (config_a, config_b):
        config["interface"]["offload"] = True
        config["peers"][0]["offload"] = whole
    relay_a, relay_b = lab.relay(a, config_a), lab.relay(b, config_b)
    b.ping(OVERLAY_A)
    a.ping(OVERLAY_B)
    for sender, receiver, address, port in ((a, b, OVERLAY_B, 5001), (b, a, OVERLAY_A, 5002)):
        sent, received = transfer(sender, receiver, address, tmp_path, port=port)
        assert sent == received
    downloaded = str(tmp_path / "responder.bin")
    a.exec("curl", "-sf", "--max-time", "60", "-o", downloaded, "http://198.51.100.9/bytes/%d" % (4 << 20), timeout=90)
    assert sha256_of(downloaded) == hashlib.sha256(deterministic_bytes(4 << 20)).hexdigest()
    for relay in (relay_a, relay_b):
        log = relay.log()
        assert "Traceback" not in log and "bad_gso" not in log and "gso_not_tcp" not in log
    # B's relay received A's 20 MB: as super-packets over TCP its frames average far above the
    # MTU; otherwise they are MTU-sized on the wire and coalesced again for B's device.
    state = json.loads(relay_b.tool("status", "-s", relay_b.config["control_socket"], "--json").stdout)
    peer, device = state["peers"][0], state["device"]
    average = peer["rx_bytes"] / peer["rx_packets"]
    if whole and case == "tun-tcp":
        assert average > 4 * 1400, peer
    else:
        assert average <= 1400 + 10 and device["tx_writes"] * 4 < device["tx_packets"], (peer, device)
