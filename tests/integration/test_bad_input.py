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


def test_encrypted_relay_refuses_wrong_keys_garbage_and_replays(lab, tmp_path):
    import os
    import subprocess

    from tunrelay.crypto import keys

    from .test_two_hosts import RELAY_KEYS, encrypted, write_key_file

    a, b = lab.underlay()
    eve = lab.third_host(a, "e")
    relay_a = lab.relay(a, encrypted(relay_config("tun", 1, ["udp://192.0.2.1:51820", "udp://198.18.0.1:51820"]),
                                     tmp_path, 1))
    # Capture B's first initiation and a data packet off the wire, as an attacker would.
    filters = ("udp[8] = 1",                      # a handshake initiation
               "udp[8] = 4 and udp[4:2] > 40")    # transport data carrying a packet, not a keepalive
    captures = [b.popen("tcpdump", "-i", "u0", "-l", "-c", "1", "-x", "-n", "udp and dst port 51820 and " + kind,
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for kind in filters]
    _wait_until_capturing(b)
    lab.relay(b, encrypted(relay_config("tun", 2, ["udp://192.0.2.2:51820"], "udp://192.0.2.1:51820"), tmp_path, 2))
    b.ping(OVERLAY_A)
    initiation, data = (_udp_payload(capture.communicate(timeout=30)[0]) for capture in captures)
    assert len(initiation) == 148 and data[0] == 4

    # Eve knows A's public key and claims B's overlay address, but holds her own private key.
    eve_config = relay_config("tun", 2, [], "udp://198.18.0.1:51820")
    eve_config["plaintext"] = False
    eve_config["private_key_file"] = write_key_file(os.path.join(str(tmp_path), "eve.key"), keys.generate_private_key())
    eve_config["peers"][0]["public_key"] = keys.encode_key(keys.public_key(RELAY_KEYS[1]))
    lab.relay(eve, eve_config)
    eve.exec("ping", "-c", "2", "-W", "1", OVERLAY_A, check=False)
    relay_a.wait_log("dropped (unknown_peer)")
    assert eve.exec("ping", "-c", "1", "-W", "2", OVERLAY_A, check=False).returncode != 0

    # Garbage, truncated and oversized datagrams; then B's captured packets replayed from Eve's host.
    garbage = [b"", b"\x01", b"\x04\x00\x00\x00" + b"\x00" * 12, b"\x07" * 200, b"\x01\x00\x00\x00" + b"\x00" * 300]
    send = ("import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for item in sys.argv[1:]: s.sendto(bytes.fromhex(item), ('198.18.0.1', 51820))\n")
    eve.exec("python3", "-c", send, *(item.hex() for item in garbage))
    relay_a.wait_log("dropped (bad_size)")
    eve.exec("python3", "-c", send, *([initiation.hex()] * 50 + [data.hex()] * 50))
    relay_a.wait_log("dropped (stale_timestamp)")
    relay_a.wait_log("dropped (replay)")

    b.ping(OVERLAY_A)  # the real peer never noticed, and its endpoint did not move to Eve
    status = relay_a.tool("status", "-s", relay_a.config["control_socket"], "--json").stdout
    assert "192.0.2.2" in status and "198.18.0.2" not in status
    assert "Traceback" not in relay_a.log()
    assert keys.encode_key(RELAY_KEYS[1]) not in relay_a.log()


def _wait_until_capturing(host, count=2):
    """Each tcpdump holds a packet socket once it captures; /proc/net/packet lists them."""
    from .netns import wait_for

    def packet_sockets():
        lines = host.exec("cat", "/proc/net/packet").stdout.splitlines()[1:]
        return len([line for line in lines if line.strip()])

    wait_for(lambda: packet_sockets() >= count, 10, message="tcpdump to start capturing")


def _udp_payload(tcpdump_hex):
    words = "".join(line.split(":", 1)[1] for line in tcpdump_hex.splitlines() if ":" in line and "0x" in line)
    packet = bytes.fromhex(words.replace(" ", ""))
    return packet[28:]  # strip the IPv4 (20) and UDP (8) headers
