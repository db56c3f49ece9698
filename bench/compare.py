#!/usr/bin/env python3
"""Side by side in one run: raw veth, OpenVPN 2.6, wireguard-go and tunrelay.

Every case gets two fresh namespaces joined by a veth (the lab from tests/integration:
underlay 192.0.2.1 <-> 192.0.2.2, overlay 198.51.100.1 in A <-> 198.51.100.2 in B, overlay
MTU 1400 for every tunnel) and, once both tunnel ends answer ping, is measured from A to B:

- rtt: median of ``ping -c 50 -i 0.02`` round trips (idle tunnel, measured first);
- throughput: ``iperf3 -c -t SECONDS -J``, one TCP stream, receiver's bits/s;
- udp64: ``iperf3 -u -l 64 -b 0 -t SECONDS``: as many 64-byte-payload datagrams (92-byte IP
  packets) as the sender can push; the rate is the datagrams the *receiving* iperf3 counted
  (its JSON: packets - lost_packets) divided by the receiver's interval. The offered rate and
  loss are kept in the JSON too. This is the delivered rate under overload, not a zero-loss
  (RFC 2544) rate;
- rss/cpu: for each tunnel process (A and B): peak RSS (VmHWM from /proc/PID/status, read
  after the measurements) and CPU seconds (utime+stime from /proc/PID/stat), both over the
  measurement phase and over the process's whole life (start-up and handshake included).
  The raw veth has no process, so none.

A case may put 1% random loss on the underlay (``-loss1``: nftables ``numgen random mod 100 < 1
drop`` at the ingress of both veth ends, so both directions lose; both ends first stop
passing GSO batches whole, so that each drop loses one packet), or pair tunrelay with a
stock wireguard-go (``tunrelay-wireguard-go``: tunrelay in A sends, wireguard-go in B
receives; ``wireguard-go-tunrelay`` the other way round).

Then the target ratios from the same run, and with ``--soak SECONDS`` an RSS
flatness check: the soak cases carry one iperf3 TCP stream for SECONDS while both relays'
VmRSS is sampled every second (first vs last sample).

Prints a table, writes JSON (``--output``, default bench/results/compare.json) and a bar chart
PNG beside it (same name, .png; needs matplotlib, the ``bench`` extra).

    sudo python3 bench/compare.py [--seconds 10] [--only veth,openvpn-udp,...] [--soak 60]
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.integration.netns import Lab, read_log, wait_for  # noqa: E402
from tests.integration.test_two_hosts import CASES, OVERLAY_A, OVERLAY_B, encrypted, relay_config  # noqa: E402
from tunrelay.crypto import keys  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
MTU = 1400  # relay_config's default; every tunnel gets the same overlay MTU
OPENVPN_PORT = 1194
WIREGUARD_PORT = 51820
PINGS, PING_INTERVAL = 50, 0.02

# name -> (kind, details); the order is the table's order. Every tunrelay case runs the default
# configuration (encrypted, interface.offload unset) unless its name says otherwise.
ALL_CASES = {
    "veth": ("veth", None),
    "openvpn-udp": ("openvpn", "udp"),
    "openvpn-tcp": ("openvpn", "tcp"),
    "wireguard-go": ("wireguard-go", None),
    "tunrelay-tun-udp": ("tunrelay", ("tun-udp", "encrypted")),
    "tunrelay-tun-tcp": ("tunrelay", ("tun-tcp", "encrypted")),
    "tunrelay-tap-udp": ("tunrelay", ("tap-udp", "encrypted")),
    "tunrelay-tap-tcp": ("tunrelay", ("tap-tcp", "encrypted")),
    "tunrelay-wireguard-go": ("mixed", "tunrelay-sends"),
    "wireguard-go-tunrelay": ("mixed", "wireguard-go-sends"),
    "openvpn-udp-loss1": ("openvpn", "udp"),
    "tunrelay-tun-udp-loss1": ("tunrelay", ("tun-udp", "encrypted")),
    "tunrelay-tun-udp-no-offload": ("tunrelay", ("tun-udp", "no-offload")),
    "tunrelay-tun-tcp-plaintext": ("tunrelay", ("tun-tcp", "plaintext")),
    "tunrelay-tun-tcp-offload": ("tunrelay", ("tun-tcp", "offload")),
}
LOSS_PERCENT = 1   # of the -loss1 cases, on both underlay ingresses

# (name, numerator case, denominator case, metric, comparison, target)
RATIOS = [
    ("tun/UDP vs OpenVPN-UDP throughput", "tunrelay-tun-udp", "openvpn-udp", "throughput_bps", ">=", 2),
    ("tun/UDP vs wireguard-go throughput", "tunrelay-tun-udp", "wireguard-go", "throughput_bps", ">=", 2),
    ("tunrelay -> wireguard-go vs wireguard-go pair", "tunrelay-wireguard-go", "wireguard-go", "throughput_bps",
     ">=", 1),
    ("wireguard-go -> tunrelay vs wireguard-go pair", "wireguard-go-tunrelay", "wireguard-go", "throughput_bps",
     ">=", 1),
    ("tun/UDP vs OpenVPN-UDP throughput, 1% loss", "tunrelay-tun-udp-loss1", "openvpn-udp-loss1", "throughput_bps",
     ">=", 1),
    ("tap/UDP vs tun/UDP throughput", "tunrelay-tap-udp", "tunrelay-tun-udp", "throughput_bps", ">=", 0.8),
    ("64-byte packet rate tun/UDP vs OpenVPN-UDP", "tunrelay-tun-udp", "openvpn-udp", "udp64_rx_pps", ">=", 1.5),
    ("median RTT tun/UDP vs OpenVPN-UDP", "tunrelay-tun-udp", "openvpn-udp", "rtt_median_ms", "<=", 2),
    ("TCP super-packets (offload) vs OpenVPN-UDP throughput", "tunrelay-tun-tcp-offload", "openvpn-udp",
     "throughput_bps", ">=", 5),
    ("tun/UDP default vs without offload throughput", "tunrelay-tun-udp", "tunrelay-tun-udp-no-offload",
     "throughput_bps", ">=", 1),
]

# An RSS sampled at the end of the soak within this fraction of the first sample counts as flat.
SOAK_FLAT_TOLERANCE = 0.05

# More than this many CPUs busy with other work just before a case: its numbers get a warning.
BUSY_WARNING = 0.25

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- per-process accounting ------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of ``pid`` (all its threads; children not included), in seconds."""
    with open("/proc/%d/stat" % pid) as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as stream:
        for line in stream:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s in /proc/%d/status" % (key, pid))


