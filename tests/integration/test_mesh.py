"""The routed mesh of etc/examples/mesh, built from its files: four sites in a ring 1-2-3-4-1
plus the diagonal 1-3, one ``twistd tunrelay`` per site (one tun tr0 shared by all of a site's
neighbours), FRR on sites 1 and 3, BIRD on 2 and 4, OSPFv2 point-to-multipoint over tr0 with
BFD at 100 ms, and an eBGP session from site 1 (FRR) to site 2 (BIRD) over their tunnel.

The relays carry only each neighbour's /32 and the OSPF groups in allowed_ips: every stub
prefix reaches a peer through the routes the daemons install via that neighbour, which the
relay follows for sending and for its source check. The test asserts that all 12 stub-to-stub
pairs ping, that a neighbour cannot send from another site's stub, that cutting the diagonal
reroutes within 1 s (the longest gap between replies of a 20 ms ping, from its own
timestamps), that restoring it brings traffic back to the direct next hop, that the BGP prefix
is pinged from site 1's stub, and that the relay follows a restarted BIRD's routes.

FRR's point-to-multipoint multicasts and BIRD's is unicast only; the BIRD sites load the
example's nftables shim (bird-ptmp-multicast.nft; see the example's README).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import yaml

from .conftest import require_tool
from .netns import REPOSITORY, wait_for
from .routers import Bird, Frr

EXAMPLE = os.path.join(REPOSITORY, "etc", "examples", "mesh")
SITES = (1, 2, 3, 4)
LINKS = {1: (1, 2), 2: (2, 3), 3: (3, 4), 4: (4, 1), 5: (1, 3)}   # link number: its two sites
DIAGONAL = 5
FRR_SITES = (1, 3)
BGP_PREFIX, BGP_ADDRESS = "203.0.113.200/29", "203.0.113.201"   # behind site 2, carried by eBGP
FAILOVER_LIMIT = 1.0   # seconds: the bound with BFD at 100 ms


def tunnel_address(site):
    return "198.51.100.%d" % site


def stub_address(site):
    return "203.0.113.%d" % (16 * site + 1)


def stub_prefix(site):
    return "203.0.113.%d/28" % (16 * site)


def neighbours(site):
    return sorted(b if a == site else a for a, b in LINKS.values() if site in (a, b))


class Mesh:
    """The four sites, built from the example files, with handles on their relays and daemons."""

    def __init__(self, lab):
        self.lab = lab
        self.hosts = {site: lab.host("s%d" % site) for site in SITES}
        for host in self.hosts.values():
            # Transit sites send packets out of tr0 that came in on it: no ICMP redirects (the
            # neighbour is not reachable "directly"), and no reverse-path filter on the ring.
            for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
                        "net.ipv4.conf.default.send_redirects=0", "net.ipv4.conf.all.rp_filter=0",
                        "net.ipv4.conf.default.rp_filter=0"):
                host.exec("sysctl", "-qw", key)
        for link, (a, b) in LINKS.items():
            lab.link(self.hosts[a], self.hosts[b], a_name="to%d" % b, b_name="to%d" % a)
            for site, other in ((a, b), (b, a)):
                self.hosts[site].ip("addr", "add", "198.18.%d.%d/24" % (link, site), "dev", "to%d" % other)
        for site, host in self.hosts.items():
            # No dummy links on this kernel: a veth pair with both ends here is the stub LAN.
            lab.link(host, host, a_name="stub0", b_name="stub0p")
            host.ip("addr", "add", "%s/28" % stub_address(site), "dev", "stub0")
        lab.link(self.hosts[2], self.hosts[2], a_name="bgp0", b_name="bgp0p")
        self.hosts[2].ip("addr", "add", "%s/29" % BGP_ADDRESS, "dev", "bgp0")
        rendered = os.path.join(lab.directory, "rendered")
        subprocess.run(["sh", os.path.join(EXAMPLE, "make-keys.sh"), rendered], check=True, capture_output=True,
                       env=dict(os.environ, TUNRELAY="%s -m tunrelay.cli" % sys.executable, PYTHONPATH=REPOSITORY))
        self.relays = {}
        for site in SITES:
            with open(os.path.join(rendered, "site%d.yaml" % site)) as stream:
                config = yaml.safe_load(stream)
            config["private_key_file"] = os.path.join(rendered, config["private_key_file"])
            del config["control_socket"]   # the harness gives each relay its own in tmp
            self.relays[site] = lab.relay(self.hosts[site], config)
        for site in SITES:
            if site not in FRR_SITES:
                self.hosts[site].exec("nft", "-D", "tunnel_address=%s" % tunnel_address(site), "-f",
                                      os.path.join(EXAMPLE, "bird-ptmp-multicast.nft"))
        self.routers = {site: self.start_router(site) for site in SITES}

    def start_router(self, site):
        """The site's daemons, configured from the example's file as it stands."""
        if site in FRR_SITES:
            with open(os.path.join(EXAMPLE, "frr-site%d.conf" % site)) as stream:
                daemons = ("ospfd", "bfdd", "bgpd") if site == 1 else ("ospfd", "bfdd")
                return Frr(self.hosts[site], self.lab.directory, stream.read(), daemons)
        with open(os.path.join(EXAMPLE, "bird-site%d.conf" % site)) as stream:
            return Bird(self.hosts[site], self.lab.directory, stream.read())

    def diagnostics(self):
        parts = []
        for site in SITES:
            host = self.hosts[site]
            parts.append("--- site %d\n%s\n%s\nrelay status:\n%s\nrelay log tail:\n%s" % (
                site, self.routers[site].diagnostics(), host.ip("route").stdout,
                self.relays[site].tool("status", "-s", self.relays[site].config["control_socket"]).stdout,
                self.relays[site].log()[-1500:]))
        return "\n".join(parts)

    def status(self, site):
        result = self.relays[site].tool("status", "-s", self.relays[site].config["control_socket"], "--json")
        assert result.returncode == 0, "tunrelay status at site %d: %s" % (site, result.stderr)
        return json.loads(result.stdout)

    def peer(self, site, peer_site):
        """Site ``site``'s relay's status of its peer ``peer_site``."""
        peers = {peer["name"]: peer for peer in self.status(site).get("peers", [])}
        return peers["site%d" % peer_site]

    def peer_tx(self, site, peer_site):
        return self.peer(site, peer_site)["tx_packets"]

    def peer_drops(self, site, peer_site):
        return self.peer(site, peer_site)["drops"]

    def mirrored(self, site):
        """The relay's routes via peers, from its status: {network: peer name}."""
        return {route["network"]: route["peer"] for route in self.status(site).get("routes_via_peers", [])}

    def adjacencies_complete(self):
        """Every site has every neighbour Full in OSPF and Up in BFD."""
        for site in SITES:
            expected = {tunnel_address(other) for other in neighbours(site)}
            router = self.routers[site]
            if router.ospf_full_neighbours() != expected or router.bfd_up_peers() != expected:
                return False
        return True

    def next_hop(self, site, destination, source):
        route = self.hosts[site].ip("route", "get", destination, "from", source, check=False).stdout
        match = re.search(r" via (\S+) dev tr0", route)
        return match.group(1) if match else None

    def pings(self, site, destination, source):
        return self.hosts[site].exec("ping", "-c", "1", "-W", "1", "-I", source, destination,
                                     check=False).returncode == 0


