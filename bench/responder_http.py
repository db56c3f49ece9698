#!/usr/bin/env python3
"""Download rate of a 100 MB file: from the responder's http service vs the kernel over a veth.

- responder: one namespace, tunrelay (tun) with the responder at 198.51.100.9; curl fetches
  http://198.51.100.9/bytes/N (generated, SHA-256 checked) through tr0;
- kernel: two namespaces joined by a veth; Python's http.server serves an N-byte file from
  disk in one, curl fetches it from the other. Both use Linux's TCP on the client side.

    sudo python3 bench/responder_http.py [--bytes 100000000]
"""

import argparse
import hashlib
import json
import os
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


def responder_rate(size, directory):
    lab = Lab(directory)
    try:
        host = lab.host("r")
        lab.relay(host, responder_config("tun", lossy=False))
        host.ping(RESPONDER)
        output = os.path.join(directory, "responder.bin")
        rate = curl_rate(host, "http://%s/bytes/%d" % (RESPONDER, size), output)
        assert sha256_of(output) == hashlib.sha256(deterministic_bytes(size)).hexdigest()
        return rate
    finally:
        lab.close()


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
    parser.add_argument("--bytes", type=int, default=100 * 1000 * 1000)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "results", "responder_http.json"))
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        results = {"bytes": arguments.bytes,
                   "responder_bits_per_second": responder_rate(arguments.bytes, directory),
                   "kernel_veth_bits_per_second": kernel_rate(arguments.bytes, directory)}
    print("responder http:   %8.1f Mbit/s" % (results["responder_bits_per_second"] / 1e6))
    print("kernel over veth: %8.1f Mbit/s" % (results["kernel_veth_bits_per_second"] / 1e6))
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as stream:
        json.dump(results, stream, indent=2)


if __name__ == "__main__":
    main()