def busy_cpus(seconds=1.0):
    """CPUs' worth of time spent busy machine-wide over ``seconds`` (from /proc/stat).

    Sampled between cases, while this benchmark runs nothing, it shows what other work on the
    machine is competing with the measurements."""
    def sample():
        with open("/proc/stat") as stream:
            values = [int(value) for value in stream.readline().split()[1:]]
        return sum(values[:8]), values[3] + values[4]  # total without guest time (already in user), idle+iowait
    total_before, idle_before = sample()
    time.sleep(seconds)
    total_after, idle_after = sample()
    total = total_after - total_before
    return (os.cpu_count() or 1) * (1 - (idle_after - idle_before) / total) if total else 0.0


def command_name(pid):
    with open("/proc/%d/comm" % pid) as stream:
        return stream.read().strip()


# --- the tunnels -------------------------------------------------------------------------

def generate_certificate(directory, name):
    """A self-signed P-256 certificate and key (openssl), and its SHA-256 fingerprint."""
    key, certificate = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-sha256", "-days", "2", "-subj", "/CN=" + name, "-keyout", key, "-out", certificate],
                   check=True, capture_output=True)
    output = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", certificate],
                            check=True, capture_output=True, text=True).stdout
    return certificate, key, output.strip().split("=", 1)[1]


