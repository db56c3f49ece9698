"""wg-quick(8) with tunrelay-wg as its userspace implementation, against a stock wireguard-go; and
a relay run from ``tunrelay import`` of a wg-quick file, against the peer of that file.

Each side is a wg-quick file named after a device unique to the run (namespaces share
/var/run/wireguard). B is always wg-quick with wireguard-go, the implementation wg-quick
falls back to on this kernel (it has no WireGuard module).
"""

import os
import sys

import yaml

from tunrelay.crypto import keys

from .conftest import require_tool
from .netns import REPOSITORY, read_log, run, transfer, unique_name, wait_for
from .test_two_hosts import OVERLAY_A, OVERLAY_B
from .wireguard import quick_config, tunrelay_wg_command, wg_quick


def two_sites(directory):
    """wg-quick files for A and B that point at each other over the underlay."""
    key_a, key_b = keys.generate_private_key(), keys.generate_private_key()
    name_a, name_b = unique_name("wqa"), unique_name("wqb")
    path_a = quick_config(directory, name_a, key_a, OVERLAY_A + "/24", 51820,
                          [(key_b, OVERLAY_B + "/32", "192.0.2.2:51820")])
    path_b = quick_config(directory, name_b, key_b, OVERLAY_B + "/24", 51820,
                          [(key_a, OVERLAY_A + "/32", "192.0.2.1:51820")])
    return (name_a, path_a), (name_b, path_b)


def require_tools():
    for tool in ("wg", "wg-quick", "wireguard-go"):
        require_tool(tool)


def test_wg_quick_up_and_down_with_tunrelay_wg_against_wireguard_go(lab, tmp_path):
    require_tools()
    a, b = lab.underlay()
    directory = str(tmp_path)
    (name_a, conf_a), (name_b, conf_b) = two_sites(directory)
    log_a, log_b = os.path.join(directory, "wg-quick-a.log"), os.path.join(directory, "wg-quick-b.log")
    assert wg_quick(b, "up", conf_b, log_b) == 0, read_log(log_b)
    assert wg_quick(a, "up", conf_a, log_a, userspace=tunrelay_wg_command(directory)) == 0, read_log(log_a)
    assert "Falling back to slow userspace implementation" in read_log(log_a)
    assert a.has_link(name_a) and "relay up on %s" % name_a in read_log(log_a)

    a.ping(OVERLAY_B)
    b.ping(OVERLAY_A)
    sent, received = transfer(a, b, OVERLAY_B, tmp_path)
    assert sent == received
    shown = a.exec("wg", "show", name_a).stdout
    assert "listening port: 51820" in shown and "latest handshake:" in shown and "endpoint: 192.0.2.2:51820" in shown

    assert wg_quick(a, "down", conf_a, log_a) == 0, read_log(log_a)
    wait_for(lambda: not run("ip", "netns", "pids", a.name, check=False).stdout.split(), 15,
             message="tunrelay-wg to exit after wg-quick down")
    assert not a.has_link(name_a)
    assert not os.path.exists("/var/run/wireguard/%s.sock" % name_a)
    assert not os.path.exists("/run/tunrelay/%s.sock" % name_a)
    assert "Traceback" not in read_log(log_a)
    assert wg_quick(b, "down", conf_b, log_b) == 0, read_log(log_b)


def test_a_relay_from_tunrelay_import_interoperates_with_the_files_peer(lab, tmp_path):
    require_tools()
    a, b = lab.underlay()
    directory = str(tmp_path)
    (name_a, conf_a), (name_b, conf_b) = two_sites(directory)
    log_b = os.path.join(directory, "wg-quick-b.log")
    assert wg_quick(b, "up", conf_b, log_b) == 0, read_log(log_b)

    output = os.path.join(directory, "site-a.yaml")
    imported = a.exec("env", "PYTHONPATH=" + REPOSITORY, sys.executable, "-m", "tunrelay.cli", "import", conf_a,
                      "--output", output, check=False)
    assert imported.returncode == 0, imported.stderr
    with open(output) as stream:
        config = yaml.safe_load(stream)
    assert config["interface"]["name"] == name_a and config["private_key_file"] == "site-a.key"
    relay = lab.relay(a, config)      # the harness only adds its own control and UAPI socket paths
    a.ping(OVERLAY_B)
    b.ping(OVERLAY_A)
    sent, received = transfer(b, a, OVERLAY_A, tmp_path, size=5 * 1000 * 1000)
    assert sent == received
    assert "Traceback" not in relay.log()
    assert wg_quick(b, "down", conf_b, log_b) == 0, read_log(log_b)

