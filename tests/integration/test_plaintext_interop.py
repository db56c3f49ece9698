"""Plaintext mode against a peer we did not write.

simpletun is not packaged, but OpenVPN 2.6 in static mode with ``--cipher none --auth none``
puts exactly simpletun's format on a TCP stream: a 2-byte big-endian length, then the bare
IP packet or Ethernet frame (checked byte for byte with nc while writing this test). So a
stock OpenVPN is the independent judge, in tun and tap, as client and as server, on
simpletun's port 55555.
"""

import subprocess

import pytest

from .conftest import require_tool
from .netns import transfer, wait_for
from .test_two_hosts import OVERLAY_A, OVERLAY_B, relay_config

PORT = 55555


def start_openvpn(host, mode, role, log_path):
    command = ["openvpn", "--dev", "%s9" % mode, "--dev-type", mode, "--cipher", "none", "--auth", "none",
               "--tun-mtu", "1400", "--verb", "3"]
    if role == "server":
        command += ["--proto", "tcp-server", "--local", "192.0.2.2", "--lport", str(PORT)]
    else:
        command += ["--proto", "tcp-client", "--remote", "192.0.2.1", str(PORT), "--connect-retry", "1"]
    if mode == "tun":
        command += ["--ifconfig", OVERLAY_B, OVERLAY_A]
    else:
        command += ["--ifconfig", OVERLAY_B, "255.255.255.0"]
    log = open(log_path, "w")
    process = host.popen(*command, stdout=log, stderr=subprocess.STDOUT)
    # With no crypto there is no handshake: OpenVPN is ready once its device exists and its
    # socket listens or has connected.
    ready = ("Listening for incoming TCP connection", "TCP connection established")
    wait_for(lambda: any(text in open(log_path).read() for text in ready) or process.poll() is not None,
             30, message="openvpn to open its device and socket")
    assert process.poll() is None, open(log_path).read()
    return process


@pytest.mark.parametrize("mode", ["tun", "tap"])
@pytest.mark.parametrize("tunrelay_role", ["server", "client"])
def test_openvpn_cleartext_tcp_peer(lab, tmp_path, mode, tunrelay_role):
    require_tool("openvpn")
    a, b = lab.underlay()
    if tunrelay_role == "server":
        relay = lab.relay(a, relay_config(mode, 1, ["tcp://192.0.2.1:%d" % PORT]))
        start_openvpn(b, mode, "client", str(tmp_path / "openvpn.log"))
    else:
        start_openvpn(b, mode, "server", str(tmp_path / "openvpn.log"))
        relay = lab.relay(a, relay_config(mode, 1, [], "tcp://192.0.2.2:%d" % PORT))
    a.ping(OVERLAY_B, timeout=30)
    b.ping(OVERLAY_A)
    sent, received = transfer(b, a, OVERLAY_A, tmp_path, size=5 * 1000 * 1000)
    assert sent == received
    assert "Traceback" not in relay.log()
