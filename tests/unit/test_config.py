"""Config contract: the issue's exact keys parse; every mistake is one line with path and line."""

import ipaddress
import textwrap

import pytest

from tunrelay import cli
from tunrelay.config import ConfigError, load, parse

CONTRACT = textwrap.dedent("""\
    interface:
      name: tr0
      mode: tun                      # tun | tap
      mtu: 1420
      addresses: [198.51.100.1/24, "2001:db8:1::1/64"]
      routes: [203.0.113.0/24]       # optional
    plaintext: true
    private_key_file: a.key
    control_socket: /run/tunrelay/tr0.sock
    listen: ["tcp://192.0.2.1:51820", "udp://[2001:db8::1]:51820", "ethernet://eth0"]
    peers:
      - name: b
        public_key: "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
        endpoint: "tcp://192.0.2.2:51820"
        allowed_ips: [198.51.100.2/32]
        keepalive: 25
      - name: c
        endpoint: "ethernet://eth0/02:00:00:00:00:02"
        allowed_ips: [198.51.100.3/32]
    """)


def problems_of(text):
    with pytest.raises(ConfigError) as caught:
        parse(text, source="t.yaml")
    return caught.value.problems


def test_contract_keys_parse():
    config = parse(CONTRACT)
    assert config.interface.name == "tr0" and config.interface.mode == "tun" and config.interface.mtu == 1420
    assert config.interface.addresses == (ipaddress.ip_interface("198.51.100.1/24"),
                                          ipaddress.ip_interface("2001:db8:1::1/64"))
    assert config.interface.routes == (ipaddress.ip_network("203.0.113.0/24"),)
    assert [str(address) for address in config.listen] == [
        "tcp://192.0.2.1:51820", "udp://[2001:db8::1]:51820", "ethernet://eth0"]
    first, second = config.peers
    assert str(first.endpoint) == "tcp://192.0.2.2:51820" and first.keepalive == 25
    assert second.endpoint.mac == bytes.fromhex("020000000002")
    assert config.control_socket == "/run/tunrelay/tr0.sock"


def test_control_socket_defaults_to_interface_pattern():
    config = parse("interface: {name: tr7}\nplaintext: true\n")
    assert config.control_socket == "/run/tunrelay/tr7.sock"


def test_uapi_socket_is_wgs_path_in_wireguard_mode_and_none_in_plaintext():
    assert parse("interface: {name: tr7}\nprivate_key_file: k\n").uapi_socket == "/var/run/wireguard/tr7.sock"
    assert parse("interface: {name: tr7}\nplaintext: true\n").uapi_socket is None
    assert parse("interface: {}\nprivate_key_file: k\nuapi_socket: false\n").uapi_socket is None
    assert parse("interface: {}\nprivate_key_file: k\nuapi_socket: /var/run/wireguard/site-b.sock\n"
                 ).uapi_socket == "/var/run/wireguard/site-b.sock"


def test_fwmark_defaults_to_none_and_takes_32_bits():
    assert parse("interface: {}\nprivate_key_file: k\n").fwmark == 0
    assert parse("interface: {}\nprivate_key_file: k\nfwmark: 51820\n").fwmark == 51820