def start_openvpn(a, b, directory, transport):
    """OpenVPN 2.6 p2p with TLS: A is --tls-server, B --tls-client, self-signed certificates checked
    with --peer-fingerprint. Userspace data channel (--disable-dco) with OpenVPN's default cipher
    negotiation; the negotiated cipher is read from the log."""
    certificates = {name: generate_certificate(directory, "openvpn-" + name) for name in ("a", "b")}
    processes, logs = {}, {}
    for side, host, other, local, remote_overlay in (("a", a, "b", OVERLAY_A, OVERLAY_B),
                                                      ("b", b, "a", OVERLAY_B, OVERLAY_A)):
        certificate, key, _ = certificates[side]
        command = ["openvpn", "--dev", "ovpn9", "--dev-type", "tun", "--topology", "p2p",
                   "--ifconfig", local, remote_overlay, "--tun-mtu", str(MTU),
                   "--cert", certificate, "--key", key, "--peer-fingerprint", certificates[other][2],
                   "--dh", "none", "--disable-dco", "--verb", "3"]
        if side == "a":
            command += ["--tls-server", "--local", "192.0.2.1", "--lport", str(OPENVPN_PORT),
                        "--proto", "udp" if transport == "udp" else "tcp-server"]
        else:
            command += ["--tls-client", "--remote", "192.0.2.1", str(OPENVPN_PORT), "--nobind",
                        "--connect-retry", "1", "--proto", "udp" if transport == "udp" else "tcp-client"]
        logs[side] = os.path.join(directory, "openvpn-%s-%s.log" % (transport, side))
        with open(logs[side], "w") as log:
            processes[side] = host.popen(*command, stdout=log, stderr=subprocess.STDOUT)
        if side == "a" and transport == "tcp":
            wait_for(lambda: "Listening for incoming TCP connection" in read_log(logs["a"])
                     or processes["a"].poll() is not None, 30, message="openvpn A to listen")
    for side in ("a", "b"):
        wait_for(lambda: "Initialization Sequence Completed" in read_log(logs[side])
                 or processes[side].poll() is not None, 60, message="openvpn %s to complete its handshake" % side)
        if processes[side].poll() is not None:
            raise RuntimeError("openvpn %s exited:\n%s" % (side, read_log(logs[side])))
    ciphers = sorted(set(re.findall(r"Data Channel: cipher '([^']+)'", read_log(logs["a"]) + read_log(logs["b"]))))
    return {"a": processes["a"].pid, "b": processes["b"].pid}, {"cipher": ",".join(ciphers) or "unknown",
                                                                  "dco": False}


SIDES = {"a": (OVERLAY_A, OVERLAY_B, "192.0.2.2"), "b": (OVERLAY_B, OVERLAY_A, "192.0.2.1")}


def wireguard_go_side(host, side, directory, private, peer_public):
    """wireguard-go (userspace; this kernel has no WireGuard) on one side, set up with wg(8); its pid."""
    overlay, other_overlay, other_underlay = SIDES[side]
    # wireguard-go's control socket is /var/run/wireguard/DEVICE.sock, shared by all namespaces:
    # device names unique to this run and side keep two instances (or a parallel test) apart.
    device = "wg%s%d" % (side, os.getpid() % 100000)
    key_path = os.path.join(directory, "wg-%s.key" % side)
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(keys.encode_key(private) + "\n")
    environment = dict(os.environ, WG_PROCESS_FOREGROUND="1")
    with open(os.path.join(directory, "wireguard-go-%s.log" % side), "w") as log:
        process = host.popen("wireguard-go", device, env=environment, stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: host.has_link(device) or process.poll() is not None, 10, message="wireguard-go's device")
    if process.poll() is not None:
        raise RuntimeError("wireguard-go in %s exited:\n%s" % (side, read_log(log.name)))
    host.exec("wg", "set", device, "private-key", key_path, "listen-port", str(WIREGUARD_PORT),
              "peer", keys.encode_key(peer_public), "allowed-ips", other_overlay + "/32",
              "endpoint", "%s:%d" % (other_underlay, WIREGUARD_PORT))
    host.ip("addr", "add", overlay + "/24", "dev", device)
    host.ip("link", "set", device, "mtu", str(MTU), "up")
    return process.pid


def start_wireguard_go(a, b, directory):
    """wireguard-go in both namespaces."""
    private = {"a": keys.generate_private_key(), "b": keys.generate_private_key()}
    return {side: wireguard_go_side(host, side, directory, private[side], keys.public_key(private[other]))
            for side, host, other in (("a", a, "b"), ("b", b, "a"))}, {"wireguard_go": wireguard_go_version()}


def wireguard_go_version():
    result = subprocess.run(["wireguard-go", "--version"], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr) else "unknown"


