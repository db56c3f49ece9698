#!/usr/bin/env python3
"""Download rate of a 100 MB file: from the responder's http service vs the kernel over a veth.

- responder: one namespace, tunrelay (tun) with the responder at 198.51.100.9; curl fetches
  http://198.51.100.9/bytes/N (generated, SHA-256 checked) through tr0;
- kernel: two namespaces joined by a veth; Python's http.server serves an N-byte file from
  disk in one, curl fetches it from the other. Both use Linux's TCP on the client side.

With ``--lossy`` it measures loss recovery instead, all in one run: the same download from
the responder with nftables dropping 1% and then 5% of the packets on tr0 in each direction,
once with the client offering SACK (the responder then recovers with RFC 6675 and RACK-TLP)
and once with net.ipv4.tcp_sack=0 in its namespace (NewReno), each case ``--rounds`` times
round-robin, reporting medians.

    sudo python3 bench/responder_http.py [--bytes 100000000]
    sudo python3 bench/responder_http.py --lossy [--bytes 20000000] [--rounds 3]
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.integration.netns import Lab, sha256_of, wait_for  # noqa: E402
from tests.integration.test_responder import RESPONDER, responder_config  # noqa: E402
from tunrelay.responder.services import deterministic_bytes  # noqa: E402


def curl_rate(host, url, output):
    result = host.exec("curl", "-sf", "--max-time", "600", "-o", output, "-w", "%{speed_download}", url, timeout=620)
    return float(result.stdout) * 8


def responder_rate(size, directory, loss_percent=0, sack=True):
    lab = Lab(directory)
    try:
        host = lab.host("r")
        lab.relay(host, responder_config("tun", lossy=False))
        host.ping(RESPONDER)
        host.exec("sysctl", "-qw", "net.ipv4.tcp_sack=%d" % sack)
        if loss_percent:
            drop_both_ways(host, loss_percent)
        output = os.path.join(directory, "responder.bin")
        rate = curl_rate(host, "http://%s/bytes/%d" % (RESPONDER, size), output)
        assert sha256_of(output) == hashlib.sha256(deterministic_bytes(size)).hexdigest()
        return rate
    finally:
        lab.close()


def drop_both_ways(host, percent):
    """nftables: drop ``percent``% of the packets into and out of tr0, at random."""
    host.exec("nft", "add table inet lossy")
    for chain, hook, match in (("out", "output", "oifname"), ("in", "input", "iifname")):
        host.exec("nft", "add chain inet lossy %s { type filter hook %s priority 0 ; }" % (chain, hook))
        host.exec("nft", "add rule inet lossy %s %s tr0 numgen random mod 100 < %d drop" % (chain, match, percent))


LOSS_CASES = [(loss, sack) for loss in (1, 5) for sack in (False, True)]


def lossy_rates(size, directory, rounds):
    """{"1% newreno": [bits/s per round], ...}, the cases interleaved round by round."""
    rates = {}
    for _ in range(rounds):
        for loss, sack in LOSS_CASES:
            name = "%d%% %s" % (loss, "sack" if sack else "newreno")
            rates.setdefault(name, []).append(responder_rate(size, directory, loss, sack))
    return rates


def lossy_main(arguments):
    size = arguments.bytes or 20 * 1000 * 1000
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        rates = lossy_rates(size, directory, arguments.rounds)
    results = {"bytes": size, "rounds": arguments.rounds,
               "median_bits_per_second": {name: statistics.median(values) for name, values in rates.items()},
               "bits_per_second": rates}
    for loss in (1, 5):
        newreno = results["median_bits_per_second"]["%d%% newreno" % loss]
        sack = results["median_bits_per_second"]["%d%% sack" % loss]
        print("%d%% loss each way: NewReno %7.1f Mbit/s, SACK %7.1f Mbit/s (x%.2f)"
              % (loss, newreno / 1e6, sack / 1e6, sack / newreno))
    return results


def kernel_rate(size, directory):
    lab = Lab(directory)
    try:
        a, b = lab.underlay(ipv6=False)
        served = os.path.join(directory, "served")
        os.makedirs(served, exist_ok=True)
        with open(os.path.join(served, "file.bin"), "wb") as stream:
            stream.write(deterministic_bytes(size))
        b.popen(sys.executable, "-m", "http.server", "8000", "--bind", "192.0.2.2", "--directory", served,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: ":8000 " in b.exec("ss", "-ltnH").stdout, 10, message="http.server")
        output = os.path.join(directory, "kernel.bin")
        rate = curl_rate(a, "http://192.0.2.2:8000/file.bin", output)
        assert os.path.getsize(output) == size
        return rate
    finally:
        lab.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=None, help="default 100 MB, or 20 MB with --lossy")
    parser.add_argument("--lossy", action="store_true", help="NewReno against SACK under 1%% and 5%% loss")
    parser.add_argument("--rounds", type=int, default=3, help="with --lossy: rounds of the four cases")
    parser.add_argument("--output", default=None)
    arguments = parser.parse_args()
    results_directory = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    if arguments.lossy:
        results = lossy_main(arguments)
        _write(arguments.output or os.path.join(results_directory, "responder_http_lossy.json"), results)
        return
    arguments.bytes = arguments.bytes or 100 * 1000 * 1000
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        results = {"bytes": arguments.bytes,
                   "responder_bits_per_second": responder_rate(arguments.bytes, directory),
                   "kernel_veth_bits_per_second": kernel_rate(arguments.bytes, directory)}
    print("responder http:   %8.1f Mbit/s" % (results["responder_bits_per_second"] / 1e6))
    print("kernel over veth: %8.1f Mbit/s" % (results["kernel_veth_bits_per_second"] / 1e6))
    _write(arguments.output or os.path.join(results_directory, "responder_http.json"), results)


def _write(path, results):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as stream:
        json.dump(results, stream, indent=2)


if __name__ == "__main__":
    main()
