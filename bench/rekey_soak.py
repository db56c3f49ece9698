#!/usr/bin/env python3
"""Rekeys under load: iperf3 TCP and 20 ms pings through a tunrelay tunnel across rekeys.

Two namespaces, two `twistd tunrelay` relays in the default shape (tun over UDP, encrypted),
one rate-limited iperf3 TCP stream A -> B and `ping -D -i 0.02` beside it for the whole
run; then both relays' `tunrelay status --json`. Sessions rekey every 120 s, so the default
360 s crosses two rekeys (or three, the last just before the end). Prints a table, then one
JSON line last (also written to --output). Not a test: tests/integration/test_rekey.py runs
the same load for one rekey and judges it.

    sudo python3 bench/rekey_soak.py [--seconds 360] [--rate 100M] [--output PATH]
"""

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.integration.netns import Lab  # noqa: E402
from tests.integration.soak import soak  # noqa: E402


def table(figures):
    rows = [("seconds (wall)", "%s (%s)" % (figures["seconds"], figures["wall_seconds"])),
            ("iperf3 rate limit", figures["rate"]),
            ("iperf3 received", "%.1f MB, %.1f Mbit/s" % (figures["iperf_bytes"] / 1e6,
                                                           figures["iperf_bits_per_second"] / 1e6)),
            ("iperf3 retransmits", figures["iperf_retransmits"]),
            ("pings sent / answered / lost", "%d / %d / %d" % (figures["pings_sent"], figures["pings_answered"],
                                                              figures["pings_lost"])),
            ("lost pings (sequence @ seconds)", ", ".join(
                "%d @ %.1f s" % item for item in zip(figures["lost_sequences"], figures["lost_at_seconds"])) or "none"),
            ("rekeys (B, initiating) at", ", ".join("%.0f s" % at for at in figures["rekeys_at_seconds"]) or "none"),
            ("pings unanswered at the end", figures["pings_unanswered_at_end"]),
            ("largest gap between replies", "%.1f ms" % figures["max_reply_gap_ms"]),
            ("largest gap within -1..+2 s of each rekey", ", ".join(
                "%.1f ms" % gap for gap in figures["max_reply_gap_near_rekeys_ms"]) or "no rekey")]
    for side in ("a", "b"):
        relay = figures[side]
        rows += [("relay %s handshakes / rekeys" % side.upper(), "%s / %s" % (relay["handshakes"], relay["rekeys"])),
                 ("relay %s decrypt_failed / replay" % side.upper(), "%d / %d" % (relay["decrypt_failed"],
                                                                                 relay["replay"])),
                 ("relay %s drops" % side.upper(), ", ".join("%s=%d" % item for item in sorted(relay["drops"].items()))
                  or "none"),
                 ("relay %s kernel UDP drops" % side.upper(), ", ".join(
                     "%s=%d" % item for item in sorted(relay["kernel"].items()))),
                 ("relay %s CPU seconds" % side.upper(), "%.1f" % relay["cpu_seconds"])]
    rows.append(("tracebacks in the logs", figures["tracebacks"]))
    width = max(len(name) for name, _ in rows)
    return "\n".join("%-*s  %s" % (width, name, value) for name, value in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=360)
    parser.add_argument("--rate", default="100M", help="iperf3 -b (the machine is shared: keep it limited)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "results", "rekey_soak.json"))
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rekey-soak-") as directory:
        lab = Lab(directory, prefix="rk")
        try:
            figures = soak(lab, arguments.seconds, arguments.rate)
        finally:
            lab.close()
    print(table(figures))
    os.makedirs(os.path.dirname(os.path.abspath(arguments.output)), exist_ok=True)
    with open(arguments.output, "w") as stream:
        json.dump(figures, stream, indent=2, sort_keys=True)
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
