"""showconf's YAML reads back as the configuration it came from, and never holds a key."""

import textwrap

from tunrelay.config import Secrets, parse
from tunrelay.config_dump import dump
from tunrelay.crypto import keys

PUBLIC = keys.encode_key(keys.public_key(keys.generate_private_key()))

EVERYTHING = textwrap.dedent("""\
    interface: {name: tr3, mode: tun, mtu: 9000, addresses: [198.51.100.1/24, "2001:db8:1::1/64"],
                routes: [203.0.113.0/24], offload: true}
    private_key_file: /etc/tunrelay/a.key
    control_socket: /run/tunrelay/x.sock
    uapi_socket: false
    fwmark: 51820
    listen: ["udp://0.0.0.0:51820", "tcp://[2001:db8::1]:443", "ethernet://eth0"]
    metrics: "127.0.0.1:9109"
    idle_timeout: 60
    max_frame_size: 9000
    forward_between_peers: false
    dead_peer_timeout: 30.5
    responder:
      address: 198.51.100.9
      services: {7: echo, 80: http, 9: discard}
      faults: {seed: 3, drop: 0.05, duplicate: 0.01, reorder: 0.02}
    peers:
      - name: b
        public_key: "%s"
        endpoint: "udp://b.example:51820"
        allowed_ips: [198.51.100.2/32, 224.0.0.5/32]
        keepalive: 25
        preshared_key_file: /etc/tunrelay/b.psk
        offload: true
      - name: c
        public_key: "%s"
        endpoint: "ethernet://eth0/02:00:00:00:00:02"
    """) % (PUBLIC, PUBLIC.replace(PUBLIC[0], "A" if PUBLIC[0] != "A" else "B", 1))


def test_every_key_round_trips():
    config = parse(EVERYTHING)
    assert parse(dump(config)) == config


def test_defaults_are_left_out_and_plaintext_round_trips():
    config = parse("interface: {name: tr0}\nplaintext: true\npeers: [{name: p, endpoint: 'tcp://192.0.2.2:1'}]\n")
    text = dump(config)
    assert "uapi_socket" not in text and "control_socket" not in text and "idle_timeout" not in text
    assert parse(text) == config


def test_relative_key_paths_are_written_absolute(tmp_path):
    source = tmp_path / "site.yaml"
    config = parse("interface: {}\nprivate_key_file: a.key\n", source=str(source))
    assert "private_key_file: %s\n" % (tmp_path / "a.key") in dump(config)


def test_keys_set_over_the_uapi_are_named_in_comments_and_never_written():
    private, psk = keys.generate_private_key(), bytes(range(32))
    config = parse("interface: {}\nprivate_key_file: a.key\npeers: [{name: b, public_key: '%s'}]\n" % PUBLIC)
    from dataclasses import replace
    config = replace(config, private_key_file=None)
    text = dump(config, Secrets(private, {"b": psk}))
    assert keys.encode_key(private) not in text and private.hex() not in text and psk.hex() not in text
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert len(comments) == 2 and "set over the UAPI" in comments[0] and "peers b" in comments[1]