def start_mixed(lab, a, b, directory, order):
    """tunrelay (default configuration, tun over UDP) on one side, a stock wireguard-go on the other.
    ``tunrelay-sends``: tunrelay in A (the iperf3 sender's side); else wireguard-go in A."""
    tunrelay_side, go_side = ("a", "b") if order == "tunrelay-sends" else ("b", "a")
    go_private = keys.generate_private_key()
    last = 1 if tunrelay_side == "a" else 2
    config = encrypted(relay_config("tun", last, ["udp://%s:%d" % ("192.0.2.%d" % last, WIREGUARD_PORT)],
                                    "udp://%s:%d" % (SIDES[tunrelay_side][2], WIREGUARD_PORT), mtu=MTU),
                       directory, last)
    config["peers"][0]["public_key"] = keys.encode_key(keys.public_key(go_private))
    relay = lab.relay(a if tunrelay_side == "a" else b, config)
    relay_public = keys.public_key(keys.decode_key(open(config["private_key_file"]).read().strip()))
    go_pid = wireguard_go_side(b if go_side == "b" else a, go_side, directory, go_private, relay_public)
    return {tunrelay_side: relay.process.pid, go_side: go_pid}, {"order": order,
                                                                 "wireguard_go": wireguard_go_version()}


def add_loss(hosts, percent):
    """Random loss of packets at the ingress of each host's underlay (both directions, since
    both hosts lose; the veth cuts GSO batches first, so a drop is one packet: netns.py)."""
    for host in hosts:
        host.lose_underlay_packets(percent)


def start_tunrelay(lab, a, b, directory, case, security, extra_twistd=()):
    """Two real twistd relays with the integration tests' configs (relay_config, encrypted)."""
    mode, a_listen, b_endpoint, b_listen = CASES[case]
    config_a, config_b = relay_config(mode, 1, a_listen, mtu=MTU), relay_config(mode, 2, b_listen, b_endpoint,
                                                                                 mtu=MTU)
    if security != "plaintext":
        config_a, config_b = encrypted(config_a, directory, 1), encrypted(config_b, directory, 2)
    for config in (config_a, config_b):
        if security == "offload":   # TSO super-packets, exchanged whole between the peers (over TCP)
            config["interface"]["offload"] = True
            config["peers"][0]["offload"] = True
        elif security == "no-offload":   # one plain read and write per packet, as before offload
            config["interface"]["offload"] = False
    relay_a, relay_b = lab.relay(a, config_a, extra_twistd), lab.relay(b, config_b, extra_twistd)
    return {"a": relay_a.process.pid, "b": relay_b.process.pid}, {"mode": mode, "security": security,
                                                                   "logs": [relay_a.log_path, relay_b.log_path]}


# --- the measurements --------------------------------------------------------------------

def iperf_server(host, address, json_output=False):
    """A one-shot iperf3 server on ``address``; returns the process (stdout piped if JSON wanted)."""
    arguments = ["iperf3", "-s", "-1", "-B", address] + (["-J"] if json_output else [])
    process = host.popen(*arguments, stdout=subprocess.PIPE if json_output else subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, text=True)
    wait_for(lambda: ":5201 " in host.exec("ss", "-lnH", check=False).stdout or process.poll() is not None, 10,
             message="iperf3 server")
    return process


def measure_rtt(a, address):
    result = a.exec("ping", "-n", "-c", str(PINGS), "-i", str(PING_INTERVAL), "-W", "2", address, check=False,
                    timeout=PINGS * PING_INTERVAL + 30)
    times = [float(value) for value in re.findall(r"time=([0-9.]+) ms", result.stdout)]
    if not times:
        raise RuntimeError("no ping answered:\n" + result.stdout + result.stderr)
    return {"rtt_median_ms": statistics.median(times), "rtt_min_ms": min(times), "rtt_max_ms": max(times),
            "rtt_answered": len(times), "rtt_sent": PINGS}


def measure_tcp(a, b, address, seconds):
    server = iperf_server(b, address)
    result = a.exec("iperf3", "-c", address, "-t", str(seconds), "-J", check=False, timeout=seconds + 60)
    server.wait(30)
    report = json.loads(result.stdout)
    if "error" in report:
        raise RuntimeError("iperf3 TCP: " + report["error"])
    return {"throughput_bps": report["end"]["sum_received"]["bits_per_second"],
            "tcp_retransmits": report["end"]["sum_sent"].get("retransmits")}


