"""A UAPI set replayed on (RelayConfig, Secrets): wireguard-go's meaning for every operation."""

import ipaddress
import textwrap

import pytest

from tunrelay.config import Secrets, default_peer_name, parse
from tunrelay.crypto import keys
from tunrelay.uapi.apply import apply_set, with_udp_port
from tunrelay.uapi.protocol import ERRNO_INVALID, UapiError, parse_set

OWN = keys.generate_private_key()
B, C, D = (keys.generate_private_key() for _ in range(3))
PSK = bytes(range(32))


def public(private):
    return keys.public_key(private)


def hexkey(private):
    return public(private).hex()


CONFIG = parse(textwrap.dedent("""\
    interface: {name: tr0, addresses: [198.51.100.1/24]}
    private_key_file: /etc/tunrelay/own.key
    listen: ["udp://192.0.2.1:51820", "tcp://192.0.2.1:51820"]
    peers:
      - name: site-b
        public_key: "%s"
        endpoint: "udp://192.0.2.2:51820"
        allowed_ips: [198.51.100.2/32, 203.0.113.0/24]
        keepalive: 25
        preshared_key_file: b.psk
      - name: site-c
        public_key: "%s"
        allowed_ips: [198.51.100.3/32, 224.0.0.5/32]
        offload: false
    """) % (keys.encode_key(public(B)), keys.encode_key(public(C))), source="/etc/tunrelay/site.yaml")
SECRETS = Secrets(OWN, {"site-b": PSK})


def applied(*lines, config=CONFIG, secrets=SECRETS):
    return apply_set(config, secrets, parse_set(list(lines)))


def by_name(config):
    return {peer.name: peer for peer in config.peers}


def nets(*texts):
    return tuple(ipaddress.ip_network(text) for text in texts)


def test_an_unchanged_peer_keeps_its_very_config_object():
    # What wg syncconf sends for site-b when its file agrees with the running state.
    config, secrets = applied("public_key=" + hexkey(B), "preshared_key=" + PSK.hex(), "endpoint=192.0.2.2:51820",
                              "persistent_keepalive_interval=25", "replace_allowed_ips=true",
                              "allowed_ip=203.0.113.0/24", "allowed_ip=198.51.100.2/32")
    assert config.peers[0] is CONFIG.peers[0] and config.peers[1] is CONFIG.peers[1]
    assert config == CONFIG and secrets == SECRETS


def test_a_new_peer_gets_the_stable_default_name_and_udp_endpoint():
    config, _ = applied("public_key=" + hexkey(D), "endpoint=[2001:db8::4]:51820", "allowed_ip=198.51.100.4/32")
    peer = config.peers[2]
    assert peer.name == default_peer_name(public(D)) == "wg-" + keys.encode_key(public(D)).replace(
        "+", "-").replace("/", "_")[:8]
    assert peer.public_key == keys.encode_key(public(D)) and str(peer.endpoint) == "udp://[2001:db8::4]:51820"
    assert peer.allowed_ips == nets("198.51.100.4/32") and peer.keepalive is None


def test_remove_and_update_only():
    config, secrets = applied("public_key=" + hexkey(B), "remove=true", "public_key=" + hexkey(D), "update_only=true",
                              "allowed_ip=198.51.100.4/32")
    assert list(by_name(config)) == ["site-c"] and secrets.preshared_keys == {}
    config, _ = applied("public_key=" + hexkey(C), "update_only=true", "persistent_keepalive_interval=5")
    assert by_name(config)["site-c"].keepalive == 5


def test_replace_peers_then_adding_one_back_keeps_its_name_but_not_its_old_fields():
    config, secrets = applied("replace_peers=true", "public_key=" + hexkey(B), "allowed_ip=198.51.100.2/32")
    [peer] = config.peers
    assert peer.name == "site-b" and peer.endpoint is None and peer.keepalive is None
    assert peer.allowed_ips == nets("198.51.100.2/32") and peer.preshared_key_file is None
    assert secrets.preshared_keys == {}


