"""Start-up through the real twistd: pidfile, one-line failures, and 64 KiB frames end to end."""

import os
import subprocess

from .netns import REPOSITORY, TWISTD
from .test_two_hosts import OVERLAY_A, OVERLAY_B, relay_config

import yaml


def run_twistd(host, directory, config, *extra):
    path = os.path.join(str(directory), "startup.yaml")
    with open(path, "w") as stream:
        yaml.safe_dump(config, stream)
    environment = dict(os.environ, PYTHONPATH=REPOSITORY)
    return subprocess.run(["ip", "netns", "exec", host.name, TWISTD, "-n", *extra, "tunrelay", "-c", path],
                          capture_output=True, text=True, timeout=60, env=environment)


def test_config_error_is_one_line_and_exit_2(lab, tmp_path):
    a, _ = lab.underlay()
    config = relay_config("tun", 1, [])
    config["interface"]["mode"] = "tan"
    result = run_twistd(a, tmp_path, config, "--pidfile=")
    assert result.returncode == 2
    lines = (tmp_path / "startup.yaml").read_text().splitlines()
    line = next(number for number, text in enumerate(lines, 1) if "mode: tan" in text)
    assert result.stderr.strip().splitlines() == [
        "tunrelay: config error: %s:%d: interface.mode: must be 'tun' or 'tap', not 'tan'" % (tmp_path / "startup.yaml", line)]
    assert "Traceback" not in result.stdout + result.stderr


def test_listen_failure_is_one_line_and_leaves_no_device(lab, tmp_path):
    a, _ = lab.underlay()
    result = run_twistd(a, tmp_path, relay_config("tun", 1, ["tcp://192.0.2.77:51820"]), "--pidfile=")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "tunrelay: cannot start: cannot listen on tcp://192.0.2.77:51820: [Errno 99] Cannot assign requested address")
    assert "Traceback" not in result.stdout + result.stderr
    assert not a.has_link("tr0")


def test_busy_device_name_is_one_line(lab, tmp_path):
    a, _ = lab.underlay()
    lab.relay(a, relay_config("tap", 1, []))  # holds tr0 as a tap device
    result = run_twistd(a, tmp_path, relay_config("tun", 1, []), "--pidfile=")
    assert result.returncode == 1
    assert result.stderr.startswith("tunrelay: cannot start: cannot create tun device tr0:")
    assert "Traceback" not in result.stdout + result.stderr


def test_pidfile_and_daemon_mode(lab, tmp_path):
    a, _ = lab.underlay()
    pidfile = tmp_path / "relay.pid"
    logfile = tmp_path / "relay.log"
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(relay_config("tun", 1, [])))
    os.chmod(tmp_path, 0o755)
    environment = dict(os.environ, PYTHONPATH=REPOSITORY)
    subprocess.run(["ip", "netns", "exec", a.name, TWISTD, "--pidfile", str(pidfile), "--logfile", str(logfile),
                    "tunrelay", "-c", str(path)], check=True, timeout=30, env=environment)
    from .netns import wait_for
    wait_for(lambda: pidfile.exists() and "relay up" in logfile.read_text(), 20, message="daemon to start")
    pid = int(pidfile.read_text())
    assert a.has_link("tr0")
    os.kill(pid, 15)
    wait_for(lambda: not pidfile.exists(), 20, message="daemon to stop and remove its pidfile")
    assert not a.has_link("tr0")


def test_64k_frames_cross_the_tunnel_whole(lab):
    """MTU 65535 devices: a 65028-byte ping crosses as one frame (no fragmentation, DF set)."""
    a, b = lab.underlay()
    lab.relay(a, relay_config("tun", 1, ["tcp://192.0.2.1:51820"], mtu=65535))
    lab.relay(b, relay_config("tun", 2, [], "tcp://192.0.2.1:51820", mtu=65535))
    b.ping(OVERLAY_A)
    result = b.exec("ping", "-c", "3", "-i", "0.2", "-M", "do", "-s", "65000", OVERLAY_A, check=False)
    assert result.returncode == 0 and " 0% packet loss" in result.stdout, result.stdout + result.stderr
    assert "65008 bytes from" in result.stdout
    result = a.exec("ping", "-c", "2", "-i", "0.2", "-M", "do", "-s", "65000", OVERLAY_B, check=False)
    assert result.returncode == 0, result.stdout


def test_control_socket_held_by_a_live_relay_refuses_start(lab, tmp_path):
    a, _ = lab.underlay()
    running = lab.relay(a, relay_config("tun", 1, []))
    second = relay_config("tun", 1, [])
    second["interface"]["name"] = "tr1"
    second["control_socket"] = running.config["control_socket"]
    result = run_twistd(a, tmp_path, second, "--pidfile=")
    assert result.returncode == 1
    assert result.stderr.startswith("tunrelay: cannot start: control socket %s is in use by a running relay" % (
        running.config["control_socket"])), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert not a.has_link("tr1")
    assert running.tool("status", "-s", running.config["control_socket"]).returncode == 0


def test_json_lines_logger_under_twistd(lab, tmp_path):
    import json

    a, _ = lab.underlay()
    log_path = tmp_path / "relay.jsonl"
    path = tmp_path / "json.yaml"
    config = relay_config("tun", 1, [])
    config["control_socket"] = str(tmp_path / "json.sock")
    path.write_text(yaml.safe_dump(config))
    environment = dict(os.environ, PYTHONPATH=REPOSITORY, TUNRELAY_JSON_LOG=str(log_path))
    process = subprocess.Popen(["ip", "netns", "exec", a.name, TWISTD, "-n", "--pidfile=", "--logger",
                                "tunrelay.logs.json_observer", "tunrelay", "-c", str(path)], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab.processes.append(process)
    from .netns import wait_for
    wait_for(lambda: log_path.exists() and "relay up" in log_path.read_text(), 20, message="JSON log of relay up")
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    up = next(record for record in records if "relay up" in record["message"])
    assert up["device"] == "tr0" and up["mode"] == "tun" and up["level"] == "info"
