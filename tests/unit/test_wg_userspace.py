"""tunrelay-wg's command line and the relay it builds without a file (the namespace tests run it for real)."""

import os
import re

import pytest
from twisted.internet.testing import MemoryReactorClock

from tunrelay import wg_userspace
from tunrelay.service import RelayService

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_console_script_is_declared_as_one_word():
    with open(os.path.join(REPOSITORY, "setup.py")) as stream:
        assert re.search(r'"tunrelay-wg = tunrelay\.wg_userspace:main"', stream.read())


@pytest.mark.parametrize("arguments", [[], ["a", "b"], ["-x"], ["-f"], ["--foreground", "a", "b"]])
def test_usage_is_wireguard_gos(arguments, capsys):
    assert wg_userspace.main(arguments) == 2
    assert capsys.readouterr().out == "Usage: tunrelay-wg [-f/--foreground] INTERFACE-NAME\n"


@pytest.mark.parametrize("name", ["a" * 16, "a/b", "a b"])
def test_a_name_the_kernel_would_refuse_is_one_line(name, capsys):
    assert wg_userspace.main([name]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_the_in_memory_relay_is_wireguard_go_shaped():
    config = wg_userspace.build_config("wg7")
    assert (config.interface.name, config.interface.mode, config.interface.mtu) == ("wg7", "tun", 1420)
    assert config.interface.addresses == () and config.listen == () and config.peers == ()
    assert config.uapi_socket == "/var/run/wireguard/wg7.sock" and config.control_socket == "/run/tunrelay/wg7.sock"
    assert not config.plaintext and config.private_key_file is None
    service = RelayService(config, reactor=MemoryReactorClock())   # no key yet: builds, and cannot reload
    assert service.relay.sessions.core.public_key is None
    assert service.reload()[0] is False


def test_log_level_follows_wireguard_go(monkeypatch):
    from twisted.logger import LogLevel

    for setting, level in (("verbose", LogLevel.info), ("debug", LogLevel.info), ("error", LogLevel.warn),
                           ("", LogLevel.warn), ("silent", None)):
        monkeypatch.setenv("LOG_LEVEL", setting)
        assert wg_userspace._log_level() == level