def test_an_allowed_ip_moves_from_its_owner_except_a_shared_multicast_group():
    config, _ = applied("public_key=" + hexkey(C), "allowed_ip=203.0.113.0/24",
                        "public_key=" + hexkey(B), "allowed_ip=224.0.0.5/32")
    peers = by_name(config)
    assert peers["site-b"].allowed_ips == nets("198.51.100.2/32", "224.0.0.5/32")
    assert peers["site-c"].allowed_ips == nets("198.51.100.3/32", "224.0.0.5/32", "203.0.113.0/24")


def test_replace_allowed_ips_and_removing_one_prefix():
    config, _ = applied("public_key=" + hexkey(B), "replace_allowed_ips=true", "allowed_ip=198.51.100.22/32",
                        "public_key=" + hexkey(C), "allowed_ip=-198.51.100.3/32", "allowed_ip=-198.51.100.99/32")
    peers = by_name(config)
    assert peers["site-b"].allowed_ips == nets("198.51.100.22/32")
    assert peers["site-c"].allowed_ips == nets("224.0.0.5/32")


def test_a_new_preshared_key_lives_in_the_secrets_only_and_zero_removes_it():
    other = bytes(range(1, 33))
    config, secrets = applied("public_key=" + hexkey(B), "preshared_key=" + other.hex())
    assert secrets.preshared_keys == {"site-b": other} and by_name(config)["site-b"].preshared_key_file is None
    config, secrets = applied("public_key=" + hexkey(B), "preshared_key=" + "00" * 32)
    assert secrets.preshared_keys == {} and by_name(config)["site-b"].preshared_key_file is None


def test_a_new_private_key_has_no_file_and_removes_the_peer_that_has_its_public_key():
    config, secrets = applied("private_key=" + B.hex())
    assert secrets.private_key == B and config.private_key_file is None
    assert list(by_name(config)) == ["site-c"]
    same, _ = applied("private_key=" + OWN.hex())
    assert same.private_key_file == CONFIG.private_key_file      # the same key is no change
    removed, secrets = applied("private_key=" + "00" * 32)
    assert secrets.private_key is None and removed.private_key_file is None


def test_a_section_for_the_devices_own_key_configures_nothing():
    config, _ = applied("public_key=" + hexkey(OWN), "allowed_ip=198.51.100.9/32")
    assert config == CONFIG


def test_listen_port_fwmark_and_the_udp_listen_addresses():
    config, _ = applied("listen_port=40000", "fwmark=51820")
    assert [str(address) for address in config.listen] == ["udp://192.0.2.1:40000", "tcp://192.0.2.1:51820"]
    assert config.fwmark == 51820
    assert [str(a) for a in with_udp_port((), 51820)] == ["udp://0.0.0.0:51820"]
    assert [str(a) for a in with_udp_port(CONFIG.listen, 0)] == ["tcp://192.0.2.1:51820"]


def test_a_low_order_public_key_is_einval_and_changes_nothing():
    with pytest.raises(UapiError) as caught:
        applied("public_key=" + "00" * 32)
    assert caught.value.errno == ERRNO_INVALID and caught.value.reason == "bad_key"


def test_plaintext_relays_take_no_set():
    plain = parse("interface: {}\nplaintext: true\n")
    with pytest.raises(UapiError):
        applied("listen_port=1", config=plain, secrets=Secrets())


def test_default_names_never_collide():
    first = default_peer_name(public(D))
    assert default_peer_name(public(D), taken={first}) == "wg-" + keys.encode_key(public(D)).replace(
        "+", "-").replace("/", "_").rstrip("=")


def test_wg_endpoint_replaces_an_endpoint_list_and_the_same_endpoint_keeps_it():
    from dataclasses import replace
    from tunrelay.endpoints import parse_endpoint

    fallback = parse_endpoint("tcp://192.0.2.2:51820")
    peers = tuple(replace(peer, fallback_endpoints=(fallback,)) if peer.name == "site-b" else peer
                  for peer in CONFIG.peers)
    config = replace(CONFIG, peers=peers)
    same, _ = applied("public_key=%s" % hexkey(B), "endpoint=192.0.2.2:51820", config=config)
    assert by_name(same)["site-b"].endpoints == (parse_endpoint("udp://192.0.2.2:51820"), fallback)
    moved, _ = applied("public_key=%s" % hexkey(B), "endpoint=192.0.2.9:51820", config=config)
    assert by_name(moved)["site-b"].endpoints == (parse_endpoint("udp://192.0.2.9:51820"),)