@pytest.mark.parametrize("text, expected", [
    ("interface: {}\nplaintext: true\nuapi_socket: /tmp/x.sock\n", "t.yaml:3: uapi_socket: needs WireGuard mode"),
    ("interface: {}\nprivate_key_file: k\nuapi_socket: true\n", "t.yaml:3: uapi_socket: must be a non-empty string"),
    ("interface: {}\nprivate_key_file: k\nfwmark: 4294967296\n", "t.yaml:3: fwmark: must be an integer from 0"),
    ("interface: {name: tr0}\nplaintext: true\nbogus: 1\n", "t.yaml:3: bogus: unknown key"),
    ("interface:\n  name: tr0\n  mode: tan\nplaintext: true\n", "t.yaml:3: interface.mode: must be 'tun' or 'tap'"),
    ("interface:\n  mtu: 70000\nplaintext: true\n", "t.yaml:2: interface.mtu: must be an integer"),
    ("interface:\n  addresses: [198.51.100.300/24]\nplaintext: true\n", "t.yaml:2: interface.addresses[0]:"),
    ("interface: {}\nplaintext: true\nlisten: ['tcp://example.com:1']\n", "t.yaml:3: listen[0]: 'tcp://example.com:1': listen host must be an IP"),
    ("interface: {}\nplaintext: true\npeers:\n  - name: b\n    allowed_ips: [198.51.100.2/24]\n",
     "t.yaml:5: peers[0].allowed_ips[0]: '198.51.100.2/24' is not a network"),
    ("interface: {}\nplaintext: true\npeers:\n  - name: b\n    endpoint: ethernet://eth0\n",
     "t.yaml:5: peers[0].endpoint: 'ethernet://eth0': an ethernet endpoint needs the peer's MAC"),
    ("interface: {}\nplaintext: true\npeers:\n  - name: b\n    keepalive: 0\n", "t.yaml:5: peers[0].keepalive: must be an integer from 1"),
    ("interface: {}\nprivate_key_file: k\npeers:\n  - name: b\n    public_key: abc\n", "t.yaml:5: peers[0].public_key: a key must be base64 of 32 bytes (invalid base64)"),
    ("interface: {}\n", "t.yaml:1: private_key_file: is required unless plaintext: true"),
    ("plaintext: true\n", "t.yaml:1: interface: is required"),
    ("interface: {}\nplaintext: yes please\n", "t.yaml:2: plaintext: must be true or false"),
    ("interface: {name: a}\ninterface: {name: b}\nplaintext: true\n", "t.yaml:2: interface: given twice"),
    ("interface: [\n", "t.yaml:2: (yaml):"),
    # Found by tests/fuzz (config target): PyYAML's ReaderError has no mark and a second line.
    ("interface: {}\nplaintext: true\nx: \x02\n", "t.yaml:3: (yaml): unacceptable character #x0002"),
    # ... and a quoted key or value holding a newline made a problem two lines long.
    ('interface: {"a\\nb": 1}\nplaintext: true\n', "t.yaml:1: interface.a\\nb: unknown key"),
    ('interface: {addresses: [198.51.100.1/24]}\nplaintext: true\nresponder: {address: 198.51.100.9, services: {80: "a\\nb:c"}}\n',
     "t.yaml:3: responder.services.80: cannot import a\\nb:"),
    # ... a tag that PyYAML cannot construct raised out of parse, and deep nesting recursed out.
    ("interface: {mtu: !!int abc}\nplaintext: true\n", "t.yaml:1: interface.mtu: cannot read this value: 'abc' is not a valid !!int"),
    ("interface: {mtu: !!timestamp 99999-01-01}\nplaintext: true\n", "t.yaml:1: interface.mtu: cannot read this value"),
    ("interface: {mode: !!tun x}\nplaintext: true\n", "t.yaml:1: interface.mode: cannot read this value: could not determine a constructor"),
    ("listen: !!float x\ninterface: {}\nplaintext: true\n", "t.yaml:1: listen: cannot read this value"),
    ("[" * 2000, "t.yaml:1: (yaml): nested too deeply"),
    # ... a key whose tag constructs a list (!!omap) raised TypeError (unhashable).
    ("interface: {}\nplaintext: true\n!!omap x: 1\n", "t.yaml:3: (top): a key must be a plain string or number"),
    # ... and a relative module name in a service spec raised TypeError out of importlib.
    ('interface: {addresses: [198.51.100.1/24]}\nplaintext: true\nresponder: {address: 198.51.100.9, services: {80: ".x:y"}}\n',
     "t.yaml:3: responder.services.80: .x:y: name the module in full"),
    ("", "t.yaml:1: (top): the file is empty"),
])
def test_each_mistake_is_one_line_with_path_and_line(text, expected):
    problems = problems_of(text)
    assert any(problem.startswith(expected) for problem in problems), problems
    assert all("\n" not in problem for problem in problems)


def test_a_service_module_that_fails_while_importing_is_a_problem(tmp_path, monkeypatch):
    (tmp_path / "broken_service_module.py").write_text("raise RuntimeError('broken at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    problems = problems_of("interface: {addresses: [198.51.100.1/24]}\nplaintext: true\n"
                           "responder: {address: 198.51.100.9, services: {80: 'broken_service_module:factory'}}\n")
    assert problems == ["t.yaml:3: responder.services.80: importing broken_service_module failed: "
                        "RuntimeError: broken at import"]


def test_all_problems_reported_in_line_order():
    problems = problems_of("interface:\n  mode: x\n  mtu: 1\nplaintext: true\nzzz: 1\n")
    assert [problem.split(":")[1] for problem in problems] == ["2", "3", "5"]


def test_duplicate_names_and_overlapping_allowed_ips_are_errors():
    problems = problems_of(textwrap.dedent("""\
        interface: {}
        plaintext: true
        peers:
          - {name: b, endpoint: "udp://192.0.2.2:1", allowed_ips: [198.51.100.2/32]}
          - {name: b, endpoint: "udp://192.0.2.3:1", allowed_ips: [198.51.100.2/32]}
        """))
    assert any("peers[1].name: 'b' is already used by peers[0]" in p for p in problems)
    assert any("peers[1].allowed_ips: 198.51.100.2/32 is already allowed for peer 'b'" in p for p in problems)