def measure_udp64(a, b, address, seconds):
    server = iperf_server(b, address, json_output=True)
    client = a.exec("iperf3", "-c", address, "-u", "-l", "64", "-b", "0", "-t", str(seconds), "-J", check=False,
                    timeout=seconds + 60)
    server_output, _ = server.communicate(timeout=60)
    sent, received = json.loads(client.stdout), json.loads(server_output)
    for report in (sent, received):
        if "error" in report:
            raise RuntimeError("iperf3 UDP: " + report["error"])
    # The receiver's own view: packets is the highest sequence number seen, lost_packets the gaps.
    summary = received["end"]["sum"]
    delivered = summary["packets"] - summary["lost_packets"]
    sender_summary = sent["end"]["sum"]
    return {"udp64_rx_pps": delivered / summary["seconds"],
            "udp64_tx_pps": sender_summary["packets"] / sender_summary["seconds"],
            "udp64_rx_packets": delivered, "udp64_tx_packets": sender_summary["packets"],
            "udp64_loss_percent": 100.0 * (1 - delivered / sender_summary["packets"])
            if sender_summary["packets"] else None}


def soak(a, b, address, pids, seconds):
    """One TCP stream for ``seconds`` while VmRSS of each process is sampled every second."""
    server = iperf_server(b, address)
    client = a.popen("iperf3", "-c", address, "-t", str(seconds), "-J", stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, text=True)
    samples = {side: [] for side in pids}
    started = time.monotonic()
    for tick in range(1, seconds + 1):
        time.sleep(max(0.0, started + tick - time.monotonic()))
        for side, pid in pids.items():
            samples[side].append(status_kib(pid, "VmRSS"))
    output, _ = client.communicate(timeout=seconds + 60)
    server.wait(30)
    report = json.loads(output)
    result = {"seconds": seconds, "interval_seconds": 1,
              "throughput_bps": report.get("end", {}).get("sum_received", {}).get("bits_per_second"),
              "tolerance": SOAK_FLAT_TOLERANCE, "processes": {}}
    for side, values in samples.items():
        first, last = values[0], values[-1]
        result["processes"][side] = {"rss_kib_samples": values, "first_kib": first, "last_kib": last,
                                     "max_kib": max(values), "growth_kib": last - first,
                                     "flat": last <= first * (1 + SOAK_FLAT_TOLERANCE)}
    result["flat"] = all(process["flat"] for process in result["processes"].values())
    return result


def measure_case(name, seconds, soak_seconds, directory):
    kind, details = ALL_CASES[name]
    case_directory = os.path.join(directory, name)
    os.makedirs(case_directory)
    os.chmod(case_directory, 0o755)
    lab = Lab(case_directory)
    result = {"case": name, "kind": kind, "loadavg_before": os.getloadavg(), "busy_cpus_before": busy_cpus()}
    try:
        a, b = lab.underlay(ipv6=False)
        result["namespaces"] = [a.name, b.name]  # all gone again after lab.close()
        if kind == "veth":
            pids, info, address = {}, {}, "192.0.2.2"
        else:
            if kind == "openvpn":
                pids, info = start_openvpn(a, b, case_directory, details)
            elif kind == "wireguard-go":
                pids, info = start_wireguard_go(a, b, case_directory)
            elif kind == "mixed":
                pids, info = start_mixed(lab, a, b, case_directory, details)
            else:
                pids, info = start_tunrelay(lab, a, b, case_directory, *details)
            info.pop("logs", None)
            address = OVERLAY_B
            b.ping(OVERLAY_A, timeout=30)
            a.ping(OVERLAY_B)
            if name.endswith("-loss1"):
                add_loss((a, b), LOSS_PERCENT)
                info["loss_percent_each_way"] = LOSS_PERCENT
        result.update(info)
        result["processes"] = {side: {"pid": pid, "command": command_name(pid)} for side, pid in pids.items()}
        cpu_before = {side: cpu_seconds(pid) for side, pid in pids.items()}
        result.update(measure_rtt(a, address))
        result.update(measure_tcp(a, b, address, seconds))
        result.update(measure_udp64(a, b, address, seconds))
        for side, pid in pids.items():
            total = cpu_seconds(pid)
            result["processes"][side].update(peak_rss_kib=status_kib(pid, "VmHWM"),
                                             cpu_seconds=total - cpu_before[side], cpu_seconds_lifetime=total)
        if pids:
            result["peak_rss_kib"] = max(process["peak_rss_kib"] for process in result["processes"].values())
            result["cpu_seconds"] = sum(process["cpu_seconds"] for process in result["processes"].values())
        else:
            result["peak_rss_kib"] = result["cpu_seconds"] = None
        result["loadavg_after"] = os.getloadavg()
        if soak_seconds and pids:
            try:
                result["soak"] = soak(a, b, address, pids, soak_seconds)
            except Exception as error:  # keep the case's measurements; the run still fails
                result["soak"] = {"error": "%s: %s" % (type(error).__name__, error), "flat": None}
    except Exception as error:  # one broken case must not hide the others: record it, carry on
        result["error"] = "%s: %s" % (type(error).__name__, error)
        result["logs"] = {os.path.basename(path): read_log(path)[-4000:] for path in sorted(
            os.path.join(case_directory, entry) for entry in os.listdir(case_directory) if entry.endswith(".log"))}
    finally:
        lab.close()
    return result


