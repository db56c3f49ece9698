"""bench/hub_load.py, briefly: a real hub and 20 emulated WireGuard peers in namespaces.

Runs the load generator end to end (every peer handshakes with a ``twistd tunrelay`` hub and
sends to the next peer through it) and judges its JSON line: all 20 established on both
sides, data delivered to every peer and from every peer, nobody starved (max/min <= 3), the
hub's counters agreeing with the generator's, and no namespace left behind. 20 initiations
stay under the hub's under-load threshold, so no cookie may be sent.
"""

import json
import os
import subprocess
import sys

from .conftest import _REASON, require
from .netns import REPOSITORY

PEERS = 20


def test_hub_load_smoke(tmp_path):
    require(_REASON)
    output = tmp_path / "hub_load.json"
    result = subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, "bench", "hub_load.py"), "--peers", str(PEERS), "--seconds", "2",
         "--warmup", "0.5", "--output", str(output)],
        capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout.strip().splitlines()[-1])
    assert document == json.loads(output.read_text())
    run, = document["runs"]
    assert "error" not in run, run
    assert run["peers"] == PEERS and run["all_established"] and run["hub_established"] == PEERS, run
    assert run["established_seconds"] < 10 and run["handshakes_per_second"] > 0, run
    assert run["cookies_received"] == run["hub_cookies_sent"] == 0, run
    assert run["per_peer_delivered_min"] > 0 and run["peers_starved"] == 0, run
    assert run["ratio"] <= 3 and run["ratio_by_sender"] <= 3, run
    assert run["forwarded_pps"] > 0 and run["forwarded_bytes_per_second"] > 0, run
    # The hub forwarded at least what the generator saw delivered, and logged no traceback.
    assert run["hub_forwarded_packets"] >= run["delivered"], run
    assert run["hub_log_tracebacks"] == 0 and run["generator_receive_drops"] == {}, run
    assert 0 < run["hub_rss_mib"] <= run["hub_peak_rss_mib"] and run["hub_cpu_seconds_total"] > 0, run
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert not set(run["namespaces"]) & set(namespaces), namespaces
    assert "hub cookies" in result.stdout
