#!/usr/bin/env python3
"""Single-stream iperf3 TCP throughput: raw veth vs tunrelay tunnels, plaintext and encrypted.

Builds two namespaces joined by a veth (the lab from tests/integration), starts two relays
with the real twistd for each case, and runs `iperf3 -c` from A to B through the overlay.
Not a test: prints a table and writes JSON (default bench/results/iperf_tunnels.json).

    sudo python3 bench/iperf_tunnels.py [--seconds 10] [--cases tun-tcp,tun-udp] [--security plaintext,encrypted]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.integration.netns import Lab, wait_for  # noqa: E402
from tests.integration.test_two_hosts import CASES, encrypted, relay_config  # noqa: E402


def iperf(client, server, address, seconds):
    server_process = server.popen("iperf3", "-s", "-1", "-B", address, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    wait_for(lambda: ":5201 " in server.exec("ss", "-ltnH", check=False).stdout, 10, message="iperf3 server")
    result = client.exec("iperf3", "-c", address, "-t", str(seconds), "-J", timeout=seconds + 60)
    server_process.wait(10)
    report = json.loads(result.stdout)
    return report["end"]["sum_received"]["bits_per_second"]


def measure(case, security, seconds, directory):
    lab = Lab(directory)
    try:
        a, b = lab.underlay()
        if case == "veth":
            return iperf(a, b, "192.0.2.2", seconds)
        mode, a_listen, b_endpoint, b_listen = CASES[case]
        config_a, config_b = relay_config(mode, 1, a_listen), relay_config(mode, 2, b_listen, b_endpoint)
        if security == "encrypted":
            config_a, config_b = encrypted(config_a, directory, 1), encrypted(config_b, directory, 2)
        lab.relay(a, config_a)
        lab.relay(b, config_b)
        b.ping("198.51.100.1")
        return iperf(a, b, "198.51.100.2", seconds)
    finally:
        lab.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--cases", default="veth,tun-tcp,tun-udp,tap-tcp,tap-udp,tap-ethernet")
    parser.add_argument("--security", default="plaintext,encrypted")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "results", "iperf_tunnels.json"))
    arguments = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        for case in arguments.cases.split(","):
            for security in (["-"] if case == "veth" else arguments.security.split(",")):
                name = case if case == "veth" else "%s/%s" % (case, security)
                results[name] = measure(case, security, arguments.seconds, directory)
                print("%-32s %8.0f Mbit/s" % (name, results[name] / 1e6), flush=True)
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as stream:
        json.dump({"seconds": arguments.seconds, "bits_per_second": results}, stream, indent=2)
    print("wrote", arguments.output)


if __name__ == "__main__":
    main()