# --- reporting ---------------------------------------------------------------------------

def ratios(results, rounds=()):
    """Each target ratio; with several rounds, the median of the per-round ratios (each round
    measures numerator and denominator minutes apart, so a noisy spell hits both)."""
    computed = []
    for label, numerator, denominator, metric, comparison, target in RATIOS:
        entry = {"name": label, "numerator": numerator, "denominator": denominator, "metric": metric,
                 "target": "%s %s" % (comparison, target), "ratio": None, "met": None}
        per_round = [top / bottom for top, bottom in (
            ((run.get(numerator) or {}).get(metric), (run.get(denominator) or {}).get(metric)) for run in rounds)
            if top is not None and bottom]
        top, bottom = (results.get(numerator) or {}).get(metric), (results.get(denominator) or {}).get(metric)
        if per_round:
            entry["ratio"], entry["per_round"] = statistics.median(per_round), per_round
        elif top is not None and bottom:
            entry["ratio"] = top / bottom
        if entry["ratio"] is not None:
            entry["met"] = entry["ratio"] >= target if comparison == ">=" else entry["ratio"] <= target
        computed.append(entry)
    return computed


SUMMARISED = ("throughput_bps", "rtt_median_ms", "udp64_rx_pps", "udp64_tx_pps")


def summarise(runs):
    """One case over several rounds: the last good run, its headline metrics replaced by the
    medians over every good round (all rounds' values kept under ``rounds``)."""
    good = [run for run in runs if "error" not in run]
    if not good:
        return runs[-1]
    summary = dict(good[-1])
    summary["rounds"] = {metric: [run[metric] for run in good] for metric in SUMMARISED}
    for metric in SUMMARISED:
        summary[metric] = statistics.median(summary["rounds"][metric])
    summary["failed_rounds"] = len(runs) - len(good)
    return summary


def cell(value, scale=1.0, digits=1):
    return "-" if value is None else "%.*f" % (digits, value / scale)


def per_side(result, key, scale, digits):
    processes = result.get("processes") or {}
    if not processes or any(key not in process for process in processes.values()):
        return "-"
    return "/".join(cell(processes[side][key], scale, digits) for side in ("a", "b"))


def table(results):
    header = "%-28s %10s %9s %11s %11s %16s %13s %10s" % (
        "case", "TCP Mbit/s", "RTT ms", "64B rx pps", "64B tx pps", "peak RSS MiB a/b", "CPU s a/b", "other CPUs")
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        if "error" in result:
            lines.append("%-28s FAILED: %s" % (name, result["error"].splitlines()[0][:120]))
            continue
        lines.append("%-28s %10s %9s %11s %11s %16s %13s %10s" % (
            name, cell(result["throughput_bps"], 1e6, 0), cell(result["rtt_median_ms"], 1, 3),
            cell(result["udp64_rx_pps"], 1, 0), cell(result["udp64_tx_pps"], 1, 0),
            per_side(result, "peak_rss_kib", 1024, 1), per_side(result, "cpu_seconds", 1, 1),
            cell(result["busy_cpus_before"], 1, 2)))
    return "\n".join(lines)


