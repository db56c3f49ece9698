"""In tun mode the kernel's next hop chooses the peer: a route ``via GATEWAY dev tr0`` sends
its prefix to the peer whose allowed_ips hold GATEWAY, and lets that peer send from it.

The hub H (198.51.100.1) has spokes A (.2, over TCP) and B (.3, over UDP) on one tun. Both
spokes hold 203.0.113.1 (on a veth pair within the spoke: this kernel has no dummy links), so
only H's route decides who answers.
"""

import time

from .netns import wait_for
from .test_hub_and_spoke import HUB, SPOKE_A, SPOKE_B, pings_once, start_hub_and_spokes, status

STUB = "203.0.113.1"


def peer_counters(relay):
    return {peer["name"]: peer for peer in status(relay)["peers"]}


def answered_by(hub_host, hub, count=5):
    """Which spoke's peer carried ``count`` pings from H to the stub address."""
    before = peer_counters(hub)
    result = hub_host.exec("ping", "-c", str(count), "-i", "0.1", "-W", "1", STUB, check=False)
    assert result.returncode == 0, result.stdout
    after = peer_counters(hub)
    carried = [name for name in ("a", "b") if after[name]["rx_packets"] - before[name]["rx_packets"] >= count]
    assert len(carried) == 1, (before, after)
    return carried[0]


def test_the_kernels_next_hop_chooses_the_peer_and_the_source_check_follows(lab):
    hub_host, a, b, relays = start_hub_and_spokes(lab, "tun")
    hub = relays[0]
    for spoke in (a, b):
        lab.link(spoke, spoke, a_name="s0", b_name="s1")
        spoke.ip("addr", "add", STUB + "/32", "dev", "s0")
    # Without a route via a peer, the stub address is nobody's: H's kernel has no route.
    assert not pings_once(hub_host, STUB)

    hub_host.ip("route", "add", STUB + "/32", "via", SPOKE_A, "dev", "tr0")
    wait_for(lambda: pings_once(hub_host, STUB), 10, message="the stub via A")
    assert answered_by(hub_host, hub) == "a"
    routes = status(hub)["routes_via_peers"]
    assert {"network": STUB + "/32", "gateway": SPOKE_A, "peer": "a"} in routes, routes

    # The daemon moves the route: the relay follows within a moment, without a reload.
    moved = time.monotonic()
    hub_host.ip("route", "replace", STUB + "/32", "via", SPOKE_B, "dev", "tr0")
    wait_for(lambda: {"network": STUB + "/32", "gateway": SPOKE_B, "peer": "b"} in status(hub)["routes_via_peers"],
             5, interval=0.02, message="the mirror to follow the route")
    # (This bounds the mirror's delay from above: each status call is a process start.)
    print("route move shown by tunrelay status within %.2f s" % (time.monotonic() - moved))
    assert answered_by(hub_host, hub) == "b"

    # A may no longer send from the stub address: that prefix is B's now.
    drops_before = peer_counters(hub)["a"]["drops"].get("source_not_allowed", 0)
    assert a.exec("ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", STUB, HUB, check=False).returncode != 0
    assert peer_counters(hub)["a"]["drops"].get("source_not_allowed", 0) >= drops_before + 3
    assert b.exec("ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", STUB, HUB, check=False).returncode == 0

    # The route goes: so does the peer's right to it; the configured addresses stay.
    hub_host.ip("route", "del", STUB + "/32")
    wait_for(lambda: status(hub)["routes_via_peers"] == [], 5, interval=0.02, message="the mirror to empty")
    assert b.exec("ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", STUB, HUB, check=False).returncode != 0
    assert pings_once(hub_host, SPOKE_A) and pings_once(hub_host, SPOKE_B)
    assert "Traceback" not in hub.log()
