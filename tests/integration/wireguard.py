"""Stock WireGuard userspace tools in test namespaces: wireguard-go set up with wg(8), and wg-quick(8).

wireguard-go's socket is /var/run/wireguard/DEVICE.sock and wg-quick names the device after
its file, so every device here gets a name unique to the run (``netns.unique_name``):
namespaces share the filesystem.
"""

import os
import subprocess
import sys

from tunrelay.crypto import keys

from .netns import REPOSITORY, wait_for
from .test_two_hosts import write_key_file


def public(private_key):
    return keys.encode_key(keys.public_key(private_key))


def start_wireguard_go(host, directory, name, private_key, listen_port, address, peers):
    """wireguard-go as ``name`` in ``host``, configured by wg; ``peers`` are (private key of the
    peer, allowed IPs, endpoint or None). Returns the process."""
    key_path = write_key_file(os.path.join(directory, "%s.key" % name), private_key)
    environment = dict(os.environ, WG_PROCESS_FOREGROUND="1")
    with open(os.path.join(directory, "%s.log" % name), "w") as log:
        process = host.popen("wireguard-go", name, env=environment, stdout=log, stderr=subprocess.STDOUT)
    host.lab.sockets.append("/var/run/wireguard/%s.sock" % name)
    wait_for(lambda: host.has_link(name) or process.poll() is not None, 10, message="wireguard-go's %s" % name)
    assert process.poll() is None, "wireguard-go exited"
    command = ["wg", "set", name, "private-key", key_path, "listen-port", str(listen_port)]
    for peer_key, allowed_ips, endpoint in peers:
        command += ["peer", public(peer_key), "allowed-ips", allowed_ips] + (["endpoint", endpoint] if endpoint else [])
    host.exec(*command)
    host.ip("addr", "add", address, "dev", name)
    host.ip("link", "set", name, "mtu", "1420", "up")
    return process


def quick_config(directory, name, private_key, address, listen_port, peers):
    """A wg-quick file NAME.conf (0600); ``peers`` are (private key, AllowedIPs, Endpoint or None)."""
    lines = ["[Interface]", "PrivateKey = " + keys.encode_key(private_key), "Address = " + address,
             "ListenPort = %d" % listen_port, "MTU = 1420"]
    for peer_key, allowed_ips, endpoint in peers:
        lines += ["", "[Peer]", "PublicKey = " + public(peer_key), "AllowedIPs = " + allowed_ips]
        if endpoint:
            lines.append("Endpoint = " + endpoint)
    path = os.path.join(directory, name + ".conf")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write("\n".join(lines) + "\n")
    return path


def tunrelay_wg_command(directory):
    """An executable that runs this checkout's tunrelay-wg (the console script may be another copy)."""
    path = os.path.join(directory, "tunrelay-wg")
    with open(path, "w") as stream:
        stream.write("#!/bin/sh\nPYTHONPATH=%s exec %s -m tunrelay.wg_userspace \"$@\"\n" % (REPOSITORY, sys.executable))
    os.chmod(path, 0o755)
    return path


def wg_quick(host, action, config_path, log_path, userspace=None, timeout=60):
    """``wg-quick ACTION FILE`` in ``host``, output appended to ``log_path`` (a background
    userspace WireGuard may keep a captured pipe open forever). Returns the exit status."""
    environment = dict(os.environ, LOG_LEVEL="verbose")
    if userspace is not None:
        environment["WG_QUICK_USERSPACE_IMPLEMENTATION"] = userspace
    host.lab.sockets.append("/var/run/wireguard/%s.sock" % os.path.basename(config_path)[:-len(".conf")])
    with open(log_path, "a") as log:
        return subprocess.run(("ip", "netns", "exec", host.name, "wg-quick", action, config_path), env=environment,
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              timeout=timeout).returncode


def uapi_exchange(path, request):
    """Send raw bytes to a UAPI socket and read until the reply's empty line (or EOF)."""
    import socket

    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(10)
    try:
        connection.connect(path)
        connection.sendall(request)
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply
    finally:
        connection.close()


__all__ = ["public", "quick_config", "start_wireguard_go", "tunrelay_wg_command", "uapi_exchange", "wg_quick"]
