"""twistd plugin options: -c is required and a bad config exits non-zero with one line per problem."""

import pytest
from twisted.python import usage

from tunrelay.tap import Options, makeService


def test_config_is_required():
    with pytest.raises(usage.UsageError, match="-c/--config is required"):
        Options().parseOptions([])


def test_bad_config_exits_without_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("interface: {mtu: 5}\nplaintext: true\n")
    with pytest.raises(SystemExit) as caught:
        Options().parseOptions(["-c", str(path)])
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        "tunrelay: config error: %s:1: interface.mtu: must be an integer from 576 to 65535\n" % path)


def test_good_config_makes_a_service_with_one_client_per_tcp_endpoint(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text("interface: {}\nplaintext: true\npeers:\n"
                    "  - {name: b, endpoint: 'tcp://192.0.2.2:51820', allowed_ips: [198.51.100.2/32]}\n")
    options = Options()
    options.parseOptions(["--config", str(path)])
    service = makeService(options)
    assert [child.name for child in service.reach if (child.name or "").startswith("connect-")] == ["connect-b"]
    assert list(service.clients) == ["b"]


def test_plugin_is_discoverable():
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    names = [maker.tapname for maker in getPlugins(IServiceMaker)]
    assert "tunrelay" in names


def write_encrypted_config(tmp_path, key_mode):
    from tunrelay.crypto import keys

    key = tmp_path / "relay.key"
    key.write_text(keys.encode_key(keys.generate_private_key()) + "\n")
    key.chmod(key_mode)
    path = tmp_path / "enc.yaml"
    path.write_text("interface: {}\nprivate_key_file: relay.key\npeers: []\n")
    return path, key


def test_group_readable_key_file_refuses_to_start(tmp_path, capsys):
    path, key = write_encrypted_config(tmp_path, 0o640)
    with pytest.raises(SystemExit) as caught:
        Options().parseOptions(["-c", str(path)])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert error == ("tunrelay: config error: %s:2: private_key_file: key file %s has mode 0640; it must not be "
                     "accessible by group or others (chmod 600 %s)\n" % (path, key, key))
    assert key.read_text().strip() not in error


def test_private_key_never_reaches_the_log(tmp_path):
    from twisted.internet.task import Clock
    from twisted.logger import capturedLogs

    from tunrelay.service import RelayService

    path, key = write_encrypted_config(tmp_path, 0o600)
    options = Options()
    options.parseOptions(["-c", str(path)])
    with capturedLogs() as events:
        service = RelayService(options["relay_config"], reactor=Clock(), secrets=options["secrets"])
        service._check_mode()
    text = repr(events)
    assert key.read_text().strip() not in text
    assert any("encrypted mode" in event["log_format"] for event in events)
