#!/usr/bin/env python3
"""Single-stream iperf3 TCP throughput: raw veth vs tunrelay plaintext tunnels.

Builds two namespaces joined by a veth (the lab from tests/integration), starts two relays
with the real twistd for each case, and runs `iperf3 -c` from A to B through the overlay.
Not a test: prints a table and writes JSON (default bench/results/plaintext_iperf.json).

    sudo python3 bench/plaintext_iperf.py [--seconds 10] [--cases tun-tcp,tun-udp]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.integration.netns import Lab, wait_for  # noqa: E402
from tests.integration.test_two_hosts import CASES, relay_config  # noqa: E402


def iperf(client, server, address, seconds):
    server_process = server.popen("iperf3", "-s", "-1", "-B", address, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    wait_for(lambda: ":5201 " in server.exec("ss", "-ltnH", check=False).stdout, 10, message="iperf3 server")
    result = client.exec("iperf3", "-c", address, "-t", str(seconds), "-J", timeout=seconds + 60)
    server_process.wait(10)
    report = json.loads(result.stdout)
    return report["end"]["sum_received"]["bits_per_second"]


def measure(case, seconds, directory):
    lab = Lab(directory)
    try:
        a, b = lab.underlay()
        if case == "veth":
            return iperf(a, b, "192.0.2.2", seconds)
        mode, a_listen, b_endpoint, b_listen = CASES[case]
        lab.relay(a, relay_config(mode, 1, a_listen))
        lab.relay(b, relay_config(mode, 2, b_listen, b_endpoint))
        b.ping("198.51.100.1")
        return iperf(a, b, "198.51.100.2", seconds)
    finally:
        lab.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--cases", default="veth,tun-tcp,tun-udp,tap-tcp,tap-udp,tap-ethernet")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "results", "plaintext_iperf.json"))
    arguments = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        for case in arguments.cases.split(","):
            results[case] = measure(case, arguments.seconds, directory)
            print("%-24s %8.0f Mbit/s" % (case, results[case] / 1e6), flush=True)
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as stream:
        json.dump({"seconds": arguments.seconds, "bits_per_second": results}, stream, indent=2)
    print("wrote", arguments.output)


if __name__ == "__main__":
    main()
