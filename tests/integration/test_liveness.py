"""A peer that goes away and comes back is in service again within seconds.

Names resolve through /etc/netns/<namespace>/hosts, which `ip netns exec` mounts over
/etc/hosts, so a test can move a hostname without any DNS server.
"""

import os
import re
import shutil
import time

import pytest

from .netns import wait_for
from .test_two_hosts import OVERLAY_A, encrypted, relay_config


@pytest.fixture
def hosts_files():
    made = []

    def point(host, name, address):
        directory = "/etc/netns/%s" % host.name
        os.makedirs(directory, exist_ok=True)
        made.append(directory)
        with open(os.path.join(directory, "hosts"), "w") as stream:
            stream.write("127.0.0.1 localhost\n%s %s\n" % (address, name))

    yield point
    for directory in made:
        shutil.rmtree(directory, ignore_errors=True)


def back_in_service(host, relay, address):
    """Seconds from the restarted relay's start-up to the first answered ping."""
    started = time.monotonic()
    wait_for(lambda: host.exec("ping", "-c", "1", "-W", "1", address, check=False).returncode == 0, 40,
             message="%s back in service" % address)
    return time.monotonic() - started


def test_udp_peer_that_moves_to_a_new_address_is_found_again(lab, tmp_path, hosts_files):
    a, b = lab.underlay()
    hosts_files(b, "relay-a.test", "192.0.2.1")
    # dead_peer_timeout needs traffic to time: both sides send keepalives more often than it.
    config_a = encrypted(relay_config("tun", 1, ["udp://192.0.2.1:51820"]), tmp_path, 1)
    config_a["peers"][0]["keepalive"] = 1
    relay_a = lab.relay(a, config_a)
    config_b = encrypted(relay_config("tun", 2, ["udp://192.0.2.2:51820"], "udp://relay-a.test:51820",
                                      dead_peer_timeout=3), tmp_path, 2)
    config_b["peers"][0]["keepalive"] = 1
    relay_b = lab.relay(b, config_b)
    b.ping(OVERLAY_A)

    relay_a.stop()                                    # A goes away and comes back elsewhere
    a.ip("addr", "del", "192.0.2.1/24", "dev", "u0")
    a.ip("addr", "add", "192.0.2.11/24", "dev", "u0")
    hosts_files(b, "relay-a.test", "192.0.2.11")
    config_a["listen"] = ["udp://192.0.2.11:51820"]
    lab.relay(a, config_a)
    seconds = back_in_service(b, None, OVERLAY_A)
    print("UDP peer back in service %.1f s after restarting at a new address" % seconds)
    assert seconds < 8
    relay_b.wait_log("peer other down: nothing received for 3s")


def test_tcp_peer_that_restarts_is_reconnected(lab, tmp_path):
    a, b = lab.underlay()
    relay_a = lab.relay(a, encrypted(relay_config("tun", 1, ["tcp://192.0.2.1:51820"]), tmp_path, 1))
    lab.relay(b, encrypted(relay_config("tun", 2, [], "tcp://192.0.2.1:51820"), tmp_path, 2))
    b.ping(OVERLAY_A)
    relay_a.stop()
    wait_for(lambda: not a.has_link("tr0"), 10, message="A's device gone")
    lab.relay(a, encrypted(relay_config("tun", 1, ["tcp://192.0.2.1:51820"]), tmp_path, 1))
    seconds = back_in_service(b, None, OVERLAY_A)
    print("TCP peer back in service %.1f s after its relay restarted" % seconds)
    assert seconds < 6


def test_tcp_peer_is_back_soon_after_a_long_outage_whatever_its_backoff(lab, tmp_path):
    # The dialling side's reconnect backoff grows through the outage; the link's return (an
    # rtnetlink notice) must retry at once rather than when the backoff says.
    a, b = lab.underlay()
    config_a = encrypted(relay_config("tun", 1, ["tcp://192.0.2.1:51820"]), tmp_path, 1)
    config_a["peers"][0]["keepalive"] = 1
    lab.relay(a, config_a)
    config_b = encrypted(relay_config("tun", 2, [], "tcp://192.0.2.1:51820", dead_peer_timeout=3), tmp_path, 2)
    config_b["peers"][0]["keepalive"] = 1
    relay_b = lab.relay(b, config_b)
    b.ping(OVERLAY_A)

    b.ip("link", "set", "u0", "down")
    outage = time.monotonic()
    # The outage lasts until B's backoff has grown past 10 s (about 30 s of failed attempts).
    wait_for(lambda: any(float(delay) >= 10 for delay in re.findall(r"reconnecting to \S+ in ([\d.]+)s",
                                                                      relay_b.log())),
             60, interval=0.5, message="B's reconnect backoff to pass 10 s")
    print("outage of %.0f s" % (time.monotonic() - outage))
    b.ip("link", "set", "u0", "up")
    seconds = back_in_service(b, None, OVERLAY_A)
    print("TCP peer back in service %.1f s after a long outage ended" % seconds)
    assert seconds <= 5