def _patient(mesh, condition, timeout, message):
    try:
        return wait_for(condition, timeout, interval=0.1, message=message)
    except AssertionError as error:
        raise AssertionError("%s\n%s" % (error, mesh.diagnostics())) from None


def measure_failover(mesh, cut, settled):
    """Ping site 3's stub from site 1's stub every 20 ms; ``cut()``, wait until ``settled()`` and
    half a second of replies after it; return the longest gap between replies (seconds)."""
    output_path = os.path.join(mesh.lab.directory, "failover-ping.txt")
    with open(output_path, "w") as output:
        ping = mesh.hosts[1].popen("ping", "-D", "-n", "-i", "0.02", "-W", "1", "-I", stub_address(1),
                                   stub_address(3), stdout=output, stderr=subprocess.STDOUT)
    try:
        def replies():
            with open(output_path) as stream:
                return [float(stamp) for stamp in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", stream.read(), re.M)]

        _patient(mesh, lambda: len(replies()) >= 25, 10, "ping replies before the cut")
        cut_at = time.time()
        cut()
        _patient(mesh, settled, 10, "the route to settle after the cut")
        _patient(mesh, lambda: len([t for t in replies() if t > cut_at]) >= 25 and replies()[-1] - cut_at > 0.5, 10,
                 "ping replies after the cut")
    finally:
        ping.send_signal(signal.SIGINT)
        ping.wait(5)
    stamps = replies()
    return max(later - earlier for earlier, later in zip(stamps, stamps[1:]))


def test_mesh_of_four_sites_reroutes_around_a_cut_tunnel(lab):
    for tool in ("bird", "birdc", "vtysh", "nft", os.path.join("/usr/lib/frr", "zebra")):
        require_tool(tool)
    mesh = Mesh(lab)
    _patient(mesh, mesh.adjacencies_complete, 40, "every OSPF adjacency Full and every BFD session Up")
    # Every stub reaches every other, from its stub address (so transit traffic passes the
    # source check at the far end through the learnt routes only).
    for site in SITES:
        for other in SITES:
            if other != site:
                _patient(mesh, lambda: mesh.pings(site, stub_address(other), stub_address(site)), 20,
                         "site %d's stub to ping site %d's stub" % (site, other))
    assert mesh.next_hop(1, stub_address(3), stub_address(1)) == tunnel_address(3)

    # The source check stays strict: site 2 may send from what site 1 routes via site 2, not
    # from site 4's stub (site 1 routes that via site 4), even though site 2 is a neighbour.
    # (The kernel will not send from a foreign address, so scapy writes the echo requests.)
    spoofs_before = mesh.peer_drops(1, 2).get("source_not_allowed", 0)
    spoof = ("from scapy.all import IP, ICMP, send\n"
             "send(IP(src=%r, dst=%r) / ICMP(), count=3, verbose=False)\n" % (stub_address(4), stub_address(1)))
    mesh.hosts[2].exec(sys.executable, "-c", spoof)
    _patient(mesh, lambda: mesh.peer_drops(1, 2).get("source_not_allowed", 0) >= spoofs_before + 3, 5,
             "site 1's relay to drop site 2's packets from site 4's stub")

    # Cut the diagonal's underlay at site 1: BFD notices in 300 ms, both ends reroute via 2 or 4.
    detours = {tunnel_address(2), tunnel_address(4)}
    gap = measure_failover(
        mesh, lambda: mesh.hosts[1].ip("link", "set", "to3", "down"),
        lambda: mesh.next_hop(1, stub_address(3), stub_address(1)) in detours
        and mesh.next_hop(3, stub_address(1), stub_address(3)) in detours)
    print("failover gap %.3f s" % gap)
    assert mesh.mirrored(1).get(stub_prefix(3)) in ("site2", "site4"), mesh.diagnostics()
    assert gap <= FAILOVER_LIMIT, "failover took %.3f s" % gap

    # Restore it: the adjacency comes back and traffic returns to the direct next hop.
    mesh.hosts[1].ip("link", "set", "to3", "up")
    _patient(mesh, lambda: mesh.next_hop(1, stub_address(3), stub_address(1)) == tunnel_address(3)
             and mesh.next_hop(3, stub_address(1), stub_address(3)) == tunnel_address(1), 30,
             "the direct route over the diagonal to come back")
    _patient(mesh, lambda: mesh.mirrored(1).get(stub_prefix(3)) == "site3"
             and mesh.mirrored(3).get(stub_prefix(1)) == "site1", 5,
             "the relays of sites 1 and 3 to follow the direct route again")
    sent_before = mesh.peer_tx(1, 3)
    _patient(mesh, lambda: mesh.pings(1, stub_address(3), stub_address(1)), 5,
             "site 1's stub to ping site 3's stub over the diagonal")
    _patient(mesh, lambda: mesh.peer_tx(1, 3) > sent_before, 5, "site 1 to send to site3 again")

    # eBGP from FRR (site 1) to BIRD (site 2) over their tunnel carries site 2's 203.0.113.200/29.
    route = _patient(mesh, lambda: mesh.hosts[1].ip("route", "show", BGP_PREFIX).stdout.strip(), 30,
                     "site 1 to learn %s over BGP" % BGP_PREFIX)
    assert "via %s dev tr0" % tunnel_address(2) in route and "proto bgp" in route, route
    _patient(mesh, lambda: mesh.pings(1, BGP_ADDRESS, stub_address(1)), 10, "site 1 to ping the BGP prefix")
    print("BGP prefix %s pinged from %s" % (BGP_PREFIX, stub_address(1)))

    # Restart site 4's BIRD: its routes leave the kernel and the relay's mirror with it, and
    # come back with the new process's adjacencies; site 4's stub reaches every stub again.
    mesh.routers[4].stop()
    _patient(mesh, lambda: mesh.mirrored(4) == {}, 10, "site 4's relay to drop the routes of the stopped BIRD")
    mesh.routers[4] = mesh.start_router(4)
    _patient(mesh, lambda: set(mesh.mirrored(4)) >= {stub_prefix(other) for other in SITES if other != 4}, 30,
             "site 4's relay to mirror the restarted BIRD's routes")
    for other in SITES:
        if other != 4:
            _patient(mesh, lambda: mesh.pings(4, stub_address(other), stub_address(4)), 20,
                     "site 4's stub to ping site %d's stub after the restart" % other)
    for site in SITES:
        assert "Traceback" not in mesh.relays[site].log()
