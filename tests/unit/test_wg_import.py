"""tunrelay import: a wg-quick file becomes an equivalent config; what cannot be expressed is one line each."""

import os
import stat
import textwrap

import pytest

from tunrelay import cli
from tunrelay.config import default_peer_name, load, load_secrets
from tunrelay.crypto import keys

PRIVATE, PEER, OTHER = (keys.generate_private_key() for _ in range(3))
PSK = os.urandom(32)


def encoded(key):
    return keys.encode_key(key)


WG0 = textwrap.dedent("""\
    # site A, as wg-quick reads it
    [Interface]
    PrivateKey = %s
    Address = 198.51.100.1/24, 2001:db8:1::1/64
    ListenPort = 51820
    FwMark = 0x10
    DNS = 192.0.2.53, example.internal
    MTU = 1400
    SaveConfig = false

    [peer]
    publickey = %s
    PresharedKey = %s
    AllowedIPs = 198.51.100.2/32, 203.0.113.7/24
    AllowedIPs = 2001:db8:2::/48   # a second line adds to the list
    Endpoint = [2001:db8::2]:51820
    PersistentKeepalive = 25

    [Peer]
    PublicKey = %s
    AllowedIPs = 198.51.100.3
    Endpoint = host-c.example:51821
    PersistentKeepalive = off
    """) % (encoded(PRIVATE), encoded(keys.public_key(PEER)), encoded(PSK), encoded(keys.public_key(OTHER)))


def run_import(tmp_path, text, name="wg0.conf"):
    source = tmp_path / name
    source.write_text(text)
    code = cli.main(["import", str(source), "--output", str(tmp_path / "site.yaml")])
    return code, tmp_path / "site.yaml"


def test_every_key_becomes_its_tunrelay_equivalent(tmp_path, capsys):
    code, output = run_import(tmp_path, WG0)
    assert code == 0, capsys.readouterr().err
    config = load(str(output))
    secrets = load_secrets(config)
    assert config.interface.name == "wg0" and config.interface.mtu == 1400
    assert [str(a) for a in config.interface.addresses] == ["198.51.100.1/24", "2001:db8:1::1/64"]
    # wg-quick routes what the addresses' subnets do not already cover.
    assert [str(r) for r in config.interface.routes] == ["203.0.113.0/24", "2001:db8:2::/48"]
    assert [str(a) for a in config.listen] == ["udp://0.0.0.0:51820"] and config.fwmark == 16
    assert config.uapi_socket == "/var/run/wireguard/wg0.sock"
    b, c = config.peers
    assert b.name == default_peer_name(keys.public_key(PEER)) and b.public_key == encoded(keys.public_key(PEER))
    assert [str(n) for n in b.allowed_ips] == ["198.51.100.2/32", "203.0.113.0/24", "2001:db8:2::/48"]
    assert str(b.endpoint) == "udp://[2001:db8::2]:51820" and b.keepalive == 25
    assert str(c.endpoint) == "udp://host-c.example:51821" and c.keepalive is None
    assert [str(n) for n in c.allowed_ips] == ["198.51.100.3/32"]
    assert secrets.private_key == PRIVATE and secrets.preshared_keys == {b.name: PSK}
    text = output.read_text()
    assert "# DNS = 192.0.2.53, example.internal: tunrelay does not configure the resolver" in text
    assert encoded(PRIVATE) not in text and encoded(PSK) not in text
    for path in (tmp_path / "site.key", tmp_path / ("site-%s.psk" % b.name)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli.main(["check", "-c", str(output)]) == 0


@pytest.mark.parametrize("line, expected", [
    ("PostUp = iptables -A FORWARD -i %i -j ACCEPT", "postup: hooks run shell commands"),
    ("Table = 1234", "Table: only auto and off can be expressed"),
    ("SaveConfig = true", "SaveConfig: tunrelay never writes its configuration back"),
    ("MTU = 100", "MTU: must be a number from 576 to 65535"),
    ("Bogus = 1", "bogus: unknown [Interface] key"),
])
def test_what_cannot_be_expressed_is_one_line_naming_the_line(tmp_path, capsys, line, expected):
    text = WG0.replace("SaveConfig = false", line) if line.startswith("SaveConfig") else \
        WG0.replace("MTU = 1400", line) if line.startswith("MTU") else WG0.replace("SaveConfig = false\n", line + "\n")
    code, output = run_import(tmp_path, text)
    assert code == 2 and not output.exists() and not (tmp_path / "site.key").exists()
    errors = capsys.readouterr().err.strip().split("\n")
    number = text.split("\n").index(line) + 1
    assert len(errors) == 1 and errors[0].startswith(
        "tunrelay: import error: %s/wg0.conf:%d: %s" % (tmp_path, number, expected)), errors


@pytest.mark.parametrize("peer_line, expected", [
    ("AllowedIPs = 0.0.0.0/0", "AllowedIPs: 0.0.0.0/0 is a default route"),
    ("AllowedIPs = 198.51.100.2/32", "AllowedIPs: 198.51.100.2/32 is already allowed for the peer at line 11"),
    ("Endpoint = nowhere", "Endpoint: 'nowhere' needs host:port"),
    ("PersistentKeepalive = soon", "PersistentKeepalive: must be a number from 0 to 65535"),
    ("PublicKey = AAAA", "PublicKey: given twice"),
])
def test_peer_problems_name_their_line(tmp_path, capsys, peer_line, expected):
    extra = "[Peer]\nPublicKey = %s\n%s\n" % (encoded(keys.public_key(keys.generate_private_key())), peer_line)
    code, _ = run_import(tmp_path, WG0 + extra)
    assert code == 2
    assert ("wg0.conf:%d: %s" % (len(WG0.split("\n")) + 2, expected)) in capsys.readouterr().err


def test_a_default_route_is_fine_with_table_off(tmp_path):
    text = WG0.replace("MTU = 1400", "MTU = 1400\nTable = off") + "AllowedIPs = 0.0.0.0/0\n"
    code, output = run_import(tmp_path, text)
    assert code == 0 and load(str(output)).interface.routes == ()


def test_the_file_must_be_named_like_an_interface(tmp_path, capsys):
    code, _ = run_import(tmp_path, WG0, name="my site.conf")
    assert code == 2 and "the name must be INTERFACE.conf" in capsys.readouterr().err
