"""``tunrelay status`` and ``tunrelay reload`` against a canned control server; ``check`` unchanged."""

import json
import os
import textwrap

import pytest

from tunrelay import cli

from .control.fakeserver import CannedServer
from .control.test_render import DOCUMENT


def status_reply(document=DOCUMENT):
    return json.dumps({"ok": True, "result": document}).encode() + b"\n"


def test_status_renders_text_with_the_relays_clock(capsys):
    with CannedServer(status_reply()) as server:
        assert cli.main(["status", "-s", server.path]) == 0
    assert json.loads(server.requests[0]) == {"command": "status"}
    out = capsys.readouterr().out
    assert out.startswith("interface: tr0\n")
    assert "  latest handshake: 1 minute, 5 seconds ago\n" in out     # aged by the document's time


def test_status_json_prints_the_document(capsys):
    with CannedServer(status_reply()) as server:
        assert cli.main(["status", "-s", server.path, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == DOCUMENT
    assert document["schema_version"] == 1
    assert isinstance(document["peers"], list)
    for peer in document["peers"]:
        assert {"name", "endpoint", "latest_handshake", "rx_bytes", "tx_bytes"} <= set(peer)


def test_reload_success_and_failure(capsys):
    with CannedServer(b'{"ok": true, "message": "reloaded: 2 peers"}\n') as server:
        assert cli.main(["reload", "-s", server.path]) == 0
    assert json.loads(server.requests[0]) == {"command": "reload"}
    assert capsys.readouterr().out == "tunrelay: reloaded: 2 peers\n"
    failed = b'{"ok": false, "error": "reload_failed", "message": "x.yaml:3: interface.mtu: too small"}\n'
    with CannedServer(failed) as server:
        assert cli.main(["reload", "-s", server.path]) == 1
    assert capsys.readouterr().err == "tunrelay: reload failed: x.yaml:3: interface.mtu: too small\n"


@pytest.mark.parametrize("command", ["status", "reload"])
def test_missing_socket_is_one_line_and_exit_1(command, capsys):
    assert cli.main([command, "-s", "/nonexistent/tr0.sock"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "tunrelay: control socket /nonexistent/tr0.sock does not exist: is the relay running?\n"


def test_socket_comes_from_the_config_when_given(tmp_path, capsys):
    with CannedServer(status_reply()) as server:
        config = tmp_path / "relay.yaml"
        config.write_text(textwrap.dedent("""\
            interface: {name: tr9}
            plaintext: true
            control_socket: %s
            """ % server.path))
        assert cli.main(["status", "-c", str(config)]) == 0
    assert "interface: tr0" in capsys.readouterr().out


def test_explicit_socket_wins_over_the_config(tmp_path, capsys):
    config = tmp_path / "relay.yaml"
    config.write_text("interface: {name: tr9}\nplaintext: true\ncontrol_socket: /nonexistent/a.sock\n")
    assert cli.main(["status", "-c", str(config), "-s", "/nonexistent/b.sock"]) == 1
    assert "/nonexistent/b.sock" in capsys.readouterr().err


def test_default_socket_is_tr0s(monkeypatch):
    asked = []

    def fake_request(path, command):
        asked.append((path, command))
        return {"ok": True, "message": "done"}

    monkeypatch.setattr("tunrelay.control.client.request", fake_request)
    assert cli.main(["reload"]) == 0
    assert asked == [("/run/tunrelay/tr0.sock", "reload")]


def test_bad_config_for_the_socket_is_a_config_error(tmp_path, capsys):
    config = tmp_path / "relay.yaml"
    config.write_text("interface: {name: tr9}\nbogus: 1\n")
    assert cli.main(["status", "-c", str(config)]) == 2
    assert "bogus: unknown key" in capsys.readouterr().err


def test_error_reply_to_status_is_exit_1(capsys):
    with CannedServer(b'{"ok": false, "error": "busy", "message": "too many control connections (16)"}\n') as server:
        assert cli.main(["status", "-s", server.path]) == 1
    assert capsys.readouterr().err == "tunrelay: status failed: too many control connections (16)\n"


def test_check_is_unchanged(capsys):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "etc", "tunrelay.yaml")
    assert cli.main(["check", "-c", example]) == 0
    assert "OK (tun tr0, 0 listen addresses, 0 peers, PLAINTEXT)" in capsys.readouterr().out


def test_showconf_prints_the_running_yaml(capsys):
    reply = json.dumps({"ok": True, "result": {"yaml": "interface:\n  name: tr0\n"}}).encode() + b"\n"
    with CannedServer(reply) as server:
        assert cli.main(["showconf", "-s", server.path]) == 0
    assert json.loads(server.requests[0]) == {"command": "showconf"}
    assert capsys.readouterr().out == "interface:\n  name: tr0\n"