def test_two_peers_with_one_public_key_are_an_error():
    key = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
    problems = problems_of(textwrap.dedent("""\
        interface: {}
        private_key_file: a.key
        peers:
          - {name: b, public_key: "%s", allowed_ips: [198.51.100.2/32]}
          - {name: c, public_key: "%s", allowed_ips: [198.51.100.3/32]}
        """ % (key, key)))
    assert any("peers[1].public_key: is already the key of peers[0]" in p for p in problems)


def test_plaintext_cannot_have_two_peers_without_endpoint():
    problems = problems_of("interface: {}\nplaintext: true\npeers:\n  - {name: b}\n  - {name: c}\n")
    assert any("plaintext mode cannot tell apart peers without an endpoint (b, c)" in p for p in problems)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(str(tmp_path / "absent.yaml"))
    assert caught.value.problems == ["%s:0: (file): cannot read: No such file or directory" % (tmp_path / "absent.yaml")]


def test_check_command_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(CONTRACT)
    bad = tmp_path / "bad.yaml"
    bad.write_text("interface: {mode: x}\nplaintext: true\n")
    assert cli.main(["check", "-c", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    assert cli.main(["check", "-c", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tunrelay: config error: %s:1: interface.mode: must be 'tun' or 'tap', not 'x'" % bad]


def test_shipped_configs_are_valid():
    for path in ("etc/tunrelay.yaml", "etc/two-hosts.yaml"):
        assert load(path).interface.name


RESPONDER_BASE = """\
interface: {name: tr0, mtu: %d, addresses: [198.51.100.1/24, "2001:db8:1::1/64"]}
plaintext: true
responder:
  address: %s
"""


def test_responder_takes_one_address_or_one_of_each_family():
    config = parse(RESPONDER_BASE % (1420, '"2001:db8:1::9"'))
    assert config.responder.addresses == (ipaddress.ip_address("2001:db8:1::9"),)
    config = parse(RESPONDER_BASE % (1420, '[198.51.100.9, "2001:db8:1::9"]'))
    assert [str(a) for a in config.responder.addresses] == ["198.51.100.9", "2001:db8:1::9"]
    assert str(config.responder.address) == "198.51.100.9"
    assert str(config.responder.address_of(6)) == "2001:db8:1::9"
    assert config.responder.mac == bytes([2, 0, 198, 51, 100, 9])   # named after the IPv4 one


@pytest.mark.parametrize("mtu,address,expected", [
    (1420, "[198.51.100.9, 198.51.100.10]",
     "t.yaml:4: responder.address[1]: a second IPv4 address; give at most one IPv4 and one IPv6"),
    (1420, '"2001:db8:2::9"',
     "t.yaml:4: responder.address: 2001:db8:2::9 is not inside any of interface.addresses, so nothing routes to it"),
    (1420, '["2001:db8:1::1"]', "t.yaml:4: responder.address[0]: 2001:db8:1::1 is the interface's own address"),
    (1200, '"2001:db8:1::9"', "t.yaml:4: responder.address: IPv6 needs interface.mtu of at least 1280"),
    (1420, '"ff02::1"', "t.yaml:4: responder.address: ff02::1 must be a unicast host address"),
    (1420, "[]", "t.yaml:4: responder.address: must name at least one address"),
])
def test_responder_address_mistakes(mtu, address, expected):
    assert problems_of(RESPONDER_BASE % (mtu, address)) == [expected]


def test_the_two_host_example_is_encrypted_and_checks_once_its_key_exists(tmp_path, capsys):
    import shutil

    from tunrelay.crypto import keys

    example = tmp_path / "two-hosts.yaml"
    shutil.copy("etc/two-hosts.yaml", example)
    config = load(str(example))
    assert not config.plaintext and config.uapi_socket == "/var/run/wireguard/tr0.sock"
    assert cli.main(["check", "-c", str(example)]) == 2          # no key file yet: one line says so
    assert "site-a.key" in capsys.readouterr().err
    key = tmp_path / "site-a.key"
    key.write_text(keys.encode_key(keys.generate_private_key()) + "\n")
    key.chmod(0o600)
    assert cli.main(["check", "-c", str(example)]) == 0
    assert "OK (tun tr0, 2 listen addresses, 1 peers)" in capsys.readouterr().out
    plaintext = tmp_path / "plain.yaml"
    plaintext.write_text(example.read_text().replace("private_key_file: site-a.key", "").replace(
        "# plaintext: true", "plaintext: true"))
    assert load(str(plaintext)).plaintext
