"""bench/compare.py, briefly: two cases, one second each, a short soak.

Checks that the script runs end to end in namespaces, records every metric for every case
it measured (none of the per-process ones for the raw veth), writes the PNG, and leaves no
namespace behind. The numbers themselves are not judged here: this is not a benchmark.
"""

import importlib.util
import json
import os
import subprocess
import sys

from .conftest import _REASON, require, require_tool
from .netns import REPOSITORY

METRICS = ("throughput_bps", "rtt_median_ms", "udp64_rx_pps", "peak_rss_kib", "cpu_seconds")
PROCESS_METRICS = ("peak_rss_kib", "cpu_seconds", "cpu_seconds_lifetime")


def test_compare_smoke(tmp_path):
    require(_REASON)
    require_tool("iperf3")
    # matplotlib is the bench extra: required in CI (TUNRELAY_REQUIRE_NETNS=1), a skip elsewhere.
    require(None if importlib.util.find_spec("matplotlib") else
            "matplotlib is not installed (pip install '.[bench]')")
    output = tmp_path / "compare.json"
    result = subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, "bench", "compare.py"), "--only", "veth,tunrelay-tun-udp",
         "--seconds", "1", "--soak", "2", "--soak-cases", "tunrelay-tun-udp", "--output", str(output)],
        capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr

    document = json.loads(output.read_text())
    assert list(document["cases"]) == ["veth", "tunrelay-tun-udp"]
    for name, case in document["cases"].items():
        assert "error" not in case, (name, case)
        for metric in METRICS:
            assert metric in case, (name, metric)
        assert case["throughput_bps"] > 0 and case["rtt_median_ms"] > 0 and case["udp64_rx_pps"] > 0, case
        assert case["rtt_answered"] > 0 and case["udp64_rx_packets"] <= case["udp64_tx_packets"], case
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        assert case["namespaces"] and not set(case["namespaces"]) & set(namespaces), (name, namespaces)

    veth = document["cases"]["veth"]
    assert veth["processes"] == {} and veth["peak_rss_kib"] is None and veth["cpu_seconds"] is None
    relay = document["cases"]["tunrelay-tun-udp"]
    assert set(relay["processes"]) == {"a", "b"}
    for side, process in relay["processes"].items():
        assert process["command"] == "twistd", process
        for metric in PROCESS_METRICS:
            assert process[metric] > 0, (side, metric, process)
        assert process["cpu_seconds_lifetime"] >= process["cpu_seconds"]
    soak = relay["soak"]
    for process in soak["processes"].values():
        assert len(process["rss_kib_samples"]) == 2 and isinstance(process["flat"], bool)

    # Every target ratio is listed; none can be computed without the OpenVPN and other cases.
    assert len(document["ratios"]) >= 6 and all(ratio["ratio"] is None for ratio in document["ratios"])
    png = output.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Target ratios" in result.stdout and "tunrelay-tun-udp" in result.stdout
