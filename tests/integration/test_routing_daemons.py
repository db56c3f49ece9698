"""A routing daemon uses the relay as its NIC: BIRD 2 runs OSPFv2 over tr0 between two
namespaces (encrypted relays over UDP, tap and tun), the adjacency reaches Full, A learns a
stub prefix behind B into its kernel table via tr0, and A pings an address in it."""

import pytest

from .conftest import require_tool
from .netns import wait_for
from .routers import Bird
from .test_two_hosts import encrypted, relay_config

STUB_PREFIX, STUB_ADDRESS = "203.0.113.0/24", "203.0.113.1"
ROUTER_IDS = {1: "192.0.2.1", 2: "192.0.2.2"}

BIRD_CONFIG = """\
router id {router_id};

protocol device {{ scan time 1; }}

protocol kernel {{
    scan time 1;
    ipv4 {{ import none; export where source = RTS_OSPF; }};
}}

protocol ospf v2 ospf1 {{
    ipv4 {{ import all; export none; }};
    area 0 {{
        interface "tr0" {{ type {ospf_type}; hello 1; dead 4; wait 2; }};
{stub}    }};
}}
"""


def start_bird(host, directory, last, ospf_type, stub_interface=None):
    stub = '        interface "%s" { stub yes; };\n' % stub_interface if stub_interface else ""
    return Bird(host, directory, BIRD_CONFIG.format(router_id=ROUTER_IDS[last], ospf_type=ospf_type, stub=stub))


def ospf_relays(lab, mode):
    """Encrypted relays over UDP (B dials A); A's peer B may carry the stub prefix and multicast."""
    a, b = lab.underlay(ipv6=False)
    config_a = relay_config(mode, 1, ["udp://192.0.2.1:51820"])
    config_b = relay_config(mode, 2, ["udp://192.0.2.2:51820"], "udp://192.0.2.1:51820")
    if mode == "tun":
        # Hellos go to 224.0.0.5 and must be routed to (and accepted from) the peer; replies
        # from the stub network arrive with a 203.0.113.x source.
        config_a["peers"][0]["allowed_ips"] = ["198.51.100.2/32", STUB_PREFIX, "224.0.0.0/4"]
        config_b["peers"][0]["allowed_ips"] = ["198.51.100.1/32", "224.0.0.0/4"]
    relay_a = lab.relay(a, encrypted(config_a, lab.directory, 1))
    relay_b = lab.relay(b, encrypted(config_b, lab.directory, 2))
    return a, b, relay_a, relay_b


@pytest.mark.parametrize("mode", ["tap", "tun"])
def test_ospf_adjacency_learns_stub_prefix_through_the_tunnel(lab, mode):
    require_tool("bird")
    require_tool("birdc")
    a, b, relay_a, relay_b = ospf_relays(lab, mode)
    # The stub network behind B: a veth pair with both ends in B (no dummy links here).
    lab.link(b, b, a_name="s0", b_name="s1")
    b.ip("addr", "add", "%s/24" % STUB_ADDRESS, "dev", "s0")
    b.ping("198.51.100.1")  # B dials: A learns B's endpoint from B's first handshake
    # Nothing but OSPF can teach A the stub route: before bird runs, A has none.
    assert a.ip("route", "show", STUB_PREFIX).stdout.strip() == ""

    ospf_type = "ptp" if mode == "tun" else "broadcast"
    bird_a = start_bird(a, lab.directory, 1, ospf_type)
    bird_b = start_bird(b, lab.directory, 2, ospf_type, stub_interface="s0")

    try:
        wait_for(lambda: ROUTER_IDS[2] in bird_a.ospf_full_neighbours() and
                 ROUTER_IDS[1] in bird_b.ospf_full_neighbours(), 60,
                 interval=0.5, message="OSPF adjacency to reach Full over tr0 (%s)" % mode)
        route = wait_for(lambda: a.ip("route", "show", STUB_PREFIX).stdout.strip(), 30, interval=0.2,
                         message="bird to install %s in A's kernel table" % STUB_PREFIX)
    except AssertionError as error:
        raise AssertionError("%s\nA neighbors:\n%s\nB neighbors:\n%s\nA bird log:\n%s\nB bird log:\n%s\n"
                             "relay A log:\n%s\nrelay B log:\n%s" % (
                                 error, bird_a.birdc("show", "ospf", "neighbors").stdout,
                                 bird_b.birdc("show", "ospf", "neighbors").stdout, bird_a.log()[-3000:],
                                 bird_b.log()[-3000:], relay_a.log()[-3000:], relay_b.log()[-3000:])) from None
    assert "dev tr0" in route and "proto bird" in route, route
    assert STUB_PREFIX in bird_a.birdc("show", "route", "protocol", "ospf1").stdout

    a.ping(STUB_ADDRESS)
    assert "Traceback" not in relay_a.log() + relay_b.log()