def ratio_lines(computed):
    lines = []
    for entry in computed:
        if entry["ratio"] is None:
            verdict = "n/a (needs %s and %s)" % (entry["numerator"], entry["denominator"])
            lines.append("%-55s %8s  target %-6s %s" % (entry["name"], "-", entry["target"], verdict))
        else:
            spread = " (rounds: %s)" % ", ".join("%.2f" % value for value in entry["per_round"]) \
                if len(entry.get("per_round", ())) > 1 else ""
            lines.append("%-55s %8.2f  target %-6s %s%s" % (entry["name"], entry["ratio"], entry["target"],
                                                           "met" if entry["met"] else "NOT met", spread))
    return "\n".join(lines)


def soak_lines(results):
    lines = []
    for name, result in results.items():
        if "error" in (result.get("soak") or {}):
            lines.append("%-28s soak FAILED: %s" % (name, result["soak"]["error"].splitlines()[0][:120]))
        for side, process in sorted(((result.get("soak") or {}).get("processes") or {}).items()):
            lines.append("%-28s %s: RSS first %7.1f MiB, last %7.1f MiB, max %7.1f MiB, growth %+6.1f%% over %ds: %s"
                         % (name, side, process["first_kib"] / 1024, process["last_kib"] / 1024,
                            process["max_kib"] / 1024, 100.0 * process["growth_kib"] / process["first_kib"],
                            result["soak"]["seconds"], "flat" if process["flat"] else "NOT flat"))
    return "\n".join(lines)


