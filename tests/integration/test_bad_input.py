"""Hostile input on a live relay: each kind is dropped, counted and logged; the tunnel keeps working."""

import textwrap

from .test_two_hosts import OVERLAY_A, relay_config

SEND_RAW = textwrap.dedent("""\
    import socket, sys
    source, payload, linger = sys.argv[1], bytes.fromhex(sys.argv[2]), float(sys.argv[3])
    s = socket.create_connection(("192.0.2.1", 51820), source_address=(source, 0))
    try:
        s.sendall(payload)
        s.settimeout(linger)
        closed = s.recv(1) == b""       # the relay closing on us reads as EOF
    except socket.timeout:
        closed = False
    except (ConnectionResetError, BrokenPipeError):
        closed = True                   # an abort (RST), possibly before we even sent
    print("closed" if closed else "open")
    """)


def send_raw(host, payload, source="192.0.2.2", linger=5.0):
    result = host.exec("python3", "-c", SEND_RAW, source, payload.hex(), str(linger), timeout=60)
    return result.stdout.strip()


def test_hostile_tcp_input_is_dropped_counted_and_logged(lab):
    a, b = lab.underlay()
    b.ip("addr", "add", "192.0.2.3/24", "dev", "u0")
    # Both sides name each other's endpoint (so both connect): A then knows exactly which
    # address is its peer, and 192.0.2.3 is a stranger.
    relay_a = lab.relay(a, relay_config("tun", 1, ["tcp://192.0.2.1:51820"], "tcp://192.0.2.2:51820",
                                        idle_timeout=2, max_frame_size=2048))
    lab.relay(b, relay_config("tun", 2, ["tcp://192.0.2.2:51820"], "tcp://192.0.2.1:51820"))
    b.ping(OVERLAY_A)

    assert send_raw(b, b"\x00\x10hello", source="192.0.2.3") == "closed"
    relay_a.wait_log("dropped (unknown_peer)")
    assert send_raw(b, b"\xff\xff" + b"x" * 64) == "closed"
    relay_a.wait_log("dropped (oversized_length)")
    assert send_raw(b, b"\x00\x20" + b"\x13" * 32, linger=0.5) == "open"
    relay_a.wait_log("dropped (not_ip)")
    send_raw(b, b"\x00\x50" + b"\x45" * 10, linger=0.2)  # closes with 70 bytes of its frame missing
    relay_a.wait_log("dropped (truncated_stream)")
    assert send_raw(b, b"", linger=6) == "closed"  # connects and sends nothing
    relay_a.wait_log("dropped (idle_timeout)")

    b.ping(OVERLAY_A)  # the real tunnel never stopped
    assert "Traceback" not in relay_a.log()
