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
    assert [child.name for child in service if (child.name or "").startswith("connect-")] == ["connect-b"]
    assert list(service.clients) == ["b"]


def test_plugin_is_discoverable():
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    names = [maker.tapname for maker in getPlugins(IServiceMaker)]
    assert "tunrelay" in names