def chart(results, path, seconds):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = [name for name, result in results.items() if "error" not in result]
    panels = [("single-stream TCP (Mbit/s)", lambda r: [r["throughput_bps"] / 1e6]),
              ("median ping RTT (ms)", lambda r: [r["rtt_median_ms"]]),
              ("64-byte UDP delivered (packets/s)", lambda r: [r["udp64_rx_pps"]]),
              ("peak RSS per process, a | b (MiB)", lambda r: [r["processes"][s]["peak_rss_kib"] / 1024
                                                                for s in ("a", "b")] if r["processes"] else []),
              ("CPU s during measurements, a | b", lambda r: [r["processes"][s]["cpu_seconds"] for s in ("a", "b")]
               if r["processes"] else [])]
    figure, axes = pyplot.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), constrained_layout=True)
    colours = ["#888888" if results[name]["kind"] == "veth" else "#d62728" if results[name]["kind"] == "openvpn"
               else "#9467bd" if results[name]["kind"] == "wireguard-go" else "#17becf"
               if results[name]["kind"] == "mixed" else "#1f77b4" for name in names]
    for axis, (title, values) in zip(axes, panels):
        for index, name in enumerate(names):
            bars = values(results[name])
            width = 0.8 / max(1, len(bars))
            for offset, value in enumerate(bars):
                x = index - 0.4 + width * (offset + 0.5)
                axis.bar(x, value, width * 0.9, color=colours[index], alpha=1.0 if offset == 0 else 0.6)
                axis.annotate("%.0f" % value if value >= 100 else "%.3g" % value, (x, value), ha="center",
                              va="bottom", fontsize=7)
            if not bars:
                axis.annotate("n/a", (index, 0), xytext=(0, 3), textcoords="offset points", ha="center",
                              va="bottom", fontsize=7)
        plotted = [value for name in names for value in values(results[name]) if value > 0]
        if plotted and max(plotted) > 20 * min(plotted):  # the raw veth would flatten the tunnels
            axis.set_yscale("log")
            title += ", log scale"
        axis.set_title(title, fontsize=10)
        axis.set_xticks(range(len(names)))
        axis.set_xticklabels(names, rotation=15, fontsize=8)
        axis.margins(y=0.15)
    figure.suptitle("tunrelay vs OpenVPN 2.6 vs wireguard-go, two namespaces over a veth (%d s per test)" % seconds)
    figure.savefig(path, dpi=90)
    pyplot.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each iperf3 run (default 10)")
    parser.add_argument("--only", default=",".join(ALL_CASES),
                        help="comma-separated cases (default all): " + ", ".join(ALL_CASES))
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every case this many times, round-robin; report medians (default 1)")
    parser.add_argument("--soak", type=int, default=0, metavar="SECONDS",
                        help="RSS flatness run of SECONDS on each --soak-cases case (default 0: none)")
    parser.add_argument("--soak-cases", default="tunrelay-tun-tcp,tunrelay-tun-udp")
    parser.add_argument("--output", default=os.path.join(BENCH, "results", "compare.json"),
                        help="JSON path; the PNG goes beside it with .png")
    arguments = parser.parse_args()
    cases = [case for case in arguments.only.split(",") if case]
    unknown = [case for case in cases + arguments.soak_cases.split(",") if case and case not in ALL_CASES]
    if unknown or not cases:
        parser.error("unknown case(s) %s; known: %s" % (", ".join(unknown), ", ".join(ALL_CASES)))
    if arguments.seconds < 1 or arguments.soak < 0 or arguments.rounds < 1:
        parser.error("--seconds and --rounds must be at least 1 and --soak at least 0")
    import matplotlib  # noqa: F401  (fail now, not after the whole run)
    needed = {"ip", "ping", "ss", "iperf3", "twistd"}
    for case in cases:
        needed |= {"openvpn": {"openvpn", "openssl"}, "wireguard-go": {"wireguard-go", "wg"},
                   "mixed": {"wireguard-go", "wg"}}.get(ALL_CASES[case][0], set())
        if case.endswith("-loss1"):
            needed |= {"nft", "ethtool"}
    missing = sorted(tool for tool in needed if shutil.which(tool) is None)
    if missing:
        sys.exit("compare.py: missing tools: " + ", ".join(missing))
    # SIGTERM unwinds like Ctrl-C, so the finally clauses remove namespaces and processes.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))

    png = os.path.splitext(arguments.output)[0] + ".png"
    document = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "seconds": arguments.seconds, "cpus": os.cpu_count(), "kernel": os.uname().release,
                "overlay_mtu": MTU, "pings": PINGS, "ping_interval": PING_INTERVAL,
                "udp_payload_bytes": 64, "cases": {}}
    soak_cases = set(arguments.soak_cases.split(","))
    rounds = []
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        for number in range(1, arguments.rounds + 1):
            round_directory = os.path.join(directory, "round-%d" % number)
            os.makedirs(round_directory)
            os.chmod(round_directory, 0o755)
            last = number == arguments.rounds   # the soak runs once, in the last round
            rounds.append({})
            for case in cases:
                print("round %d/%d: measuring %s ..." % (number, arguments.rounds, case), file=sys.stderr, flush=True)
                result = measure_case(case, arguments.seconds,
                                      arguments.soak if last and case in soak_cases else 0, round_directory)
                rounds[-1][case] = result
                if "error" in result:
                    print("  %s failed: %s" % (case, result["error"]), file=sys.stderr, flush=True)
    document["rounds"] = arguments.rounds
    document["cases"] = {case: summarise([run[case] for run in rounds]) for case in cases}
    document["ratios"] = ratios(document["cases"], rounds if arguments.rounds > 1 else ())
    if arguments.rounds > 1:
        print("Medians of %d rounds (every round measures every case in turn; each round's values are in the"
              " JSON under 'rounds'):" % arguments.rounds)
    print(table(document["cases"]))
    print("\n(64B: 64-byte UDP payloads sent with iperf3 -b 0; rx = delivered to the receiver, tx = offered;"
          " RSS = VmHWM; CPU = utime+stime during the measurements; a = 192.0.2.1 side, b = 192.0.2.2 side;\n"
          " other CPUs = CPUs' worth of work by other processes in the second before the case started,"
          " of %d)" % (os.cpu_count() or 1))
    contended = [name for name, result in document["cases"].items() if result["busy_cpus_before"] > BUSY_WARNING]
    if contended:
        print("WARNING: other work was using the CPUs before %s: those numbers are contended;"
              " rerun on a quiet machine." % ", ".join(contended))
    print("\nTarget ratios (same run%s):" % (
        "; median of the %d per-round ratios" % arguments.rounds if arguments.rounds > 1 else ""))
    print(ratio_lines(document["ratios"]))
    soaked = soak_lines(document["cases"])
    if soaked:
        print("\nRSS during the soak (VmRSS every second; flat = last within %d%% of first):"
              % round(SOAK_FLAT_TOLERANCE * 100))
        print(soaked)
    os.makedirs(os.path.dirname(os.path.abspath(arguments.output)), exist_ok=True)
    with open(arguments.output, "w") as stream:
        json.dump(document, stream, indent=2)
    chart(document["cases"], png, arguments.seconds)
    print("\nwrote %s and %s" % (arguments.output, png))
    failed = any("error" in result or "error" in (result.get("soak") or {}) for result in document["cases"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
